import AtelierCore
import AtelierEngine

/// Where queued runs go and how their ends are heard: the supervisor in production, a test double in unit tests.
public protocol RunQueue: Sendable {
    var events: JobEvents { get }
    func jobQueued() async
    /// Tells the worker running this run (if any) to stop; the store already recorded the cancel.
    func cancel(_ id: Int64)
    /// True once shutdown began: no new runs are taken and /readyz answers 503.
    var isDraining: Bool { get }
    /// Worker slots, for /healthz.
    var workerStatus: [WorkerSlotStatus] { get }
    /// False on an API-only node (`--workers 0`): other nodes' workers run its queue, so it is ready without any.
    var runsWorkers: Bool { get }
    /// Starts bringing a queued run's LoRAs into the cluster's store now, so that a worker slot that takes the run
    /// later finds them there instead of waiting on the download (runs ahead of it in the queue hide the wait).
    func prefetch(_ loras: [RequestedLoRA])
}

extension RunQueue {
    public var runsWorkers: Bool { true }
    public func prefetch(_ loras: [RequestedLoRA]) {}
}

extension WorkerSupervisor: RunQueue {
    public var workerStatus: [WorkerSlotStatus] { status }
}
