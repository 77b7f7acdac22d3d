import AtelierCore
import AtelierRuns
import Foundation
import Hummingbird
import NIOCore

/// What the dialects (Replicate's and OpenAI's APIs) share: whose models they name, and how their JSON bodies
/// become catalog parameters. Both go through the strict reader /api/v4 uses, so a repeated key or invalid text
/// is refused the same way, naming the parameter.
public struct DialectConfiguration: Sendable {
    /// The owner of every catalog model in Replicate's API: a model is `owner/model_id`.
    public var replicateOwner = "atelier"
    public init() {}
}

enum DialectBody {
    /// The request's JSON object, member by member; an empty body is an empty object.
    static func object(_ request: Request, edge: HTTPEdge) async throws -> [String: JSONBody.Value] {
        let body = try await edge.readBody(request)
        if body.readableBytes == 0 { return [:] }
        let type = (request.headers[.contentType] ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        guard type == "application/json" || type.isEmpty else {
            throw AtelierError.unsupportedMediaType("Content-Type \(type) is not accepted here; send application/json")
        }
        var out: [String: JSONBody.Value] = [:]
        for (key, value) in try JSONBody.parameters(Array(body.readableBytesView)) { out[key] = value }
        return out
    }

    /// An object's members as catalog parameters: strings, numbers, booleans and null as they are; a list of
    /// strings (webhook_events_filter) comma-joined, the LoRA list as its JSON text; anything else refused naming its key.
    static func parameters(_ members: [JSONBody.Member]) throws -> [String: ParameterValue] {
        var out: [String: ParameterValue] = [:]
        for member in members { out[member.key] = try scalar(member.value, name: member.key) }
        return try BodyParser.checkedText(out)
    }

    static func scalar(_ value: JSONBody.Value, name: String) throws -> ParameterValue {
        switch value {
        case .string(let s): return .string(s)
        case .number(let d): return .number(d)
        case .bool(let b): return .bool(b)
        case .null: return .null
        // The LoRA list (fal's and Together's form) travels as its JSON text, as /api/v4/run keeps it.
        case .array where name == RunParameter.loras.rawValue: return .string(value.jsonText)
        case .array, .object:
            throw AtelierError.invalid(name, "invalid_type", "\(name) must be a string, number or boolean, not an object or array")
        }
    }

    static func string(_ value: JSONBody.Value?, name: String) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let s)?: return try TextRules.checked(s, param: name)
        default: throw AtelierError.invalid(name, "invalid_type", "\(name) must be a string")
        }
    }

    /// A list of strings given as a JSON array.
    static func strings(_ value: JSONBody.Value?, name: String) throws -> [String]? {
        switch value {
        case nil, .null?: return nil
        case .array(let items)?:
            return try items.map {
                guard case .string(let s) = $0 else { throw AtelierError.invalid(name, "invalid_type", "\(name) must be a list of strings") }
                return s
            }
        default: throw AtelierError.invalid(name, "invalid_type", "\(name) must be a list of strings")
        }
    }
}
