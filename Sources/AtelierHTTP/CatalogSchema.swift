import AtelierCore
import Foundation

/// A JSON value to build documents from (the OpenAPI document, a Replicate version's schema).
public indirect enum JSONValue: Encodable, Sendable, Equatable {
    case string(String)
    case number(Double)
    case integer(Int64)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .number(let d): try c.encode(d)
        case .integer(let i): try c.encode(i)
        case .bool(let b): try c.encode(b)
        case .null: try c.encodeNil()
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// A value read by the strict reader (the generated part of the OpenAPI document).
    init(_ value: JSONBody.Value) {
        switch value {
        case .string(let s): self = .string(s)
        case .number(let d): self = d == d.rounded() && abs(d) < 9e18 ? .integer(Int64(d)) : .number(d)
        case .bool(let b): self = .bool(b)
        case .null: self = .null
        case .array(let a): self = .array(a.map(JSONValue.init))
        case .object(let members): self = .object(Dictionary(members.map { ($0.key, JSONValue($0.value)) }, uniquingKeysWith: { a, _ in a }))
        }
    }

    subscript(key: String) -> JSONValue? {
        get { if case .object(let o) = self { o[key] } else { nil } }
        set {
            guard case .object(var o) = self else { return }
            o[key] = newValue
            self = .object(o)
        }
    }
}

/// A model's inputs as JSON Schema, read from its catalog entry (the one source of the parameters): types,
/// bounds, choices, defaults and descriptions, in the catalog's order (`x-order`, as cog writes it). It is the
/// schema of a Replicate version and of the model's inputs in /openapi.json, so a model file added to `models/`
/// appears in both with its own parameters.
enum CatalogSchema {
    static func input(of entry: ModelEntry) -> JSONValue {
        var properties: [String: JSONValue] = [:]
        var required: [JSONValue] = []
        for (order, d) in entry.parameters.filter(\.supported).enumerated() {
            var p: [String: JSONValue] = ["description": .string(d.description), "x-order": .integer(Int64(order)),
                                          "title": .string(d.name.split(separator: "_").map { $0.capitalized }.joined(separator: " "))]
            switch d.kind {
            case .string:
                p["type"] = .string("string")
                if let max = d.maxLength { p["maxLength"] = .integer(Int64(max)) }
            case .integer:
                p["type"] = .string("integer")
            case .number:
                p["type"] = .string("number")
            case .boolean:
                p["type"] = .string("boolean")
            case .choice:
                p["type"] = .string("string")
                p["enum"] = .array((d.choices ?? []).map(JSONValue.string))
            case .seed:
                p["type"] = .string("integer")
                p["minimum"] = .integer(0)
                p["maximum"] = .integer(Int64(RunRequest.maxSeed))
            case .file:
                p["type"] = .string("string")
                p["format"] = .string("uri")
            }
            if d.kind == .integer || d.kind == .number {
                if let min = d.minimum { p["minimum"] = d.kind == .integer ? .integer(Int64(min)) : .number(min) }
                if let max = d.maximum { p["maximum"] = d.kind == .integer ? .integer(Int64(max)) : .number(max) }
            }
            switch d.defaultValue {
            case .string(let s)?: p["default"] = .string(s)
            case .number(let n)?: p["default"] = d.kind == .integer ? .integer(Int64(n)) : .number(n)
            case .bool(let b)?: p["default"] = .bool(b)
            case nil: break
            }
            if d.required { required.append(.string(d.name)) }
            properties[d.name] = .object(p)
        }
        return .object(["type": .string("object"), "title": .string("Input"), "properties": .object(properties),
                        "required": .array(required)])
    }

    /// What every model gives back: image URLs.
    static let output: JSONValue = .object([
        "type": .string("array"), "title": .string("Output"),
        "items": .object(["type": .string("string"), "format": .string("uri")]),
    ])
}
