import AtelierCore
import Foundation
import MultipartKit
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
            return try parseJSON(body)
        case "application/x-www-form-urlencoded":
            return try parseForm(String(buffer: body))
        case "multipart/form-data":
            guard let boundary = parameter("boundary", in: contentType ?? "") else {
                throw .malformedBody("multipart/form-data needs a boundary in its Content-Type header")
            }
            return try parseMultipart(body, boundary: boundary)
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

    /// A JSON scalar, decoded without Foundation's number/bool confusion.
    enum Scalar: Decodable {
        case value(ParameterValue)
        case list([String])
        case nested

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .value(.null) }
            else if let b = try? c.decode(Bool.self) { self = .value(.bool(b)) }
            else if let d = try? c.decode(Double.self) { self = .value(.number(d)) }
            else if let s = try? c.decode(String.self) { self = .value(.string(s)) }
            else if let l = try? c.decode([String].self) { self = .list(l) }
            else { self = .nested }
        }
    }

    static func parseJSON(_ body: ByteBuffer) throws(AtelierError) -> [String: ParameterValue] {
        let object: [String: Scalar]
        do {
            object = try JSONDecoder().decode([String: Scalar].self, from: Data(buffer: body))
        } catch {
            throw .malformedBody("the body is not a JSON object of parameters (\(Self.describe(error))); send e.g. {\"model_id\": \"flux-cute-3d-kawaii\", \"prompt\": \"…\"}")
        }
        var out: [String: ParameterValue] = [:]
        for (k, v) in object {
            switch v {
            case .value(let p): out[k] = p
            // The one list parameter; form and multipart clients send it comma-separated, which is what it becomes.
            // An empty list is kept visible (not "absent") so it is refused, not defaulted.
            case .list(let l) where k == "webhook_events_filter": out[k] = .string(l.isEmpty ? "[]" : l.joined(separator: ","))
            case .list, .nested: throw .malformedBody("\(k) must be a string, number or boolean, not an object or array")
            }
        }
        return out
    }

    static func describe(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let ctx) = error { return ctx.debugDescription }
        if case DecodingError.typeMismatch(_, let ctx) = error { return ctx.debugDescription }
        return "invalid JSON"
    }

    static func parseForm(_ text: String) throws(AtelierError) -> [String: ParameterValue] {
        var out: [String: ParameterValue] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = decodeFormComponent(kv[0]), let value = decodeFormComponent(kv.count > 1 ? kv[1] : "") else {
                throw .malformedBody("the form body has a badly percent-encoded field near \"\(pair.prefix(40))\"")
            }
            if out[key] != nil { throw .malformedBody("\(key) is given twice in the form body; send it once") }
            out[key] = .string(value)
        }
        return out
    }

    static func decodeFormComponent(_ s: Substring) -> String? {
        s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    static func parseMultipart(_ body: ByteBuffer, boundary: String) throws(AtelierError) -> [String: ParameterValue] {
        final class Collector {
            var parts: [(headers: [String: String], body: [UInt8])] = []
            var headers: [String: String] = [:]
            var bytes: [UInt8] = []
        }
        let collector = Collector()
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in collector.headers[name.lowercased()] = value }
        parser.onBody = { buffer in collector.bytes.append(contentsOf: buffer.readableBytesView) }
        parser.onPartComplete = {
            collector.parts.append((collector.headers, collector.bytes))
            collector.headers = [:]
            collector.bytes = []
        }
        do {
            try parser.execute(body)
        } catch {
            throw .malformedBody("the multipart body could not be read (\(error)); check its boundary")
        }
        var out: [String: ParameterValue] = [:]
        for part in collector.parts {
            let disposition = part.headers["content-disposition"] ?? ""
            guard let name = parameter("name", in: disposition) else {
                throw .malformedBody("a multipart part has no name in its Content-Disposition header")
            }
            if out[name] != nil { throw .malformedBody("\(name) is given twice in the multipart body; send it once") }
            if let filename = parameter("filename", in: disposition) {
                out[name] = .file(bytes: part.body, filename: filename, contentType: part.headers["content-type"])
            } else {
                out[name] = .string(String(decoding: part.body, as: UTF8.self))
            }
        }
        return out
    }
}
