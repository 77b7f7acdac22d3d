import AtelierCore
import Foundation
import Synchronization

/// What the supervisor and its slots share: each slot's state (for /healthz), which worker runs which run (so a
/// cancel or the drain reaches the right process), and whether the node is stopping.
final class SlotBoard: Sendable {
    private let slots: Mutex<[WorkerSlotStatus]>
    /// The worker and attempt of each running run.
    let running = Mutex<[Int64: (worker: WorkerProcess, attempt: Int)]>([:])
    /// When each running run's progress was last stored (shared databases only).
    let progressSharedAt = Mutex<[Int64: Date]>([:])
    private let stopping = Atomic<Bool>(false)
    /// Set when the drain timeout passed: workers still busy are stopped and their runs requeued.
    private let drainExpired = Atomic<Bool>(false)

    init(workerCount: Int) {
        slots = Mutex((0..<workerCount).map {
            WorkerSlotStatus(slot: $0, state: .starting, pid: nil, device: nil, jobID: nil, restarts: 0)
        })
    }

    /// Those waiting for the slots to reach a state (`waitUntil`).
    private let waiters = Mutex<[UUID: (holds: @Sendable ([WorkerSlotStatus]) -> Bool, continuation: CheckedContinuation<Void, Never>)]>([:])

    var status: [WorkerSlotStatus] { slots.withLock { $0 } }

    func update(_ slot: Int, _ change: (inout WorkerSlotStatus) -> Void) {
        let now = slots.withLock { s -> [WorkerSlotStatus] in
            change(&s[slot])
            return s
        }
        let met = waiters.withLock { list -> [CheckedContinuation<Void, Never>] in
            let ids = list.filter { $0.value.holds(now) }.map(\.key)
            return ids.compactMap { list.removeValue(forKey: $0)?.continuation }
        }
        for continuation in met { continuation.resume() }
    }

    /// Returns once the slots' states satisfy `holds` (at once if they do now), or when the task is cancelled.
    func waitUntil(_ holds: @escaping @Sendable ([WorkerSlotStatus]) -> Bool) async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                // Checked under the waiters' lock, so an update between the check and the registration is not missed.
                let ready = waiters.withLock { list -> Bool in
                    if holds(status) || Task.isCancelled { return true }
                    list[id] = (holds, c)
                    return false
                }
                if ready { c.resume() }
            }
        } onCancel: {
            waiters.withLock { $0.removeValue(forKey: id) }?.continuation.resume()
        }
    }

    var isStopping: Bool { stopping.load(ordering: .relaxed) }
    /// Marks the node stopping; true the first time only.
    func beginStopping() -> Bool { !stopping.exchange(true, ordering: .relaxed) }

    var isDrainExpired: Bool { drainExpired.load(ordering: .relaxed) }
    func expireDrain() { drainExpired.store(true, ordering: .relaxed) }
}
