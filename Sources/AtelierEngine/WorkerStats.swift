import Foundation

/// A worker's `stats` report (contracts/worker-protocol.md): its CUDA device's memory and utilisation, and its
/// counters since the process started. Names no job.
public struct WorkerStats: Sendable, Equatable, Codable {
    public struct Device: Sendable, Equatable, Codable {
        /// `cuda:0`.
        public var device: String
        public var name: String
        public var memoryUsedBytes: Int64
        public var memoryTotalBytes: Int64
        /// 0...1 from NVML; nil where the worker has none.
        public var utilization: Double?

        public init(device: String, name: String, memoryUsedBytes: Int64, memoryTotalBytes: Int64, utilization: Double?) {
            self.device = device
            self.name = name
            self.memoryUsedBytes = memoryUsedBytes
            self.memoryTotalBytes = memoryTotalBytes
            self.utilization = utilization
        }

        enum CodingKeys: String, CodingKey {
            case device, name, utilization
            case memoryUsedBytes = "memory_used_bytes"
            case memoryTotalBytes = "memory_total_bytes"
        }
    }

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
