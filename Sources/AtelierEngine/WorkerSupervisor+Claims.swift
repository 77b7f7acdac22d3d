import AtelierCore
import Foundation
import Logging

/// A slot's claims: the batch it takes from the queue, and the leases it keeps on those runs while they run.
extension WorkerSupervisor {
    /// The first job and the queued ones that may share its call, up to `batchSize` images. When the batch is not
    /// full and `batchWindow` is set, waits that long once for more compatible runs: clients answered together
    /// send their next requests together, and the first arrival would otherwise always run alone.
    func gatherBatch(after first: Job) async -> [Job] {
        var batch = [first]
        var room = config.batchSize - first.request.numOutputs
        guard room > 0, first.request.batchKey != nil else { return batch }
        func claim() async {
            // An unreachable database claims nothing more: the batch runs as it is.
            guard let more = try? await store.claimCompatible(with: first, maxImages: room, now: clock.now(), lease: config.lease.timeInterval) else { return }
            batch += more
            room -= more.reduce(0) { $0 + $1.request.numOutputs }
        }
        await claim()
        if room > 0, config.batchWindow > .zero, !isStopping {
            try? await config.clock.sleep(for: config.batchWindow)
            await claim()
        }
        return batch
    }

    /// Renews each job's lease every third of its length until cancelled. A refused renewal means that claim was
    /// lost (canceled, or taken over): the worker is told to stop that job (inside a batch it stops only when
    /// every job of the call is canceled), and its result would be refused anyway. A renewal that cannot reach
    /// the database is tried again; once a whole lease has passed since the last one that did, another node may
    /// have taken the run over, so the worker stops it too.
    func renewLeases(of batch: [Job], on worker: WorkerProcess) async {
        let clock = config.clock
        let lease = config.lease
        var held = Set(batch.map(\.id))
        // Renewals in a row that could not reach the database: three are a whole lease.
        var unreached: [Int64: Int] = [:]
        // Runs until cancelled, even with nothing left to renew: `serveJobs` takes the first task to end as the run's.
        while !Task.isCancelled {
            do { try await clock.sleep(for: lease / 3) } catch { return }
            for job in batch where held.contains(job.id) {
                let renewed: Bool
                do {
                    renewed = try await store.renewLease(id: job.id, attempt: job.attempts, lease: lease.timeInterval, now: self.clock.now())
                } catch {
                    unreached[job.id, default: 0] += 1
                    guard unreached[job.id, default: 0] >= 3 else { continue }
                    logger.error("run \(job.id): its lease could not be renewed for \(lease) (\(error)); stopping its worker's attempt")
                    leaseLost.withLock { _ = $0.insert(job.id) }
                    renewed = false
                }
                if renewed {
                    unreached[job.id] = nil
                } else {
                    held.remove(job.id)
                    try? worker.send(.cancel(jobID: String(job.id)))
                }
            }
        }
    }
}
