import Foundation

/// Turns the raw parameters of any body encoding into a `RunRequest`, reporting every problem at once.
/// Which parameters exist, their types, defaults and bounds come from the model's catalog entry
/// (`ParameterSchema`); what they mean for a FLUX pipeline (the size table, seeds per image) is decided here.
public struct RunRequestDecoder: Sendable {
    public let catalog: ModelCatalog
    /// The most LoRAs one run may stack (`--max-loras`).
    public let maxLoRAs: Int
    /// The most parameters a body may carry; a client sending more is confused or hostile.
    public static let maxParameterCount = 64

    public init(catalog: ModelCatalog, maxLoRAs: Int = LoRALimits().maxPerRun) {
        self.catalog = catalog
        self.maxLoRAs = maxLoRAs
    }

    /// A LoRA file sent in the request (multipart), to be checked and stored before the run is queued; `index`
    /// is its place in the run's `loras`.
    public struct LoRAUpload: Sendable, Equatable {
        public var index: Int
        public var bytes: [UInt8]
    }

    /// A request's image inputs and uploaded LoRAs as sent, before they are fetched, checked and stored.
    public struct PendingInputs: Sendable, Equatable {
        public var image: ImageSource?
        public var mask: ImageSource?
        public var loraUploads: [LoRAUpload] = []
        public var isEmpty: Bool { image == nil && mask == nil && loraUploads.isEmpty }
        public var hasImages: Bool { image != nil || mask != nil }
    }

    /// A request without image inputs (every other caller; an image here is a programming error upstream).
    public func decode(_ raw: [String: ParameterValue]) throws(AtelierError) -> RunRequest {
        try decodeWithInputs(raw).request
    }

    /// The typed request and its image inputs. With an image, the size comes from it once it is read
    /// (`RunRequest.attach`), so aspect_ratio is not required and aspect_ratio, megapixels, width and height are
    /// ignored, as the hosted service does.
    public func decodeWithInputs(_ raw: [String: ParameterValue]) throws(AtelierError) -> (request: RunRequest, inputs: PendingInputs) {
        var p = Problems()
        if raw.count > Self.maxParameterCount {
            p.add("body", "too_many_parameters", "a request may carry at most \(Self.maxParameterCount) parameters; got \(raw.count)")
        }
        // The model decides which parameters exist, so model_id comes first.
        guard let modelID = p.string(raw, "model_id", required: true) else { throw .invalidParameters(p.items) }
        guard let entry = catalog[modelID] else {
            p.add("model_id", "unknown_model", "model_id must be one of \(catalog.ids.joined(separator: ", ")); got \"\(modelID)\"")
            throw .invalidParameters(p.items)
        }
        var rest = raw
        rest["model_id"] = nil
        rest["api_key"] = nil  // the key, read by the HTTP layer
        // Blank text is no image (as ImageSource reads it); any other value is one, to be checked as such.
        let hasImage: Bool =
            switch rest["image"] {
            case nil, .null?: false
            case .string(let s)?: !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            default: true
            }
        let definitions = entry.parameters.map { d in
            var d = d
            if hasImage && d.name == "aspect_ratio" { d.required = false }
            return d
        }
        let (typed, present) = ParameterSchema(definitions).validate(rest, into: &p)
        markOtherModelsParameters(&p, model: entry)
        let v = PipelineValues(typed: typed)
        var inputs = PendingInputs(image: typed.image("image"), mask: typed.image("mask"))
        if inputs.mask != nil && !hasImage {
            p.add("mask", "mask_without_image", "mask needs an image to paint on; send image too, or leave mask out")
        }
        let steps = v.integer(.numInferenceSteps)
        let strength = v.number(.promptStrength)
        if hasImage, let steps, let strength, SizeTable.imageToImageSteps(steps, strength: strength) < 1 {
            p.add("prompt_strength", "too_few_steps",
                  "with an image, prompt_strength must be greater than 0 (0 runs no denoising step and returns nothing new); got \(Problems.format(strength))")
        }

        // Size: the size table (docs/architecture.md, "Sizes"), or custom width × height rounded up to a multiple of 16; with an image, a
        // placeholder until the image is read.
        var size: ImageSize?
        let ratio = v.string(.aspectRatio)
        if hasImage {
            size = ImageSize(width: 0, height: 0)
        } else if ratio == SizeTable.custom {
            for side in ["width", "height"] where !present.contains(side) {
                p.add(side, "required", "\(side) is required when aspect_ratio is custom (\(SizeTable.customSideRange.lowerBound)–\(SizeTable.customSideRange.upperBound))")
            }
            if let w = typed.integer("width"), let h = typed.integer("height") {
                size = ImageSize(width: SizeTable.roundUpToMultipleOf16(w), height: SizeTable.roundUpToMultipleOf16(h))
            }
        } else if let ratio {
            size = v.string(.megapixels).flatMap { SizeTable.size(aspectRatio: ratio, megapixels: $0) }
            for side in ["width", "height"] where present.contains(side) {
                p.add(side, "requires_custom", "\(side) is only used when aspect_ratio is custom; got aspect_ratio \"\(ratio)\"")
            }
        }

        if !p.items.isEmpty { throw .invalidParameters(p.items) }
        // Every value below is the request's, the model's default or the table's (RunParameter.problems makes
        // sure of it when the catalog loads); a gap here is a model file that slipped past that check.
        guard let prompt = v.string(.prompt), let size, let megapixels = v.string(.megapixels), let numOutputs = v.integer(.numOutputs),
              let steps, let guidance = v.number(.guidance), let format = v.string(.outputFormat).flatMap(OutputFormat.init(parameter:)),
              let quality = v.integer(.outputQuality), let loraScale = v.number(.loraScale), let goFast = v.boolean(.goFast),
              let strength, let disableSafety = v.boolean(.disableSafetyChecker)
        else {
            throw .internalError("model \(modelID)'s catalog entry lacks a parameter every run needs: \(RunParameter.problems(in: entry).joined(separator: "; "))")
        }
        var request = RunRequest(
            modelID: modelID, prompt: prompt, aspectRatio: ratio ?? SizeTable.input, megapixels: megapixels,
            size: size, numOutputs: numOutputs, numInferenceSteps: steps, guidance: guidance,
            seed: typed.seed(RunParameter.seed.rawValue), outputFormat: format, outputQuality: quality,
            loraScale: loraScale, goFast: goFast, promptStrength: strength, disableSafetyChecker: disableSafety
        )
        // Stored only when on, so runs without it read back as they did before it existed.
        if v.boolean(.turbo) == true { request.turbo = true }
        (request.loras, inputs.loraUploads) = try requestedLoRAs(typed, v, loraScale: loraScale)
        return (request, inputs)
    }

