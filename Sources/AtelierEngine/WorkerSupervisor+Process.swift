import Foundation
import Logging

/// A slot's worker process: its start, and the reports it sends beside its jobs' answers (compiled-path warm-up
/// states and stats).
extension WorkerSupervisor {
    /// Starts a worker process for the slot and waits, at most `readyTimeout`, for its `ready`.
    func startWorker(slot: Int) async throws -> (WorkerProcess, WorkerReady) {
        let worker = try WorkerProcess(launch: launch, logger: logger,
                                       onPathStatus: { [weak self] in self?.recordPathStatus($0, slot: slot) },
                                       onStats: { [weak self] in self?.recordStats($0, slot: slot) })
        let readyTimeout = config.readyTimeout
        let sleeper = config.clock
        let outcome: Result<WorkerReady, WorkerStartError> = await withTaskGroup(of: Result<WorkerReady, WorkerStartError>?.self) { group in
            group.addTask {
                for await event in worker.events {
                    switch event {
                    case .message(.ready(let r)): return .success(r)
                    case .exited(let status, let signaled):
                        return .failure(.exitedBeforeReady(status: status, signaled: signaled, log: worker.lastLogLines))
                    default: continue
                    }
                }
                return nil
            }
            group.addTask {
                try? await sleeper.sleep(for: readyTimeout)
                return Task.isCancelled ? nil : .failure(.readyTimeout(seconds: Int(readyTimeout.components.seconds)))
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? .failure(.readyTimeout(seconds: 0))
        }
        switch outcome {
        case .success(let r): return (worker, r)
        case .failure(let e):
            worker.kill()
            throw e
        }
    }

    /// Serves jobs until shutdown (returns true: the worker is still alive) or the worker dies (returns false).

    func recordPathStatus(_ status: WorkerPathStatus, slot: Int) {
        update(slot) { $0.compiledPaths = ($0.compiledPaths ?? [:]).merging([status.path: status]) { $1 } }
        let message: Logger.Message = "worker slot \(slot): compiled \(status.path) path \(status.summary)"
        switch status.state {
        case .failed: logger.warning(message)
        case .warming where status.warm > 0: logger.debug(message)
        default: logger.info(message)
        }
    }

    /// Keeps the report on the slot (/healthz shows it), sets the GPU gauges and adds the counters' increase
    /// since the same process's previous report.
    func recordStats(_ stats: WorkerStats, slot: Int) {
        var previous: WorkerStats?
        update(slot) { s in
            previous = s.stats
            s.stats = stats
        }
        let grew = stats.increase(since: previous)
        metrics.workerReported(slot: slot, devices: stats.devices, loraSwitches: grew.loraSwitches,
                               promptCacheHits: grew.promptCacheHits, promptCacheMisses: grew.promptCacheMisses)
    }

    /// The slot's worker died: its report goes, and with it the gauges of any device no other live worker of this
    /// node still reports (workers sharing a card report the same device-wide values).
    func forgetStats(slot: Int) {
        var gone: [WorkerStats.Device] = []
        update(slot) { s in
            gone = s.stats?.devices ?? []
            s.stats = nil
        }
        let reported = Set(status.flatMap { $0.stats?.devices.map(\.device) ?? [] })
        metrics.gpuDevicesGone(gone.filter { !reported.contains($0.device) })
    }
}
