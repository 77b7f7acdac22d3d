import AtelierCore
import Foundation
import Logging
import Synchronization

/// A slot's claims on the queue: the next run, the compatible queued runs that share its pipeline call, and the
/// leases it keeps on them while they run. Claims are the store's (one statement-level decision), so two slots or
/// two nodes never share a run.
struct RunDispatcher: Sendable {
    let store: any JobStore
    /// The lease, the batch size and window, and the clock that times them.
    let config: SupervisorConfiguration
    let clock: any WallClock
    /// The image store's breaker (a bucket), if any: while it is open no run is claimed, so an outage leaves runs
    /// queued instead of using up their attempts on a store that cannot hold their images.
    let storage: CircuitBreaker?
    /// Probed (through the breaker) before a claim while the breaker is not closed: the trial call is this probe,
    /// never a run's attempt.
    let probe: (any ImageStorage)?
    let logger: Logger

    var lease: Duration { config.lease }
    var batchSize: Int { config.batchSize }
    var batchWindow: Duration { config.batchWindow }
    var sleeper: any Clock<Duration> { config.clock }

    /// Whether a claimed run could reach the image store now, asked before every claim (no lease is held while
    /// it is asked): a probe through the breaker, refused at once while it is open. Every node asks for itself,
    /// since this node's breaker may not have heard of an outage another node hit; an idle slot thus probes the
    /// store once per poll interval (a HEAD a second on a bucket).
    func storageUsable() async -> Bool {
        guard let storage, let probe else { return true }
        guard storage.isUsable else { return false }
        return (try? await probe.probe()) != nil
    }

    /// The oldest queued run, claimed as this slot's next attempt; nil when the queue is empty.
    func claimNext() async throws -> Job? {
        try await store.claimNext(now: clock.now(), lease: lease.timeInterval)
    }

    /// The first run and the queued ones that may share its call, up to `batchSize` images. When the batch is not
    /// full and `batchWindow` is set, waits that long once for more compatible runs: clients answered together
    /// send their next requests together, and the first arrival would otherwise always run alone.
    func gatherBatch(after first: Job, isStopping: @Sendable () -> Bool) async -> [Job] {
        var batch = [first]
        var room = batchSize - first.request.numOutputs
        guard room > 0, first.request.batchKey != nil else { return batch }
        func claim() async {
            // An unreachable database claims nothing more: the batch runs as it is.
            guard let more = try? await store.claimCompatible(with: first, maxImages: room, now: clock.now(), lease: lease.timeInterval) else { return }
            batch += more
            room -= more.reduce(0) { $0 + $1.request.numOutputs }
        }
        await claim()
        if room > 0, batchWindow > .zero, !isStopping() {
            try? await sleeper.sleep(for: batchWindow)
            await claim()
        }
        return batch
    }

    /// Renews each run's lease every third of its length until cancelled. A refused renewal means that claim was
    /// lost (canceled, or taken over): `stop` is told (the worker stops that run; inside a batch it stops only
    /// when every run of the call is canceled), and its result would be refused anyway. A renewal that cannot
    /// reach the database is tried again; once a whole lease has passed since the last one that did, another node
    /// may have taken the run over, so the run is put in `lost` and stopped too.
    func keepLeases(of batch: [Job], lost: LostLeases, stop: (Int64) -> Void) async {
        var held = Set(batch.map(\.id))
        // Renewals in a row that could not reach the database: three are a whole lease.
        var unreached: [Int64: Int] = [:]
        // Runs until cancelled, even with nothing left to renew: the slot takes the first task to end as the run's.
        while !Task.isCancelled {
            do { try await sleeper.sleep(for: lease / 3) } catch { return }
            for job in batch where held.contains(job.id) {
                let renewed: Bool
                do {
                    renewed = try await store.renewLease(id: job.id, attempt: job.attempts, lease: lease.timeInterval, now: clock.now())
                } catch {
                    unreached[job.id, default: 0] += 1
                    guard unreached[job.id, default: 0] >= 3 else { continue }
                    logger.error("run \(job.id): its lease could not be renewed for \(lease) (\(error)); stopping its worker's attempt")
                    lost.insert(job.id)
                    renewed = false
                }
                if renewed {
                    unreached[job.id] = nil
                } else {
                    held.remove(job.id)
                    stop(job.id)
                }
            }
        }
    }
}

/// The runs of a call whose attempt this node stopped because their lease could not be renewed: their cancel is
/// this node's, not the client's.
final class LostLeases: Sendable {
    private let ids = Mutex<Set<Int64>>([])
    func insert(_ id: Int64) { ids.withLock { _ = $0.insert(id) } }
    func contains(_ id: Int64) -> Bool { ids.withLock { $0.contains(id) } }
}
