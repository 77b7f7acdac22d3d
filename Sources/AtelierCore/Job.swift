import Foundation
import Crypto

/// One image produced by a run.
public struct JobOutput: Sendable, Equatable, Codable {
    public var name: String
    public var seed: UInt64
    public var width: Int
    public var height: Int
    public var bytes: Int
    public init(name: String, seed: UInt64, width: Int, height: Int, bytes: Int) {
        self.name = name
        self.seed = seed
        self.width = width
        self.height = height
        self.bytes = bytes
    }
}

/// What the safety checker did with a run's images.
public struct SafetyOutcome: Sendable, Equatable, Codable {
    /// The checker's name; nil when the model configures none.
    public var checker: String?
    /// False when none is configured or the request set disable_safety_checker.
    public var ran: Bool
    /// Images flagged and not delivered (nor charged).
    public var dropped: Int
    public init(checker: String?, ran: Bool, dropped: Int) {
        self.checker = checker
        self.ran = ran
        self.dropped = dropped
    }
}

/// What the worker reports with a successful run, stored with the job.
public struct JobResult: Sendable, Equatable, Codable {
    public var outputs: [JobOutput]
    /// `standard` or `fast`, and why.
    public var path: String
    public var pathReason: String
    public var inferenceMs: Double
    public var encodeMs: Double
    /// Nil in rows written before the safety hook existed.
    public var safety: SafetyOutcome?
    /// Runs that shared this run's pipeline call (1: it ran alone); nil in rows written before batching existed.
    public var batchSize: Int?
    /// The run's own LoRAs as applied (content hash, size, scale, where each came from); nil when it had none.
    public var loras: [AppliedLoRA]?
    public init(outputs: [JobOutput], path: String, pathReason: String, inferenceMs: Double, encodeMs: Double,
                safety: SafetyOutcome? = nil, batchSize: Int? = nil, loras: [AppliedLoRA]? = nil) {
        self.loras = loras
        self.safety = safety
        self.batchSize = batchSize
        self.outputs = outputs
        self.path = path
        self.pathReason = pathReason
        self.inferenceMs = inferenceMs
        self.encodeMs = encodeMs
    }
}

public struct JobFailure: Sendable, Equatable, Codable {
    public var code: RunFailureCode
    public var message: String
    public init(code: RunFailureCode, message: String) {
        self.code = code
        self.message = message
    }
}

/// Steps done of the steps a running attempt makes.
public struct JobProgress: Sendable, Equatable, Codable {
    public var step: Int
    public var total: Int
    public init(step: Int, total: Int) {
        self.step = step
        self.total = total
    }
}

/// A run as persisted: the request, its lifecycle and its outcome.
public struct Job: Sendable, Equatable {
    /// The public request_id: a random 15-digit integer, like the hosted service's.
    public var id: Int64
    public var accountID: Int64
    public var request: RunRequest
    /// The output names reserved for this run, one per image, chosen when it was accepted.
    public var outputNames: [String]
    /// The model's price per image when the run was accepted, in minor units: what a delivered image costs this
    /// run even if the catalog's price changes meanwhile.
    public var pricePerImage: Int64
    public var status: JobStatus
    /// Attempts made so far; the running attempt's number is the claim's fencing token.
    public var attempts: Int
    /// Attempts that ended through no fault of the run's (the server stopped it on a drain): they do not count
    /// against the attempt limit.
    public var sparedAttempts: Int
    public var result: JobResult?
    public var failure: JobFailure?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Where the run's events are POSTed, if the client asked.
    public var webhook: WebhookSubscription?
    /// The running attempt's last reported step, as stored for requests on other nodes (throttled).
    public var progress: JobProgress?
    /// When `--output-retention` deleted the run's images; the run itself (and its charge) stays.
    public var outputsExpiredAt: Date?

    public init(
        id: Int64, accountID: Int64, request: RunRequest, outputNames: [String], pricePerImage: Int64 = 0,
        status: JobStatus = .queued,
        attempts: Int = 0, result: JobResult? = nil, failure: JobFailure? = nil, createdAt: Date,
        startedAt: Date? = nil, finishedAt: Date? = nil, webhook: WebhookSubscription? = nil, progress: JobProgress? = nil,
        outputsExpiredAt: Date? = nil, sparedAttempts: Int = 0
    ) {
        self.sparedAttempts = sparedAttempts
        self.outputsExpiredAt = outputsExpiredAt
        self.progress = progress
        self.webhook = webhook
        self.id = id
        self.accountID = accountID
        self.request = request
        self.outputNames = outputNames
        self.pricePerImage = pricePerImage
        self.status = status
        self.attempts = attempts
        self.result = result
        self.failure = failure
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }

    /// The attempts that count against the limit (`--max-attempts`): the running one included, drains left out.
    public var countedAttempts: Int { attempts - sparedAttempts }

    /// The seed the run uses (image i uses seed + i). Always set once the job is persisted.
    public var seed: UInt64 { request.seed ?? 0 }

    /// What accepting this run holds: price × images asked for.
    public var holdAmount: Int64 { LedgerRules.hold(pricePerImage: pricePerImage, images: request.numOutputs) }

    public static let idRange: ClosedRange<Int64> = 100_000_000_000_000...999_999_999_999_999
}

extension Job {
    /// The names this attempt writes its images to. The first attempt uses the names reserved at acceptance;
    /// a later one (after its node died or paused past its lease) gets names of its own, derived from them, so a
    /// stale attempt that finishes late can neither overwrite nor delete the images of the attempt that won.
    public func outputNames(forAttempt attempt: Int) -> [String] {
        guard attempt > 1 else { return outputNames }
        return outputNames.map { name in
            let parts = name.split(separator: ".", maxSplits: 1)
            let digest = SHA256.hash(data: Data("\(name)#\(attempt)".utf8)).hex
            return String(digest.prefix(32)) + (parts.count == 2 ? ".\(parts[1])" : "")
        }
    }
}
