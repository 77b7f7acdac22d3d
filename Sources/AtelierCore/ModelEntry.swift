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
        /// For people: "0.03 USD".
        public var display: String { MoneyText.format(Int64(minorUnits), currency) }
    }

    public var id: String
    public var title: String
    public var description: String
    public var base: Weights
    public var lora: LoRA?
    public var triggerWords: [String]
    public var pricePerImage: Price
    public var license: String?
    /// The parameters `/api/v4/run` takes for this model, in the order documentation lists them.
    public var parameters: [ParameterDefinition]
    /// The worker's safety checker: "none", or "fixture:seed-mod:M:R" (a test fixture). Nil: none.
    public var safetyChecker: String?

    public init(
        id: String, title: String, description: String, base: Weights, lora: LoRA?, triggerWords: [String],
        pricePerImage: Price, license: String? = nil, parameters: [ParameterDefinition], safetyChecker: String? = nil
    ) {
        self.parameters = parameters
        self.safetyChecker = safetyChecker
        self.id = id
        self.title = title
        self.description = description
        self.base = base
        self.lora = lora
        self.triggerWords = triggerWords
        self.pricePerImage = pricePerImage
        self.license = license
    }

    enum CodingKeys: String, CodingKey {
        case id, title, description, base, lora, license, parameters
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
        parameters = try c.decode([ParameterDefinition].self, forKey: .parameters)
        safetyChecker = try c.decodeIfPresent(String.self, forKey: .safetyChecker)
    }
}
