import AtelierCore
import Foundation

/// Messages of the worker protocol (contracts/worker-protocol.md), decoded leniently: unknown fields are ignored.
public enum WorkerInbound: Sendable, Equatable {
    case generate(GenerateCommand)
    /// Compatible runs (equal `RunRequest.batchKey`) made in one pipeline call; each is answered on its own.
    case generateBatch([GenerateCommand])
    /// Stop the named job at its next denoising step (the worker answers with an `error` whose code is `canceled`).
    case cancel(jobID: String)
    case shutdown
}

/// One run for the worker, every value explicit (the worker has no defaults of its own): each parameter of the
/// run contract (`RunParameter`) under its `workerField`, and the batch key the server computed.
public struct GenerateCommand: Sendable, Equatable, Codable {
    public struct Output: Sendable, Equatable, Codable {
        public var path: String
        public var seed: UInt64
        public init(path: String, seed: UInt64) {
            self.path = path
            self.seed = seed
        }
    }
    public var type = "generate"
    public var jobID: String
    public var prompt: String
    public var width: Int
    public var height: Int
    public var numInferenceSteps: Int
    public var guidance: Double
    public var loraScale: Double
    public var goFast: Bool
    /// The opt-in step cache.
    public var turbo: Bool
    public var outputFormat: String
    public var outputQuality: Int
    public var outputs: [Output]
    /// False when the request set disable_safety_checker.
    public var safetyCheck: Bool
    /// Image-to-image: the stored input image's path; inpainting adds the mask's. Null for text-to-image.
    public var image: String?
    public var mask: String?
    /// Which mask pixels are repainted: "white" (this API's convention) or "transparent" (OpenAI's).
    public var maskConvention: String
    /// prompt_strength: how much of the input image is denoised (1 without one).
    public var strength: Double
    /// The catalog model to run: the worker swaps in its LoRA (or runs the base alone).
    public var modelID: String
    /// `RunRequest.batchKey`: the worker puts runs in one call only when their keys are equal; null: alone.
    public var batchKey: String?
    /// The run's own LoRAs, on this machine, in the order they stack on the model's; empty for none.
    public var loras: [LoRA] = []

    /// One per-request LoRA for the worker: its file, content hash (the worker's memory cache key), scale, and
    /// the parameter that named it (for an error about its tensors).
    public struct LoRA: Sendable, Equatable, Codable {
        public var path: String
        public var sha256: String
        public var scale: Double
        public var parameter: String
        public init(path: String, sha256: String, scale: Double, parameter: String) {
            self.path = path
            self.sha256 = sha256
            self.scale = scale
            self.parameter = parameter
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type, prompt, width, height, guidance, outputs, image, mask, strength, turbo
        case modelID = "model_id"
        case maskConvention = "mask_convention"
        case safetyCheck = "safety_check"
        case jobID = "job_id"
        case numInferenceSteps = "num_inference_steps"
        case loraScale = "lora_scale"
        case goFast = "go_fast"
        case outputFormat = "output_format"
        case outputQuality = "output_quality"
        case batchKey = "batch_key"
        case loras
    }

    /// `inputPaths`: where the run's image (and mask) are stored, in that order.
    public init(job: Job, paths: [String], inputPaths: [String] = []) {
        let r = job.request
        jobID = String(job.id)
        modelID = r.modelID
        prompt = r.prompt
        width = r.size.width
        height = r.size.height
        numInferenceSteps = r.numInferenceSteps
        guidance = r.guidance
        loraScale = r.loraScale
        goFast = r.goFast
        turbo = r.turbo == true
        outputFormat = r.outputFormat.rawValue
        outputQuality = r.outputQuality
        outputs = zip(paths, r.seeds(base: job.seed)).map { Output(path: $0, seed: $1) }
        safetyCheck = !r.disableSafetyChecker
        strength = r.promptStrength
        maskConvention = InputImage.MaskConvention.white.rawValue
        batchKey = r.batchKey
        if r.image != nil, let imagePath = inputPaths.first {
            image = imagePath
            mask = r.mask != nil && inputPaths.count > 1 ? inputPaths[1] : nil
            if mask != nil, let convention = r.mask?.convention { maskConvention = convention.rawValue }
        }
    }

