import AtelierCore
import AtelierEngine
import AtelierRuns
import Foundation

/// The `data` of a run's response: what the hosted service returns (`request_id`, `output`, `output_type`), plus
/// the seed, size, which execution path ran and timings.
public struct RunView: Encodable, Sendable {
    public enum Output: Encodable, Sendable {
        case one(String)
        case many([String])
        /// The images were deleted (output retention): written as `null`, where a run without images yet has none.
        case removed
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .one(let s): try c.encode(s)
            case .many(let l): try c.encode(l)
            case .removed: try c.encodeNil()
            }
        }
    }
    public struct Timings: Encodable, Sendable {
        public var inferenceMs: Double
        public var encodeMs: Double
        public var totalMs: Double?
        /// Runs that shared the pipeline call (`--batch-size`); 1: it ran alone. `inference_ms` is the shared call's.
        public var batchSize: Int?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case inferenceMs = "inference_ms"
            case encodeMs = "encode_ms"
            case totalMs = "total_ms"
            case batchSize = "batch_size"
        }
    }

    public var requestID: Int64
    public var status: String
    public var modelID: String
    public var output: Output?
    public var outputType: String?
    public var seed: UInt64
    public var seeds: [UInt64]?
    public var width: Int
    public var height: Int
    public var path: String?
    public var pathReason: String?
    public var timings: Timings?
    public var safetyChecker: Safety?
    /// The run's own LoRAs as applied: content hash, size, scale and where each came from (`memory`, `node_disk`,
    /// `cluster_store`, or `download` on its first use in the cluster).
    public var loras: [AppliedLoRA]?
    /// Every parameter as the run uses it: defaults filled in, aliases resolved, the seed picked.
    public var input: RunRequest
    /// Set when the run failed: the same code and message the failing /run response carried.
    public var error: RunError?
    /// Steps done so far, while the run is running (from the worker's progress reports).
    public var progress: Progress?
    /// While the run waits for one of its LoRAs to download (before its steps start): which, and how far.
    public var loraDownload: LoRADownload?

    public struct LoRADownload: Encodable, Sendable {
        public var parameter: String
        public var bytesDone: Int
        public var bytesTotal: Int?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case parameter
            case bytesDone = "bytes_done"
            case bytesTotal = "bytes_total"
        }
        init(parameter: String, bytesDone: Int, bytesTotal: Int?) {
            self.parameter = parameter
            self.bytesDone = bytesDone
            self.bytesTotal = bytesTotal
        }

        init(_ d: RunSnapshot.LoRADownload) {
            self.init(parameter: d.parameter, bytesDone: d.progress.bytesDone, bytesTotal: d.progress.bytesTotal)
        }

        /// For logs: "extra_lora: 12.3 of 171.9 MB".
        var text: String {
            let done = String(format: "%.1f", Double(bytesDone) / 1e6)
            return "\(parameter): \(done)\(bytesTotal.map { " of " + String(format: "%.1f", Double($0) / 1e6) } ?? "") MB"
        }
    }
    /// Runs ahead of this one while it is queued (0: it starts next).
    public var queuePosition: Int?
    /// Attempts so far; more than 1 when a worker died under it and it was run again.
    public var attempts: Int
    public var createdAt: Date
    public var startedAt: Date?
    public var completedAt: Date?
    /// Price per image, images charged, amount charged and still held (see `RunCost`).
    public var cost: RunCost
    /// Set when `--output-retention` deleted the run's images: `output` is null and this says when and why,
    /// instead of links that would answer 404.
    public var outputExpired: OutputExpired?

    public struct OutputExpired: Encodable, Sendable {
        public var code = "output_expired"
        public var expiredAt: Date
        public var message: String
        enum CodingKeys: String, CodingKey, CaseIterable {
            case code, message
            case expiredAt = "expired_at"
        }
    }

    public struct RunError: Encodable, Sendable {
        public var code: RunFailureCode
        public var message: String
        enum CodingKeys: String, CodingKey, CaseIterable { case code, message }
    }

    public struct Progress: Encodable, Sendable {
        public var step: Int
        public var total: Int
        enum CodingKeys: String, CodingKey, CaseIterable { case step, total }
    }

    /// What the safety checker did, in words too, so "no check ran" is never silent.
    public struct Safety: Encodable, Sendable {
        public var checker: String?
        public var ran: Bool
        public var dropped: Int
        public var note: String

        enum CodingKeys: String, CodingKey, CaseIterable { case checker, ran, dropped, note }

        /// `checker` is written as null rather than left out, so clients can rely on the key.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(checker, forKey: .checker)
            try c.encode(ran, forKey: .ran)
            try c.encode(dropped, forKey: .dropped)
            try c.encode(note, forKey: .note)
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case status, output, seed, seeds, width, height, path, timings
        case safetyChecker = "safety_checker"
        case error, progress, input, loras
        case loraDownload = "lora_download"
        case requestID = "request_id"
        case modelID = "model_id"
        case outputType = "output_type"
        case pathReason = "path_reason"
        case queuePosition = "queue_position"
        case attempts, cost
        case createdAt = "created_at"
        case startedAt = "started_at"
        case completedAt = "completed_at"
        case outputExpired = "output_expired"
    }

    public init(job: Job, baseURL: String, links: OutputLinks? = nil, currency: String = "USD",
                progress: JobEvents.Progress? = nil, queuePosition: Int? = nil) {
        cost = RunCost(job: job, currency: currency)
        self.queuePosition = queuePosition
        attempts = job.attempts
        createdAt = job.createdAt
        startedAt = job.status == .queued ? nil : job.startedAt
        completedAt = job.finishedAt
        if let p = progress, job.status == .running { self.progress = Progress(step: p.step, total: p.total) }
        if let f = job.failure { error = RunError(code: f.code, message: f.message) }
        requestID = job.id
        input = job.request
        status = job.status.rawValue
        modelID = job.request.modelID
        seed = job.seed
        width = job.request.size.width
        height = job.request.size.height
        if let result = job.result, job.status == .succeeded {
            if let expired = job.outputsExpiredAt {
                output = .removed
                outputExpired = OutputExpired(
                    expiredAt: expired,
                    message: "this run's \(result.outputs.count) image(s) were deleted after the server's output retention period; the run and its charge are kept (save images when a run succeeds, or use a webhook)")
            } else {
                let urls = result.outputs.map { links?.url(for: $0.name, apiBaseURL: baseURL) ?? OutputLinks.apiURL(for: $0.name, apiBaseURL: baseURL) }
                output = job.request.numOutputs > 1 ? .many(urls) : urls.first.map(Output.one)
            }
            outputType = "image"
            if job.request.numOutputs > 1 { seeds = result.outputs.map(\.seed) }
            path = result.path
            pathReason = result.pathReason
            var timings = Timings(inferenceMs: result.inferenceMs, encodeMs: result.encodeMs, batchSize: result.batchSize)
            if let s = job.startedAt, let f = job.finishedAt { timings.totalMs = (f.timeIntervalSince(s) * 10_000).rounded() / 10 }
            self.timings = timings
            let s = result.safety ?? SafetyOutcome(checker: nil, ran: false, dropped: 0)
            let note: String =
                if s.checker == nil { "no safety checker is configured for this model: no check ran" }
                else if !s.ran { "disable_safety_checker was set: no check ran" }
                else if s.dropped == 0 { "checked: no image was flagged" }
                else { "checked: \(s.dropped) image(s) flagged and not delivered (not charged)" }
            safetyChecker = Safety(checker: s.checker, ran: s.ran, dropped: s.dropped, note: note)
            loras = result.loras
        }
    }
}

