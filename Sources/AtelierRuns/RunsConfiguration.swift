import AtelierCore

/// The run use case's limits, whichever API a run comes through.
public struct RunsConfiguration: Sendable {
    /// The longest a request may ask to wait for its run (`wait`, `Prefer: wait=N`); longer asks are cut to it.
    public var maxWait: Duration = .seconds(600)
    /// Runs an account may have queued or running at once; more are refused with 429.
    public var maxConcurrentRuns: Int = 16
    /// Which hosts client URLs (webhooks, input images) may reach: no internal addresses unless allow-listed.
    public var outboundPolicy = OutboundAddressPolicy()
    public init() {}
}

/// A run as a reader sees it now: the stored run, with what only this moment knows (its progress while it runs,
/// its place in the queue while it waits) and the currency its cost is in. Each API renders it in its own shape.
public struct RunSnapshot: Sendable {
    public var job: Job
    public var currency: String
    public var progress: JobProgress?
    public var queuePosition: Int?

    public init(job: Job, currency: String, progress: JobProgress? = nil, queuePosition: Int? = nil) {
        self.job = job
        self.currency = currency
        self.progress = progress
        self.queuePosition = queuePosition
    }
}
