import AtelierCore
import Foundation

/// An OpenAI Images request (`/v1/images/generations`, `/v1/images/edits`) translated into the catalog's
/// parameters. Only OpenAI's own words are translated here (`n`, `size`, `response_format`, `output_format`,
/// `output_compression`, `model`); every other field (openai-python's `extra_body`: `seed`,
/// `num_inference_steps`, `guidance`, `lora_scale`, `go_fast`, …) goes to the catalog's decoder as it came, so
/// the model's parameters are checked in one place whichever API carried them.
struct OpenAIImageRequest: Sendable {
    enum ResponseFormat: String, Sendable {
        case url
        case b64JSON = "b64_json"
    }

    var parameters: [String: ParameterValue]
    var responseFormat: ResponseFormat
    var modelID: String

    /// OpenAI fields that mean nothing for a FLUX model: accepted (clients send them by default) and left out.
    static let ignored: Set<String> = ["user", "quality", "style", "moderation", "safety_identifier", "input_fidelity", "partial_images"]

    /// The catalog parameter a dialect field became, for errors: a problem with `num_outputs` is reported as `n`.
    static let clientNames = [
        "num_outputs": "n", "output_quality": "output_compression", "model_id": "model",
        "aspect_ratio": "size", "megapixels": "size", "width": "size", "height": "size",
    ]

    init(_ fields: [String: ParameterValue], catalog: ModelCatalog) throws {
        var rest = fields
        for name in Self.ignored { rest[name] = nil }
        modelID = try Self.model(Self.text(rest.removeValue(forKey: "model"), "model"), catalog: catalog)
        rest["model_id"] = .string(modelID)

        try Self.move("n", to: "num_outputs", in: &rest)
        try Self.move("output_compression", to: "output_quality", in: &rest)
        switch try Self.text(rest["output_format"], "output_format")?.lowercased() {
        // OpenAI's default is PNG (the catalog's is WebP): its clients decode b64_json expecting it.
        case nil: rest["output_format"] = .string("png")
        case "jpeg": rest["output_format"] = .string("jpg")
        default: break
        }
        let format = try Self.text(rest.removeValue(forKey: "response_format"), "response_format") ?? "url"
        guard let responseFormat = ResponseFormat(rawValue: format) else {
            throw AtelierError.invalid("response_format", "invalid_choice", "response_format must be url or b64_json; got \"\(format.prefix(40))\"")
        }
        self.responseFormat = responseFormat
        if try Self.text(rest.removeValue(forKey: "background"), "background") == "transparent" {
            throw AtelierError.invalid("background", "unsupported_value",
                                       "background transparent is not supported: FLUX images are opaque; leave background out, or send auto or opaque")
        }
        if case .bool(true)? = rest.removeValue(forKey: "stream") {
            throw AtelierError.invalid("stream", "unsupported_value",
                                       "stream is not supported on this route; leave it out (the answer comes once the images are ready)")
        }
        if let size = try Self.text(rest.removeValue(forKey: "size"), "size"), size != "auto" {
            guard rest["aspect_ratio"] == nil, rest["width"] == nil, rest["height"] == nil else {
                throw AtelierError.invalid("size", "conflicting_parameters", "send size or aspect_ratio/width/height, not both")
            }
            for (name, value) in try Self.size(size, entry: catalog[modelID]) { rest[name] = value }
        } else if rest["aspect_ratio"] == nil {
            rest["aspect_ratio"] = .string("1:1")
        }
        parameters = rest
    }

    /// A catalog id; absent, or one of OpenAI's own model names (a client that cannot change it), the first
    /// catalog model.
    static func model(_ name: String?, catalog: ModelCatalog) throws -> String {
        guard let first = catalog.ids.first else { throw AtelierError.unavailable("this server has no models") }
        guard let name, !name.isEmpty else { return first }
        if catalog[name] != nil { return name }
        if name.hasPrefix("dall-e") || name.hasPrefix("gpt-image") { return first }
        throw AtelierError.modelNotFound(name)
    }

    /// `WIDTHxHEIGHT`: a size of the table (its aspect ratio and megapixels), else a custom size within the
    /// model's bounds.
    static func size(_ text: String, entry: ModelEntry?) throws -> [String: ParameterValue] {
        let sides = text.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        let table = SizeTable.megapixels.flatMap { mp in
            SizeTable.aspectRatios.compactMap { ratio in SizeTable.size(aspectRatio: ratio, megapixels: mp).map { (ratio, mp, $0) } }
        }
        let examples = table.prefix(4).map { "\($0.2.width)x\($0.2.height)" }.joined(separator: ", ")
        guard sides.count == 2, let width = sides[0], let height = sides[1] else {
            throw AtelierError.invalid("size", "invalid_size", "size must be WIDTHxHEIGHT (e.g. \(examples)) or auto; got \"\(text.prefix(40))\"")
        }
        if let (ratio, mp, _) = table.first(where: { $0.2 == ImageSize(width: width, height: height) }) {
            return ["aspect_ratio": .string(ratio), "megapixels": .string(mp)]
        }
        let side = entry?.parameters.first { $0.name == "width" }
        let low = Int(side?.minimum ?? Double(SizeTable.customSideRange.lowerBound))
        let high = Int(side?.maximum ?? Double(SizeTable.customSideRange.upperBound))
        guard (low...high).contains(width), (low...high).contains(height) else {
            throw AtelierError.invalid("size", "out_of_range",
                                       "size \(width)x\(height) is outside this model's bounds: each side from \(low) to \(high) (rounded up to a multiple of 16), or a table size such as \(examples)")
        }
        return ["aspect_ratio": .string(SizeTable.custom), "width": .number(Double(width)), "height": .number(Double(height))]
    }

    /// An OpenAI field given under its own name goes to the catalog's; both at once is ambiguous.
    static func move(_ name: String, to catalogName: String, in fields: inout [String: ParameterValue]) throws {
        guard let value = fields.removeValue(forKey: name) else { return }
        guard fields[catalogName] == nil else {
            throw AtelierError.invalid(name, "conflicting_parameters", "send \(name) or \(catalogName), not both")
        }
        fields[catalogName] = value
    }

    /// A field as text: JSON strings as they are, numbers written out (multipart sends everything as text).
    static func text(_ value: ParameterValue?, _ name: String) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let s)?: return s.trimmingCharacters(in: .whitespaces)
        case .number?, .bool?: return value!.display
        case .file?: throw AtelierError.invalid(name, "invalid_type", "\(name) must be text, not a file")
        }
    }
}
