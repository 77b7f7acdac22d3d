import Foundation

/// Turns the raw parameters of any body encoding into a `RunRequest`, reporting every problem at once.
/// Which parameters exist, their types, defaults and bounds come from the model's catalog entry
/// (`ParameterSchema`); what they mean for a FLUX pipeline (the size table, seeds per image) is decided here.
public struct RunRequestDecoder: Sendable {
    public let catalog: ModelCatalog
    /// The most parameters a body may carry; a client sending more is confused or hostile.
    public static let maxParameterCount = 64

    public init(catalog: ModelCatalog) {
        self.catalog = catalog
    }

    public func decode(_ raw: [String: ParameterValue]) throws(AtelierError) -> RunRequest {
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
        let schema = ParameterSchema(entry.parameters)
        let (typed, present) = schema.validate(rest, into: &p)

        // Size: DESIGN.md's table, or custom width × height rounded up to a multiple of 16.
        var size: ImageSize?
        let ratio = typed.string("aspect_ratio")
        if ratio == SizeTable.custom {
            for side in ["width", "height"] where !present.contains(side) {
                p.add(side, "required", "\(side) is required when aspect_ratio is custom (\(SizeTable.customSideRange.lowerBound)–\(SizeTable.customSideRange.upperBound))")
            }
            if let w = typed.integer("width"), let h = typed.integer("height") {
                size = ImageSize(width: SizeTable.roundUpToMultipleOf16(w), height: SizeTable.roundUpToMultipleOf16(h))
            }
        } else if let ratio {
            size = SizeTable.size(aspectRatio: ratio, megapixels: typed.string("megapixels") ?? "1")
            for side in ["width", "height"] where present.contains(side) {
                p.add(side, "requires_custom", "\(side) is only used when aspect_ratio is custom; got aspect_ratio \"\(ratio)\"")
            }
        }

        if !p.items.isEmpty { throw .invalidParameters(p.items) }
        guard let prompt = typed.string("prompt"), let size,
              let format = OutputFormat(parameter: typed.string("output_format") ?? "webp")
        else {
            throw .internalError("model \(modelID)'s catalog entry must define prompt, aspect_ratio and output_format")
        }
        return RunRequest(
            modelID: modelID, prompt: prompt, aspectRatio: ratio ?? "1:1", megapixels: typed.string("megapixels") ?? "1",
            size: size, numOutputs: typed.integer("num_outputs") ?? 1,
            numInferenceSteps: typed.integer("num_inference_steps") ?? 28, guidance: typed.number("guidance") ?? 3,
            seed: typed.seed("seed"), outputFormat: format, outputQuality: typed.integer("output_quality") ?? 80,
            loraScale: typed.number("lora_scale") ?? 1, goFast: typed.boolean("go_fast") ?? false,
            promptStrength: typed.number("prompt_strength") ?? 0.8,
            disableSafetyChecker: typed.boolean("disable_safety_checker") ?? false
        )
    }
}