extension RunView {
    /// The /check object of a run as it is now.
    init(_ snapshot: RunSnapshot, baseURL: String, links: OutputLinks?) {
        self.init(job: snapshot.job, baseURL: baseURL, links: links, currency: snapshot.currency,
                  progress: snapshot.progress, queuePosition: snapshot.queuePosition)
        loraDownload = snapshot.loraDownload.map(LoRADownload.init)
    }
}

public struct SuccessEnvelope<T: Encodable & Sendable>: Encodable, Sendable {
    public var success = true
    public var data: T
    enum CodingKeys: String, CodingKey, CaseIterable { case success, data }

    /// `{"success": true, "data": …}` around the data's schema.
    static func schema(_ data: JSONSchema) -> JSONSchema {
        .keyed(CodingKeys.self, required: [.success, .data]) { key in
            switch key {
            case .success: .const(.bool(true))
            case .data: data
            }
        }
    }
}

extension RunView {
    public static var schema: JSONSchema {
        .component("RunData", JSONSchema.keyed(CodingKeys.self, required: [.requestID, .status]) { key in
            switch key {
            case .requestID: .integer()
            case .status: .strings(JobStatus.allCases.map(\.rawValue))
            case .modelID: .string()
            case .output:
                .oneOf([.string(format: "uri"), .array(of: .string(format: "uri")), .null])
                    .described("The image URL (an array when num_outputs > 1); null once output_expired is set.")
            case .outputType: .strings(["image"])
            case .seed: .integer()
            case .seeds: .array(of: .integer())
            case .width, .height: .integer()
            case .path: .strings(ExecutionPath.allCases.map(\.rawValue))
            case .pathReason: .string()
            case .timings: Timings.schema
            case .safetyChecker: Safety.schema
            case .error: RunError.schema
            case .progress: Progress.schema
            case .queuePosition: JSONSchema.integer(minimum: 0).described("Runs ahead of this one while it is queued.")
            case .attempts: JSONSchema.integer(minimum: 0).described("More than 1 when a worker died under the run and it was run again.")
            case .createdAt, .startedAt, .completedAt: .string(format: "date-time")
            case .input: JSONSchema.anyObject.described("Every parameter as the run uses it: defaults filled in, the seed picked.")
            case .cost: RunCost.schema
            case .outputExpired: OutputExpired.schema
            case .loras: .array(of: AppliedLoRA.schema)
            case .loraDownload:
                JSONSchema.keyed(LoRADownload.CodingKeys.self, required: [.parameter, .bytesDone]) { k in
                    switch k {
                    case .parameter: .string()
                    case .bytesDone, .bytesTotal: .integer(minimum: 0)
                    }
                }.described("While the run waits for one of its LoRAs to download: which, and how far (bytes_total from the file's server, when it says).")
            }
        }.described("A run. While it is queued or running, /run answers with request_id and status only; /check and the event stream have the rest."))
    }
}

