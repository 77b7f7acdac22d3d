import AtelierCore

/// A run as a reader sees it now: the stored run, with what only this moment knows (its progress while it runs,
/// its place in the queue while it waits) and the currency its cost is in. Each API renders it in its own shape.
public struct RunSnapshot: Sendable {
    public var job: Job
    public var currency: String
    public var progress: JobProgress?
    public var queuePosition: Int?
    /// A LoRA of the run being downloaded now (its run waits for it before its steps start).
    public var loraDownload: LoRADownload?

    public struct LoRADownload: Sendable, Equatable {
        public var parameter: String
        public var progress: LoRAFetchProgress
    }

    public init(job: Job, currency: String, progress: JobProgress? = nil, queuePosition: Int? = nil) {
        self.job = job
        self.currency = currency
        self.progress = progress
        self.queuePosition = queuePosition
    }
}
