import AtelierMetrics
import Foundation

/// A worker's `stats` report (contracts/worker-protocol.md): its CUDA device's memory and utilisation, and its
/// counters since the process started. Names no job.
public struct WorkerStats: Sendable, Equatable, Codable {
    /// The worker's CUDA device: the same record /metrics' GPU gauges are set from.
    public typealias Device = AtelierMetrics.GPUDevice

    /// Empty on CPU.
    public var devices: [Device]
    public var loraSwitches: Int
    public var promptCacheHits: Int
    public var promptCacheMisses: Int

    public init(devices: [Device] = [], loraSwitches: Int = 0, promptCacheHits: Int = 0, promptCacheMisses: Int = 0) {
        self.devices = devices
        self.loraSwitches = loraSwitches
        self.promptCacheHits = promptCacheHits
        self.promptCacheMisses = promptCacheMisses
    }

    enum CodingKeys: String, CodingKey {
        case devices
        case loraSwitches = "lora_switches"
        case promptCacheHits = "prompt_cache_hits"
        case promptCacheMisses = "prompt_cache_misses"
    }

    /// What the counters grew by since `previous` (the same process's last report; nil for a new process, whose
    /// counters start at 0).
    public func increase(since previous: WorkerStats?) -> (loraSwitches: Int, promptCacheHits: Int, promptCacheMisses: Int) {
        func grew(_ now: Int, _ before: Int?) -> Int { max(0, now - (before ?? 0)) }
        return (grew(loraSwitches, previous?.loraSwitches), grew(promptCacheHits, previous?.promptCacheHits),
                grew(promptCacheMisses, previous?.promptCacheMisses))
    }
}
