/// One LoRA a client asked a run to apply on top of its model (`lora_weights`, `extra_lora`, an entry of
/// `loras`, or an uploaded file), as validated at submit. What the file holds is learnt only when it is fetched
/// (`LoRAFiles` on the worker node): its content hash then goes into the run's result, not here, because the
/// request is fixed once the run is queued.
public struct RequestedLoRA: Sendable, Equatable, Codable {
    /// The parameter that named it (`lora_weights`, `extra_lora`, `loras[1].path`): every error about it names this.
    public var parameter: String
    /// What the client sent, as sent (a URL, or `upload:<file name>`): shown back in the run's input.
    public var source: String
    /// Where it is downloaded from (a Hugging Face or CivitAI page resolved to its download URL); nil for an upload.
    public var url: String?
    /// SHA-256 of the file, hex: set at submit for an upload (stored then); nil for a URL until it is fetched.
    public var sha256: String?
    public var scale: Double

    public init(parameter: String, source: String, url: String?, sha256: String? = nil, scale: Double) {
        self.parameter = parameter
        self.source = source
        self.url = url
        self.sha256 = sha256
        self.scale = scale
    }

    enum CodingKeys: String, CodingKey {
        case parameter, source, url, sha256, scale
    }

    /// What the batch key compares: runs share a pipeline call only with the same LoRAs at the same scales.
    var batchText: String { "\(url ?? sha256 ?? source)@\(scale)" }
}

/// Where a run's LoRA came from on its way to the GPU (the run's result says, per LoRA): the worker's memory, this
/// node's disk cache, the cluster's shared store, or a download from its URL (the first use in the cluster).
public enum LoRAOrigin: String, Sendable, Codable, CaseIterable {
    case memory
    case nodeDisk = "node_disk"
    case clusterStore = "cluster_store"
    case download

    /// For logs: where the file was found.
    public var logText: String {
        switch self {
        case .memory: "already loaded"
        case .nodeDisk: "from this node's cache"
        case .clusterStore: "from the cluster's store"
        case .download: "downloaded"
        }
    }
}

/// One applied LoRA, as a succeeded run's result reports it.
public struct AppliedLoRA: Sendable, Equatable, Codable {
    public var parameter: String
    public var sha256: String
    public var bytes: Int
    public var scale: Double
    public var origin: LoRAOrigin
    public init(parameter: String, sha256: String, bytes: Int, scale: Double, origin: LoRAOrigin) {
        self.parameter = parameter
        self.sha256 = sha256
        self.bytes = bytes
        self.scale = scale
        self.origin = origin
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case parameter, sha256, bytes, scale, origin
    }

    /// One applied LoRA in a run's answer.
    public static var schema: JSONSchema {
        .keyed(CodingKeys.self, required: Array(CodingKeys.allCases)) { key in
            switch key {
            case .parameter: JSONSchema.string().described("The parameter that named it: lora_weights, extra_lora or loras[N].path.")
            case .sha256: JSONSchema.string().described("SHA-256 of the file, hex.")
            case .bytes: .integer(minimum: 0)
            case .scale: .number()
            case .origin: JSONSchema.strings(LoRAOrigin.allCases.map(\.rawValue))
                .described("Where it came from: the worker's memory, the node's disk cache, the cluster's store, or a download (its first use).")
            }
        }
    }
}

/// The operator's bounds on per-request LoRAs (`--max-loras`, `--lora-max-bytes`).
public struct LoRALimits: Sendable, Equatable {
    /// The most LoRAs one run may stack (the model's own LoRA not counted).
    public var maxPerRun: Int
    /// The largest file accepted, in bytes.
    public var maxBytes: Int
    public init(maxPerRun: Int = 3, maxBytes: Int = 2_000_000_000) {
        self.maxPerRun = maxPerRun
        self.maxBytes = maxBytes
    }
}
