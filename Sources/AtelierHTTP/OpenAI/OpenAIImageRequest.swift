import AtelierCore
import AtelierRuns
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

    /// Catalog parameters that OpenAI's own fields stand for here (the run contract's `dialectNames`), refused under
    /// their catalog names (and aliases) so that a request says each thing once.
    static let coveredByOpenAI: [String: String] = Dictionary(uniqueKeysWithValues: RunParameter.allCases.compactMap { p in
        p.contract.dialectNames["openai"].map { (p.rawValue, $0) }
    })

    /// The catalog parameter a dialect field became, for errors: a problem with `num_outputs` is reported as `n`.
    static let clientNames = coveredByOpenAI.merging(["model_id": "model"]) { $1 }

    init(_ fields: [String: ParameterValue], catalog: ModelCatalog) throws {
        var rest = fields
        for name in Self.ignored {
            if case .file? = rest.removeValue(forKey: name) { throw AtelierError.invalid(name, "invalid_type", "\(name) must be text, not a file") }
        }
        if rest["model_id"] != nil {
            throw AtelierError.invalid("model_id", "unknown_parameter", "model_id is /api/v4/run's name for it; send model")
        }
        modelID = try Self.model(Self.text(rest.removeValue(forKey: "model"), "model"), catalog: catalog)
        rest["model_id"] = .string(modelID)

        let aliases = catalog[modelID]?.parameters.flatMap { d in (d.aliases ?? []).map { ($0, d.name) } } ?? []
        for (name, openAIName) in Self.coveredByOpenAI.sorted(by: { $0.key < $1.key }) + aliases where rest[name] != nil {
            throw AtelierError.invalid(name, "unknown_parameter", "\(name) is not a field of this API; send \(openAIName)")
        }
        // Their catalog names were refused above, so the renames cannot collide.
        // (size is translated below: it stands for four parameters at once.)
        for (catalogName, name) in Self.coveredByOpenAI where name != "size" {
            if let value = rest.removeValue(forKey: name) { rest[catalogName] = value }
        }
        // OpenAI's default is PNG (the catalog's is WebP): its clients decode b64_json expecting it. (jpeg is the
        // catalog's own alias of jpg.)
        if rest["output_format"] == nil || rest["output_format"] == .null { rest["output_format"] = .string("png") }
        let format = try Self.text(rest.removeValue(forKey: "response_format"), "response_format") ?? "url"
        guard let responseFormat = ResponseFormat(rawValue: format) else {
            throw AtelierError.invalid("response_format", "invalid_choice", "response_format must be url or b64_json; got \"\(format.prefix(40))\"")
        }
        self.responseFormat = responseFormat
        switch try Self.text(rest.removeValue(forKey: "background"), "background") {
        case nil, "auto"?, "opaque"?: break
        case "transparent"?:
            throw AtelierError.invalid("background", "unsupported_value",
                                       "background transparent is not supported: FLUX images are opaque; leave background out, or send auto or opaque")
        case let other?:
            throw AtelierError.invalid("background", "invalid_choice", "background must be auto or opaque; got \"\(other.prefix(40))\"")
        }
        switch rest.removeValue(forKey: "stream") {
        case nil, .null?, .bool(false)?: break
        case .bool(true)?:
            throw AtelierError.invalid("stream", "unsupported_value",
                                       "stream is not supported on this route; leave it out (the answer comes once the images are ready)")
        default:
            throw AtelierError.invalid("stream", "invalid_type", "stream must be false or absent (streaming is not offered)")
        }
        if let size = try Self.text(rest.removeValue(forKey: "size"), "size"), size != "auto" {
            for (name, value) in try Self.size(size, entry: catalog[modelID]) { rest[name] = value }
        } else {
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
        // Strictly digits without leading zeros, as the document's pattern says.
        let sides = text.split(separator: "x", omittingEmptySubsequences: false).map {
            $0.first != "0" && $0.count <= 5 && $0.allSatisfy { $0.isASCII && $0.isNumber } ? Int($0) : nil
        }
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

    /// A field as text: JSON strings as they are, numbers written out (multipart sends everything as text).
    static func text(_ value: ParameterValue?, _ name: String) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case .number?, .bool?: return value!.display
        case .file?: throw AtelierError.invalid(name, "invalid_type", "\(name) must be text, not a file")
        }
    }
}
