import AtelierCore
import AtelierEngine
import AtelierRuns
import Synchronization

/// A run queue that only counts what was queued: for HTTP unit tests of requests that must never reach a worker
/// (bad keys, bad parameters). Never a runtime default.
public final class InMemoryRunQueue: RunQueue, Sendable {
    public let events = JobEvents()
    private let count = Atomic<Int>(0)
    public init() {}
    public func jobQueued() async { count.add(1, ordering: .relaxed) }
    public var queuedCount: Int { count.load(ordering: .relaxed) }
    public var workerStatus: [WorkerSlotStatus] { [] }
    public func cancel(_ id: Int64) {}
    public var isDraining: Bool { false }
}