    /// A name that is no parameter of this model but is one of another catalog model's is well formed for the
    /// server (its documents list every model's parameters): its problem is this model, said as such (422).
    func markOtherModelsParameters(_ p: inout Problems, model: ModelEntry) {
        for (i, problem) in p.items.enumerated() where problem.code == "unknown_parameter" {
            let owners = catalog.ids.filter { id in id != model.id && catalog[id]?.parameters.contains { $0.name == problem.param } == true }
            guard !owners.isEmpty else { continue }
            p.items[i] = ParameterProblem(param: problem.param, code: "parameter_of_another_model",
                                          message: "\(problem.param) is a parameter of \(owners.joined(separator: ", ")), not of \(model.id); send it to that model or leave it out")
        }
    }

    /// The LoRAs in the order they stack: lora_weights (at lora_scale), extra_lora (at extra_lora_scale), then loras.
    func requestedLoRAs(_ typed: TypedParameters, _ v: PipelineValues, loraScale: Double) throws(AtelierError) -> ([RequestedLoRA]?, [LoRAUpload]) {
        var given: [(param: String, input: LoRAInput, scale: Double)] = []
        if let l = typed.lora(RunParameter.loraWeights.rawValue) { given.append((RunParameter.loraWeights.rawValue, l, loraScale)) }
        if let l = typed.lora(RunParameter.extraLora.rawValue) { given.append((RunParameter.extraLora.rawValue, l, v.number(.extraLoraScale) ?? 1)) }
        for (i, (l, scale)) in (typed.loraList(RunParameter.loras.rawValue) ?? []).enumerated() {
            given.append(("\(RunParameter.loras.rawValue)[\(i)].path", l, scale))
        }
        guard given.count <= maxLoRAs else {
            throw .invalid(RunParameter.loras.rawValue, "too_many_loras",
                           "a run may stack at most \(maxLoRAs) LoRAs (lora_weights, extra_lora and the entries of loras together); got \(given.count)")
        }
        guard !given.isEmpty else { return (nil, []) }
        var uploads: [LoRAUpload] = []
        let loras = given.enumerated().map { i, g in
            switch g.input {
            case .url(let source, let url):
                return RequestedLoRA(parameter: g.param, source: source, url: url.absoluteString, scale: g.scale)
            case .upload(let bytes, let filename):
                uploads.append(LoRAUpload(index: i, bytes: bytes))
                return RequestedLoRA(parameter: g.param, source: "upload:\(filename ?? "unnamed")", url: nil, scale: g.scale)
            }
        }
        return (loras, uploads)
    }
}

/// A run's parameter values as the pipeline takes them: the request's (or the model's default, which
/// `ParameterSchema` fills in), else, for a parameter the model does not offer, the table's (`RunParameter`).
struct PipelineValues {
    let typed: TypedParameters

    func string(_ p: RunParameter) -> String? {
        if let s = typed.string(p.rawValue) { return s }
        if case .string(let s)? = p.contract.absent { return s }
        return nil
    }

    func integer(_ p: RunParameter) -> Int? {
        if let n = typed.integer(p.rawValue) { return n }
        if case .number(let n)? = p.contract.absent { return Int(n) }
        return nil
    }

    func number(_ p: RunParameter) -> Double? {
        if let d = typed.number(p.rawValue) { return d }
        if case .number(let n)? = p.contract.absent { return n }
        return nil
    }

    func boolean(_ p: RunParameter) -> Bool? {
        if let b = typed.boolean(p.rawValue) { return b }
        if case .bool(let b)? = p.contract.absent { return b }
        return nil
    }
}

extension RunRequest {
    /// Attaches the checked, stored inputs; the output takes the image's size (capped at 1440 a side, multiples
    /// of 16). The aspect ratio then reads "input" for clients reading the run back.
    public mutating func attach(image: InputImage, mask: InputImage?) {
        self.image = image
        self.mask = mask
        size = SizeTable.size(forInput: image.width, image.height)
        aspectRatio = SizeTable.input
    }
}
