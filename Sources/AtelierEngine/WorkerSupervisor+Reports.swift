import Foundation
import Logging

/// The reports a worker sends beside its jobs' answers: compiled-path warm-up states and stats.
extension WorkerSupervisor {
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
        metrics.workerReported(slot: slot, devices: stats.devices.map {
            .init(device: $0.device, name: $0.name, memoryUsedBytes: $0.memoryUsedBytes, memoryTotalBytes: $0.memoryTotalBytes,
                  utilization: $0.utilization)
        }, loraSwitches: grew.loraSwitches, promptCacheHits: grew.promptCacheHits, promptCacheMisses: grew.promptCacheMisses)
    }
}