    /// Every field written, nulls included: the worker reads each one and assumes none.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(jobID, forKey: .jobID)
        try c.encode(prompt, forKey: .prompt)
        try c.encode(width, forKey: .width)
        try c.encode(height, forKey: .height)
        try c.encode(numInferenceSteps, forKey: .numInferenceSteps)
        try c.encode(guidance, forKey: .guidance)
        try c.encode(loraScale, forKey: .loraScale)
        try c.encode(goFast, forKey: .goFast)
        try c.encode(turbo, forKey: .turbo)
        try c.encode(outputFormat, forKey: .outputFormat)
        try c.encode(outputQuality, forKey: .outputQuality)
        try c.encode(outputs, forKey: .outputs)
        try c.encode(safetyCheck, forKey: .safetyCheck)
        try c.encode(image, forKey: .image)
        try c.encode(mask, forKey: .mask)
        try c.encode(maskConvention, forKey: .maskConvention)
        try c.encode(strength, forKey: .strength)
        try c.encode(modelID, forKey: .modelID)
        try c.encode(batchKey, forKey: .batchKey)
        try c.encode(loras, forKey: .loras)
    }
}

public struct WorkerReady: Sendable, Equatable, Decodable {
    public struct Model: Sendable, Equatable, Decodable {
        public var base: String?
        public var lora: String?
        public var adapter: String?
        public var randomWeights: Bool
        enum CodingKeys: String, CodingKey {
            case base, lora, adapter
            case randomWeights = "random_weights"
        }
    }
    public struct FastPath: Sendable, Equatable, Decodable {
        public var available: Bool
        public var reason: String
    }
    public var protocolVersion: Int
    public var pid: Int32
    public var device: String
    public var model: Model
    public var fastPath: FastPath
    public var loadMs: Double
    enum CodingKeys: String, CodingKey {
        case pid, device, model
        case protocolVersion = "protocol"
        case fastPath = "fast_path"
        case loadMs = "load_ms"
    }
}

public struct WorkerProgress: Sendable, Equatable, Decodable {
    public var jobID: String
    public var step: Int
    public var total: Int
    enum CodingKeys: String, CodingKey {
        case step, total
        case jobID = "job_id"
    }
}

public struct WorkerResult: Sendable, Equatable, Decodable {
    public struct Image: Sendable, Equatable, Decodable {
        public var path: String
        public var seed: UInt64
        public var width: Int
        public var height: Int
        public var bytes: Int
        public var format: String
    }
    public var jobID: String
    public var images: [Image]
    public var path: String
    public var pathReason: String
    public var timings: [String: Double]
    public var safety: SafetyOutcome?
    /// Runs that shared the pipeline call; absent from workers that do not batch.
    public var batchSize: Int?
    /// Per request LoRA, in the command's order: whether the worker had it loaded already (memory) or read it.
    public var loras: [LoRAReport]?
    /// Filled in by this node from the worker's report and where it found each file; never sent by the worker.
    public var applied: [AppliedLoRA]?

    public struct LoRAReport: Sendable, Equatable, Decodable {
        public var sha256: String
        public var fromMemory: Bool
        enum CodingKeys: String, CodingKey {
            case sha256
            case fromMemory = "from_memory"
        }
    }

    enum CodingKeys: String, CodingKey {
        case images, path, timings, safety, loras
        case jobID = "job_id"
        case batchSize = "batch_size"
        case pathReason = "path_reason"
    }
}