extension RunView.Timings {
    public static var schema: JSONSchema {
        .keyed(CodingKeys.self) { key in
            switch key {
            case .inferenceMs, .encodeMs, .totalMs: .number()
            case .batchSize: JSONSchema.integer(minimum: 1).described("Runs that shared the pipeline call; inference_ms is the shared call's.")
            }
        }
    }
}

extension RunView.Safety {
    public static var schema: JSONSchema {
        .keyed(CodingKeys.self, required: Array(CodingKeys.allCases)) { key in
            switch key {
            case .checker: JSONSchema(type: .string, .null)
            case .ran: .boolean
            case .dropped: .integer(minimum: 0)
            case .note: .string()
            }
        }
    }
}

extension RunView.RunError {
    public static var schema: JSONSchema {
        .keyed(CodingKeys.self, required: [.code, .message]) { key in
            switch key {
            case .code: .strings(RunFailureCode.allCases.map(\.rawValue))
            case .message: .string()
            }
        }
    }
}

extension RunView.Progress {
    public static var schema: JSONSchema {
        .keyed(CodingKeys.self, required: [.step, .total]) { _ in .integer(minimum: 0) }
    }
}

extension RunView.OutputExpired {
    public static var schema: JSONSchema {
        JSONSchema.keyed(CodingKeys.self, required: [.code, .expiredAt, .message]) { key in
            switch key {
            case .code: .const(.string("output_expired"))
            case .expiredAt: .string(format: "date-time")
            case .message: .string()
            }
        }.described("Set when the server's output retention (--output-retention) deleted the run's images: output is null; the run and its charge stay.")
    }
}
