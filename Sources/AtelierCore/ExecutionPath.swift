/// Which pipeline made a run's images, as the worker reports it in a result's `path` (contracts/worker-protocol.md):
/// the eager bf16 pipeline, its compiled twin, the fp8 compiled fast path, and either with the turbo cache.
/// The API's description of a run lists exactly these.
public enum ExecutionPath: String, CaseIterable, Sendable {
    case standard
    case standardCompiled = "standard-compiled"
    case fast
    case fastTurbo = "fast+turbo"
    case standardTurbo = "standard+turbo"
}