public struct WorkerErrorReport: Sendable, Equatable, Decodable {
    public var jobID: String?
    public var code: String
    public var message: String
    enum CodingKeys: String, CodingKey {
        case code, message
        case jobID = "job_id"
    }
}

/// A compiled path's background warm-up state (`path_status`), sent whenever it changes, naming no job.
public struct WorkerPathStatus: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable {
        case building, warming, ready, failed
    }
    /// "fast" (go_fast's fp8 transformer) or "standard" (the standard path's compiled twin).
    public var path: String
    public var state: State
    public var warm: Int
    public var total: Int
    public var reason: String
    public var seconds: Double
    /// Compile-cache hits and misses and Dynamo's compiled frames, once ready.
    public var cache: [String: Int]

    public init(path: String, state: State, warm: Int, total: Int, reason: String = "", seconds: Double = 0, cache: [String: Int] = [:]) {
        self.path = path
        self.state = state
        self.warm = warm
        self.total = total
        self.reason = reason
        self.seconds = seconds
        self.cache = cache
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decode(String.self, forKey: .path)
        state = try c.decode(State.self, forKey: .state)
        warm = try c.decodeIfPresent(Int.self, forKey: .warm) ?? 0
        total = try c.decodeIfPresent(Int.self, forKey: .total) ?? 0
        reason = try c.decodeIfPresent(String.self, forKey: .reason) ?? ""
        seconds = try c.decodeIfPresent(Double.self, forKey: .seconds) ?? 0
        cache = try c.decodeIfPresent([String: Int].self, forKey: .cache) ?? [:]
    }

    /// For the log and /healthz readers: "warming 3 of 22 sizes", "ready in 41.2 s", "failed: …".
    public var summary: String {
        switch state {
        case .building: "building"
        case .warming: "warming \(warm) of \(total) sizes"
        case .ready: "ready in \(String(format: "%.1f", seconds)) s" + (cache.isEmpty ? "" : " (compile cache: \(cache.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))")
        case .failed: "failed after \(String(format: "%.1f", seconds)) s: \(reason)"
        }
    }
}

public enum WorkerOutbound: Sendable, Equatable, Decodable {
    case ready(WorkerReady)
    case pathStatus(WorkerPathStatus)
    case stats(WorkerStats)
    case progress(WorkerProgress)
    case result(WorkerResult)
    case error(WorkerErrorReport)

    enum TypeKey: String, CodingKey { case type }

    public init(from decoder: any Decoder) throws {
        let kind = try decoder.container(keyedBy: TypeKey.self).decode(String.self, forKey: .type)
        switch kind {
        case "ready": self = .ready(try WorkerReady(from: decoder))
        case "path_status": self = .pathStatus(try WorkerPathStatus(from: decoder))
        case "stats": self = .stats(try WorkerStats(from: decoder))
        case "progress": self = .progress(try WorkerProgress(from: decoder))
        case "result": self = .result(try WorkerResult(from: decoder))
        case "error": self = .error(try WorkerErrorReport(from: decoder))
        default:
            throw DecodingError.dataCorrupted(.init(codingPath: [TypeKey.type], debugDescription: "unknown message type \(kind)"))
        }
    }

    public static func decode(line: some StringProtocol) throws -> WorkerOutbound {
        try JSONDecoder().decode(WorkerOutbound.self, from: Data(line.utf8))
    }
}

extension WorkerInbound {
    public func encodedLine() throws -> Data {
        var data: Data
        switch self {
        case .generate(let g):
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            data = try e.encode(g)
        case .generateBatch(let jobs):
            struct Batch: Encodable {
                var type = "generate_batch"
                var jobs: [GenerateCommand]
            }
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            data = try e.encode(Batch(jobs: jobs))
        case .cancel(let id):
            data = try JSONEncoder().encode(["type": "cancel", "job_id": id])
        case .shutdown:
            data = Data(#"{"type":"shutdown"}"#.utf8)
        }
        data.append(0x0A)
        return data
    }
}
