import Foundation

/// The state of one worker slot, for /healthz and the logs.
public struct WorkerSlotStatus: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable {
        case starting, idle, busy, restarting, stopped
    }
    public var slot: Int
    public var state: State
    public var pid: Int32?
    public var device: String?
    public var jobID: Int64?
    public var restarts: Int
    public var randomWeights: Bool?
    public var fastPathAvailable: Bool?
    /// The worker's compiled paths ("fast", "standard") and how far their background warm-up got.
    public var compiledPaths: [String: WorkerPathStatus]?
    /// The worker process's last `stats` report (GPU memory, counters); nil until its first.
    public var stats: WorkerStats?

    /// A live worker that can take runs (idle), or is running one (busy).
    public var isReady: Bool { state == .idle || state == .busy }

    enum CodingKeys: String, CodingKey {
        case slot, state, pid, device, restarts, stats
        case jobID = "job_id"
        case randomWeights = "random_weights"
        case fastPathAvailable = "fast_path_available"
        case compiledPaths = "compiled_paths"
    }
}
