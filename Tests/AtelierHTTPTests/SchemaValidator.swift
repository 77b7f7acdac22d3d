import AtelierCore
import Foundation

/// A JSON value as the wire carries it, decoded strictly (a boolean is never a number).
indirect enum WireJSON: Decodable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([WireJSON])
    case object([String: WireJSON])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([WireJSON].self) { self = .array(a) }
        else { self = .object(try c.decode([String: WireJSON].self)) }
    }

    static func decode(_ data: Data) throws -> WireJSON { try JSONDecoder().decode(WireJSON.self, from: data) }
}

/// Checks a value against a typed schema, for the wire-type tests. Stricter than JSON Schema in one way on
/// purpose: an object key its schema does not declare is a failure, so a field the code sends and the document
/// leaves out cannot pass (unless the schema is free-form: no `properties` at all).
struct SchemaValidator {
    var failures: [String] = []

    static func check(_ value: WireJSON, against schema: JSONSchema) -> [String] {
        var v = SchemaValidator()
        v.validate(value, schema, at: "$")
        return v.failures
    }

    static func matches(_ value: WireJSON, _ schema: JSONSchema) -> Bool { check(value, against: schema).isEmpty }

    mutating func fail(_ path: String, _ what: String) { failures.append("\(path): \(what)") }

    static func typeName(_ value: WireJSON) -> JSONSchema.TypeName {
        switch value {
        case .null: .null
        case .bool: .boolean
        case .integer: .integer
        case .number: .number
        case .string: .string
        case .array: .array
        case .object: .object
        }
    }

    static func literal(_ value: WireJSON) -> JSONSchema.Literal? {
        switch value {
        case .null: .null
        case .bool(let b): .bool(b)
        case .integer(let i): .integer(i)
        case .number(let d): d == d.rounded() && abs(d) < 9e15 ? .integer(Int64(d)) : .number(d)
        case .string(let s): .string(s)
        case .array, .object: nil
        }
    }

    static func double(_ literal: JSONSchema.Literal?) -> Double? {
        switch literal {
        case .integer(let i)?: Double(i)
        case .number(let d)?: d
        default: nil
        }
    }

    mutating func validate(_ value: WireJSON, _ schema: JSONSchema, at path: String) {
        if let component = schema.component {
            validate(value, component.schema, at: path)
            return
        }
        let type = Self.typeName(value)
        if !schema.type.isEmpty && !schema.type.contains(type) && !(type == .integer && schema.type.contains(.number)) {
            fail(path, "is \(type.rawValue), the schema says \(schema.type.map(\.rawValue))")
            return
        }
        if let allowed = schema.enumValues, !allowed.contains(where: { $0 == Self.literal(value) }) { fail(path, "\(value) is not one of \(allowed)") }
        if let constant = schema.constValue, constant != Self.literal(value) { fail(path, "\(value) is not \(constant)") }
        switch value {
        case .string(let s):
            if let pattern = schema.pattern, s.range(of: pattern, options: .regularExpression) == nil { fail(path, "\"\(s.prefix(60))\" does not match \(pattern)") }
            if let min = schema.minLength, s.count < min { fail(path, "shorter than \(min)") }
            if let max = schema.maxLength, s.count > max { fail(path, "longer than \(max)") }
            if schema.format == "date-time", ISO8601DateFormatter().date(from: s) == nil { fail(path, "\"\(s)\" is not a date-time") }
            if schema.format == "uri", URL(string: s)?.scheme == nil { fail(path, "\"\(s)\" is not a URI") }
        case .integer, .number:
            let d: Double = if case .integer(let i) = value { Double(i) } else if case .number(let n) = value { n } else { 0 }
            if let min = Self.double(schema.minimum), d < min { fail(path, "\(d) is below \(min)") }
            if let max = Self.double(schema.maximum), d > max { fail(path, "\(d) is above \(max)") }
        case .array(let items):
            if let min = schema.minItems, items.count < min { fail(path, "fewer than \(min) items") }
            if let itemSchema = schema.items { for (i, item) in items.enumerated() { validate(item, itemSchema, at: "\(path)[\(i)]") } }
        case .object(let members):
            for name in schema.required ?? [] where members[name] == nil { fail(path, "lacks required \(name)") }
            if let properties = schema.properties {
                for (name, member) in members {
                    if let p = properties[name] { validate(member, p, at: "\(path).\(name)") } else { fail(path, "sends \(name), which its schema does not declare") }
                }
            }
        case .null, .bool:
            break
        }
        if let alternatives = schema.oneOf {
            let passing = alternatives.filter { Self.matches(value, $0) }.count
            if passing != 1 { fail(path, "matches \(passing) of oneOf's \(alternatives.count) alternatives, not exactly one") }
        }
        if let alternatives = schema.anyOf, !alternatives.contains(where: { Self.matches(value, $0) }) { fail(path, "matches none of anyOf") }
        for part in schema.allOf ?? [] { validate(value, part, at: path) }
        if let not = schema.not, Self.matches(value, not) { fail(path, "matches what not forbids") }
        if let condition = schema.ifSchema, Self.matches(value, condition), let then = schema.thenSchema { validate(value, then, at: path) }
    }
}
