/// A model in the catalog: one JSON file per model under `models/` (see models/README.md for the fields).
public struct ModelEntry: Sendable, Codable, Equatable {
    /// Where base weights come from: a local folder with model_index.json, or a Hugging Face repo id.
    public struct Weights: Sendable, Codable, Equatable {
        public var folder: String?
        public var repo: String?
        public init(folder: String? = nil, repo: String? = nil) {
            self.folder = folder
            self.repo = repo
        }
        /// The reference the worker's `--base` takes.
        public var reference: String? { folder ?? repo }
    }

    /// LoRA weights: a local .safetensors file, or a repo id plus the file's name in it.
    public struct LoRA: Sendable, Codable, Equatable {
        public var file: String?
        public var repo: String?
        public var weightName: String?
        public init(file: String? = nil, repo: String? = nil, weightName: String? = nil) {
            self.file = file
            self.repo = repo
            self.weightName = weightName
        }
        enum CodingKeys: String, CodingKey {
            case file, repo
            case weightName = "weight_name"
        }
    }

    /// Price of one delivered image, an integer in the currency's minor units (USD: cents), never a float.
    public struct Price: Sendable, Codable, Equatable {
        public var currency: String
        public var minorUnits: Int
        public init(currency: String, minorUnits: Int) {
            self.currency = currency
            self.minorUnits = minorUnits
        }
        enum CodingKeys: String, CodingKey {
            case currency
            case minorUnits = "minor_units"
        }
    }

    public var id: String
    public var title: String
    public var description: String
    public var base: Weights
    public var lora: LoRA?
    public var triggerWords: [String]
    public var pricePerImage: Price
    public var license: String?
    public var limits: ParameterLimits
    /// The worker's safety checker: "none", or "fixture:seed-mod:M:R" (a test fixture). Nil: none.
    public var safetyChecker: String?

    public init(
        id: String, title: String, description: String, base: Weights, lora: LoRA?, triggerWords: [String],
        pricePerImage: Price, license: String? = nil, limits: ParameterLimits = .init()
    ) {
        self.id = id
        self.title = title
        self.description = description
        self.base = base
        self.lora = lora
        self.triggerWords = triggerWords
        self.pricePerImage = pricePerImage
        self.license = license
        self.limits = limits
    }

    enum CodingKeys: String, CodingKey {
        case id, title, description, base, lora, license, limits
        case triggerWords = "trigger_words"
        case pricePerImage = "price_per_image"
        case safetyChecker = "safety_checker"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        title = try c.decode(String.self, forKey: .title)
        description = try c.decode(String.self, forKey: .description)
        base = try c.decode(Weights.self, forKey: .base)
        lora = try c.decodeIfPresent(LoRA.self, forKey: .lora)
        triggerWords = try c.decodeIfPresent([String].self, forKey: .triggerWords) ?? []
        pricePerImage = try c.decode(Price.self, forKey: .pricePerImage)
        license = try c.decodeIfPresent(String.self, forKey: .license)
        limits = try c.decodeIfPresent(ParameterLimits.self, forKey: .limits) ?? .init()
        safetyChecker = try c.decodeIfPresent(String.self, forKey: .safetyChecker)
    }
}

/// Defaults and bounds of the FLUX parameters (DESIGN.md's table); a catalog entry may narrow them.
public struct ParameterLimits: Sendable, Codable, Equatable {
    /// T5 reads at most 512 tokens (FLUX.1-dev's max_sequence_length), about 2,000–3,000 characters of English;
    /// text past that is cut by the tokenizer without notice, so a longer prompt is refused rather than silently
    /// shortened. The bound also caps what a request can make the worker tokenize.
    public var maxPromptLength: Int = 3000
    public var numInferenceSteps: ClosedRange<Int> = 1...50
    public var defaultNumInferenceSteps: Int = 28
    public var guidance: ClosedRange<Double> = 0...10
    public var defaultGuidance: Double = 3
    public var numOutputs: ClosedRange<Int> = 1...4
    public var loraScale: ClosedRange<Double> = -1...3
    public var defaultLoraScale: Double = 1
    public var outputQuality: ClosedRange<Int> = 0...100
    public var defaultOutputQuality: Int = 80

    public init() {}

    enum CodingKeys: String, CodingKey {
        case maxPromptLength = "max_prompt_length"
        case maxNumInferenceSteps = "max_num_inference_steps"
        case defaultNumInferenceSteps = "default_num_inference_steps"
        case maxNumOutputs = "max_num_outputs"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let v = try c.decodeIfPresent(Int.self, forKey: .maxPromptLength) { maxPromptLength = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .maxNumInferenceSteps) { numInferenceSteps = 1...v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .defaultNumInferenceSteps) { defaultNumInferenceSteps = v }
        if let v = try c.decodeIfPresent(Int.self, forKey: .maxNumOutputs) { numOutputs = 1...v }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(maxPromptLength, forKey: .maxPromptLength)
        try c.encode(numInferenceSteps.upperBound, forKey: .maxNumInferenceSteps)
        try c.encode(defaultNumInferenceSteps, forKey: .defaultNumInferenceSteps)
        try c.encode(numOutputs.upperBound, forKey: .maxNumOutputs)
    }
}
