import Foundation
import Logging

/// A slot's worker process: its start, and the reports it sends beside its jobs' answers (compiled-path warm-up
/// states and stats).
extension WorkerSlot {
    /// Starts a worker process for the slot and waits, at most `readyTimeout`, for its `ready`.
    func startWorker() async throws -> (WorkerProcess, WorkerReady) {
        let slot = self
        let worker = try WorkerProcess(launch: launch, logger: logger,
                                       onPathStatus: { slot.recordPathStatus($0) },
                                       onStats: { slot.recordStats($0) })
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

    func recordPathStatus(_ status: WorkerPathStatus) {
        update { $0.compiledPaths = ($0.compiledPaths ?? [:]).merging([status.path: status]) { $1 } }
        let message: Logger.Message = "worker slot \(index): compiled \(status.path) path \(status.summary)"
        switch status.state {
        case .failed: logger.warning(message)
        case .warming where status.warm > 0: logger.debug(message)
        default: logger.info(message)
        }
    }

    /// Keeps the report on the slot (/healthz shows it), sets the GPU gauges and adds the counters' increase
    /// since the same process's previous report.
    func recordStats(_ stats: WorkerStats) {
        let previous = board.status[index].stats
        let grew = stats.increase(since: previous)
        metrics.workerReported(slot: index, devices: stats.devices, loraSwitches: grew.loraSwitches,
                               promptCacheHits: grew.promptCacheHits, promptCacheMisses: grew.promptCacheMisses)
        // After the gauges: whoever waits for the report on the slot finds them set.
        update { $0.stats = stats }
    }

    /// The slot's worker died: its report goes, and with it the gauges of any device no other live worker of this
    /// node still reports (workers sharing a card report the same device-wide values).
    func forgetStats() {
        var gone: [WorkerStats.Device] = []
        update { s in
            gone = s.stats?.devices ?? []
            s.stats = nil
        }
        let reported = Set(board.status.flatMap { $0.stats?.devices.map(\.device) ?? [] })
        metrics.gpuDevicesGone(gone.filter { !reported.contains($0.device) })
    }
}
