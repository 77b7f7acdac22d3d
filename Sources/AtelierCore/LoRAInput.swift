import Foundation

/// A LoRA parameter's value as the client sent it, after its form is checked: an address resolved to its download
/// URL, or an uploaded file (multipart), whose bytes the run service checks and stores before the run is queued.
public enum LoRAInput: Sendable, Equatable {
    case url(source: String, url: URL)
    case upload(bytes: [UInt8], filename: String?)

    /// `lora_weights` / `extra_lora`: a LoRA address, or a file part; nil when absent or blank.
    static func parse(_ value: ParameterValue?, param: String) throws(AtelierError) -> LoRAInput? {
        switch value {
        case nil, .null?: return nil
        case .file(let bytes, let name, _)?: return .upload(bytes: bytes, filename: name)
        case .number?, .bool?:
            throw .invalid(param, "invalid_type", "\(param) must be \(LoRASource.usage); got \(value!.display)")
        case .string(let raw)?:
            let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if text.isEmpty { return nil }
            return .url(source: text, url: try LoRASource.resolve(text, param: param))
        }
    }

    /// `loras`: a JSON array of `{"path": ADDRESS, "scale": NUMBER}` (fal's and Together's form), as JSON or as
    /// that JSON's text in a form field. `scale` defaults to 1 and is bounded by `scales`.
    static func parseList(_ value: ParameterValue?, param: String, scales: ClosedRange<Double>) throws(AtelierError) -> [(LoRAInput, Double)]? {
        let usage = "\(param) must be a JSON array of {\"path\": URL, \"scale\": number}, e.g. [{\"path\": \"https://…/style.safetensors\", \"scale\": 0.8}]"
        let text: String
        switch value {
        case nil, .null?: return nil
        case .string(let s)?: text = s.trimmingCharacters(in: .whitespacesAndNewlines)
        default: throw .invalid(param, "invalid_type", usage)
        }
        if text.isEmpty { return nil }
        guard let items = try? JSONDecoder().decode([Entry].self, from: Data(text.utf8)) else {
            // JSON bodies send the array itself; this is a form field's text that is not a JSON array.
            throw .invalid(param, text.hasPrefix("[") ? "invalid_lora_list" : "invalid_type", usage)
        }
        var out: [(LoRAInput, Double)] = []
        var problems: [ParameterProblem] = []
        for (i, item) in items.enumerated() {
            let name = "\(param)[\(i)]"
            guard case .fields(let entry) = item, case .string(let path)? = entry["path"] else {
                problems.append(ParameterProblem(param: name, code: "invalid_type", message: "\(name) must be an object with a path (a LoRA URL) and an optional scale"))
                continue
            }
            if let unknown = entry.keys.sorted().first(where: { $0 != "path" && $0 != "scale" }) {
                problems.append(ParameterProblem(param: "\(name).\(unknown)", code: "unknown_parameter", message: "\(name).\(unknown) is not a field of a LoRA entry; send path and scale"))
                continue
            }
            var scale = 1.0
            switch entry["scale"] {
            case nil, .null?: break
            case .number(let n)? where scales.contains(n): scale = n
            default:
                problems.append(ParameterProblem(param: "\(name).scale", code: "out_of_range",
                                                 message: "\(name).scale must be a number from \(Problems.format(scales.lowerBound)) to \(Problems.format(scales.upperBound))"))
                continue
            }
            do {
                out.append((.url(source: path, url: try LoRASource.resolve(path, param: "\(name).path")), scale))
            } catch {
                if case .invalidParameters(let p) = error { problems += p }
            }
        }
        if !problems.isEmpty { throw .invalidParameters(problems) }
        return out
    }

    /// One array item of `loras`, read strictly: a JSON true is not a scale, and a field nobody reads is refused.
    enum Entry: Decodable {
        case fields([String: Field])
        case other

        init(from decoder: any Decoder) throws {
            self = (try? .fields(decoder.singleValueContainer().decode([String: Field].self))) ?? .other
        }
    }

    enum Field: Decodable {
        case string(String)
        case number(Double)
        case null
        case other

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if (try? c.decode(Bool.self)) != nil { self = .other }
            else if let n = try? c.decode(Double.self) { self = .number(n) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else { self = .other }
        }
    }
}
