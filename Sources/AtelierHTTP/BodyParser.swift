import AtelierCore
import Foundation
import NIOCore

/// Reads a request body of any of the three encodings clients of the hosted API send (JSON; form-urlencoded;
/// multipart/form-data, which PHP's cURL sends for an array) into raw parameters. Every form and multipart value
/// arrives as a string; typing them is `RunRequestDecoder`'s job, so the rules live in one place.
public enum BodyParser {
    public static func parse(_ body: ByteBuffer, contentType: String?) throws(AtelierError) -> [String: ParameterValue] {
        if body.readableBytes == 0 { return [:] }
        let type = (contentType ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        switch type {
        case "application/json", "":
            // curl -d without -H sends form encoding; a body with no type at all is tried as JSON.
            return try checkedText(parseJSON(body))
        case "application/x-www-form-urlencoded":
            return try checkedText(parseForm(body))
        case "multipart/form-data":
            guard let boundary = parameter("boundary", in: contentType ?? "") else {
                throw .malformedBody("multipart/form-data needs a boundary in its Content-Type header")
            }
            return try checkedText(parseMultipart(body, boundary: boundary))
        default:
            throw .unsupportedMediaType(
                "Content-Type \(type) is not accepted; send application/json, application/x-www-form-urlencoded or multipart/form-data"
            )
        }
    }

    static func parameter(_ name: String, in header: String) -> String? {
        for piece in header.split(separator: ";").dropFirst() {
            let kv = piece.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, kv[0].lowercased() == name {
                return kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    static func parseJSON(_ body: ByteBuffer) throws(AtelierError) -> [String: ParameterValue] {
        var out: [String: ParameterValue] = [:]
        for (k, v) in try JSONBody.parameters(Array(body.readableBytesView)) {
            switch v {
            case .string(let s): out[k] = .string(s)
            case .number(let d): out[k] = .number(d)
            case .bool(let b): out[k] = .bool(b)
            case .null: out[k] = .null
            // The one list parameter; form and multipart clients send it comma-separated, which is what it becomes.
            // An empty list is kept visible (not "absent") so it is refused, not defaulted.
            case .array(let items) where k == "webhook_events_filter":
                let strings = items.compactMap { if case .string(let s) = $0 { s } else { nil } }
                guard strings.count == items.count else { throw .malformedBody("\(k) must be a list of strings") }
                out[k] = .string(strings.isEmpty ? "[]" : strings.joined(separator: ","))
            // The LoRA list (fal's and Together's form): kept as its JSON text, which is how forms send it too.
            case .array where k == RunParameter.loras.rawValue: out[k] = .string(v.jsonText)
            case .array, .object: throw .malformedBody("\(k) must be a string, number or boolean, not an object or array")
            }
        }
        return out
    }

    static func parseForm(_ body: ByteBuffer) throws(AtelierError) -> [String: ParameterValue] {
        var out: [String: ParameterValue] = [:]
        for pair in body.readableBytesView.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let kv = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let near = String(decoding: pair.prefix(40), as: UTF8.self)
            guard let keyBytes = percentDecoded(kv[0]), let key = String(validating: keyBytes, as: UTF8.self) else {
                throw .malformedBody("the form body has a badly encoded field name near \"\(near)\"")
            }
            guard let valueBytes = percentDecoded(kv.count > 1 ? kv[1] : []) else {
                throw .invalid(key, "malformed_body", "\(key) is badly percent-encoded in the form body (a % must be followed by two hex digits)")
            }
            guard let value = String(validating: valueBytes, as: UTF8.self) else {
                throw .invalid(key, "invalid_text", "\(key) is not valid UTF-8 once percent-decoded; send it as UTF-8 text")
            }
            guard out[key] == nil else { throw duplicate(key, "form") }
            out[key] = .string(value)
        }
        return out
    }

    /// application/x-www-form-urlencoded: `+` is a space, `%XX` a byte; nil for a broken escape.
    static func percentDecoded(_ s: some Collection<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = s.startIndex
        while i != s.endIndex {
            let b = s[i]
            if b == UInt8(ascii: "%") {
                let h = s.index(after: i)
                guard h != s.endIndex, s.index(after: h) != s.endIndex,
                      let v = UInt8(String(decoding: [s[h], s[s.index(after: h)]], as: UTF8.self), radix: 16) else { return nil }
                out.append(v)
                i = s.index(h, offsetBy: 2)
                continue
            }
            out.append(b == UInt8(ascii: "+") ? 0x20 : b)
            i = s.index(after: i)
        }
        return out
    }

    static func duplicate(_ name: String, _ encoding: String) -> AtelierError {
        .invalid(name, "duplicate_parameter", "\(name) is given twice in the \(encoding) body; send it once")
    }

    static func parseMultipart(_ body: ByteBuffer, boundary: String) throws(AtelierError) -> [String: ParameterValue] {
        var out: [String: ParameterValue] = [:]
        for part in try MultipartBody.parts(Array(body.readableBytesView), boundary: boundary) {
            let disposition = part.headers["content-disposition"] ?? ""
            guard disposition.lowercased().hasPrefix("form-data"), let name = parameter("name", in: disposition) else {
                throw .malformedBody("a multipart part has no \"Content-Disposition: form-data; name=...\" header")
            }
            guard out[name] == nil else { throw duplicate(name, "multipart") }
            if let filename = parameter("filename", in: disposition) {
                out[name] = .file(bytes: Array(part.body), filename: filename, contentType: part.headers["content-type"])
            } else {
                guard let text = String(validating: part.body, as: UTF8.self) else {
                    throw .invalid(name, "invalid_text", "\(name) is not valid UTF-8; send it as UTF-8 text (or as a file part, with a filename)")
                }
                out[name] = .string(text)
            }
        }
        return out
    }

    /// Every text value and every name obeys `TextRules`, whichever encoding carried it.
    static func checkedText(_ values: [String: ParameterValue]) throws(AtelierError) -> [String: ParameterValue] {
        var out: [String: ParameterValue] = [:]
        for (name, value) in values {
            if (try? TextRules.checked(name, param: name)) != name {
                throw .malformedBody("a parameter name holds a control character; parameter names are plain words like prompt")
            }
            if case .string(let s) = value { out[name] = .string(try TextRules.checked(s, param: name)) } else { out[name] = value }
        }
        return out
    }
}
