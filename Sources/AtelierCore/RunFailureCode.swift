/// Why a run ended without its images: every code a failed run's `error.code` can carry, in every API. The
/// worker's codes come over the protocol (`error` messages); the server's are its own. contracts/fixtures/
/// failure_codes.json lists both, and both test suites check their side against it; `ErrorMapping` gives each one
/// its HTTP status (an exhaustive switch), and a test finds the code that produces each server code.
public enum RunFailureCode: String, CaseIterable, Codable, Sendable {
    // The worker's (contracts/worker-protocol.md, `error`).
    /// The server sent something the worker refuses (a model it does not serve, a malformed field).
    case invalidRequest = "invalid_request"
    /// The pipeline raised.
    case generationFailed = "generation_failed"
    /// Writing an image failed.
    case encodeFailed = "encode_failed"
    case outOfMemory = "out_of_memory"
    /// Every image was flagged by the safety checker: none delivered, nothing charged.
    case safetyFlagged = "safety_flagged"
    /// Stopped at a step after a cancel (the worker's answer; the store records the client's cancel itself).
    case canceled
    /// An input image does not decode.
    case invalidInput = "invalid_input"
    /// A requested LoRA's tensors do not fit the model (the message names the first key that does not).
    case loraIncompatible = "lora_incompatible"

    // The server's.
    /// The worker process died under the run on its last attempt.
    case workerCrashed = "worker_crashed"
    /// The run's attempts were lost with their nodes or leases (`--max-attempts` times).
    case workerLost = "worker_lost"
    /// The run overran `--job-timeout`.
    case timeout
    /// The image store could not be reached to keep the images.
    case storageUnavailable = "storage_unavailable"
    /// An image the worker reported is not where it said (a bad name, a missing file).
    case storageError = "storage_error"
    /// A requested LoRA could not be fetched: its address was refused, did not answer, or answered other than 200.
    case loraUnavailable = "lora_unavailable"
    /// A requested LoRA's file is not a usable safetensors file (a pickle, a lying header, over the size limit).
    case loraInvalid = "lora_invalid"

    public enum Producer: String, Sendable {
        case worker, server
    }

    public var producer: Producer {
        switch self {
        case .invalidRequest, .generationFailed, .encodeFailed, .outOfMemory, .safetyFlagged, .canceled, .invalidInput, .loraIncompatible: .worker
        case .workerCrashed, .workerLost, .timeout, .storageUnavailable, .storageError, .loraUnavailable, .loraInvalid: .server
        }
    }

    /// A code the worker sent: its own, or generation_failed for one this server does not know (a newer worker's),
    /// so the run still fails with a code every API maps.
    public init(worker code: String) {
        self = RunFailureCode(rawValue: code).flatMap { $0.producer == .worker ? $0 : nil } ?? .generationFailed
    }

    /// A code read back from the database: rows are written with these codes only.
    public init(stored code: String) {
        self = RunFailureCode(rawValue: code) ?? .generationFailed
    }
}
