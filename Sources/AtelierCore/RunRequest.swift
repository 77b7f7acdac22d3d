/// A validated `/api/v4/run` request: every parameter typed, defaulted and in range.
public struct RunRequest: Sendable, Equatable, Codable {
    public var modelID: String
    public var prompt: String
    public var aspectRatio: String
    public var megapixels: String
    public var size: ImageSize
    public var numOutputs: Int
    public var numInferenceSteps: Int
    public var guidance: Double
    /// Nil until the server picks one; the seed used is stored and returned.
    public var seed: UInt64?
    public var outputFormat: OutputFormat
    public var outputQuality: Int
    public var loraScale: Double
    public var goFast: Bool
    /// The opt-in step cache (lossy, faster). Nil in runs stored before it existed: off.
    public var turbo: Bool?
    public var promptStrength: Double
    public var disableSafetyChecker: Bool
    /// Image-to-image: the input image (the output takes its size). Absent in runs stored before inputs existed.
    public var image: InputImage?
    /// Inpainting: white areas of the mask are repainted. Only with `image`.
    public var mask: InputImage?
    /// LoRAs the client asked for, stacked on the model's own in this order; nil when none (and in runs stored
    /// before per-request LoRAs existed).
    public var loras: [RequestedLoRA]?

    public init(
        modelID: String, prompt: String, aspectRatio: String, megapixels: String, size: ImageSize, numOutputs: Int,
        numInferenceSteps: Int, guidance: Double, seed: UInt64?, outputFormat: OutputFormat, outputQuality: Int,
        loraScale: Double, goFast: Bool, promptStrength: Double, disableSafetyChecker: Bool
    ) {
        self.modelID = modelID
        self.prompt = prompt
        self.aspectRatio = aspectRatio
        self.megapixels = megapixels
        self.size = size
        self.numOutputs = numOutputs
        self.numInferenceSteps = numInferenceSteps
        self.guidance = guidance
        self.seed = seed
        self.outputFormat = outputFormat
        self.outputQuality = outputQuality
        self.loraScale = loraScale
        self.goFast = goFast
        self.promptStrength = promptStrength
        self.disableSafetyChecker = disableSafetyChecker
    }

    enum CodingKeys: String, CodingKey {
        case modelID = "model_id"
        case prompt
        case aspectRatio = "aspect_ratio"
        case megapixels
        case size
        case numOutputs = "num_outputs"
        case numInferenceSteps = "num_inference_steps"
        case guidance
        case seed
        case outputFormat = "output_format"
        case outputQuality = "output_quality"
        case loraScale = "lora_scale"
        case goFast = "go_fast"
        case turbo
        case promptStrength = "prompt_strength"
        case disableSafetyChecker = "disable_safety_checker"
        case image, mask, loras
    }

    /// Seeds are kept within 2^53 so every JSON client reads them back exactly.
    public static let maxSeed: UInt64 = (1 << 53) - 1

    /// Image i of a run uses seed + i: reproducible from the request's seed, distinct per image.
    public func seeds(base: UInt64) -> [UInt64] {
        (0..<numOutputs).map { (base + UInt64($0)) % (RunRequest.maxSeed + 1) }
    }
}
