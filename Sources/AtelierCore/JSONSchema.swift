/// A JSON Schema (the 2020-12 dialect OpenAPI 3.1 uses), typed: every keyword this server's document uses is a
/// property, so a schema is built and changed as a Swift value and encoded once, at start-up, into /openapi.json.
/// A schema that is a named component (`JSONSchema.component`) carries its definition with it and is written as a
/// `$ref`; `OpenAPI.Document` collects the definitions into `components.schemas`.
public struct JSONSchema: Encodable, Sendable, Equatable {
    /// A literal in `enum`, `const`, `default` or a bound.
    public enum Literal: Encodable, Sendable, Equatable {
        case string(String)
        case integer(Int64)
        case number(Double)
        case bool(Bool)
        case null

        /// A whole number is written without a fraction (JSON Schema's `integer` keywords read `1`, not `1.0`).
        public static func numeric(_ d: Double) -> Literal { d == d.rounded() && abs(d) < 9e15 ? .integer(Int64(d)) : .number(d) }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .string(let s): try c.encode(s)
            case .integer(let i): try c.encode(i)
            case .number(let d): try c.encode(d)
            case .bool(let b): try c.encode(b)
            case .null: try c.encodeNil()
            }
        }
    }

    public enum TypeName: String, Encodable, Sendable, Equatable {
        case string, integer, number, boolean, object, array, null
    }

    /// A named schema: written as `$ref: #/components/schemas/<name>`, defined once in the document's components.
    public final class Component: Sendable, Equatable {
        public let name: String
        public let schema: JSONSchema
        init(name: String, schema: JSONSchema) {
            self.name = name
            self.schema = schema
        }
        public static func == (a: Component, b: Component) -> Bool { a.name == b.name && a.schema == b.schema }
    }

    public var type: [TypeName] = []
    public var format: String?
    public var title: String?
    public var description: String?
    public var pattern: String?
    public var minLength: Int?
    public var maxLength: Int?
    public var minimum: Literal?
    public var maximum: Literal?
    public var minItems: Int?
    public var maxItems: Int?
    /// A string that holds a document of this media type (`application/json`) matching `contentSchema`.
    public var contentMediaType: String?
    @Nested public var contentSchema: JSONSchema? = nil
    public var enumValues: [Literal]?
    public var constValue: Literal?
    public var defaultValue: Literal?
    public var properties: [String: JSONSchema]?
    public var required: [String]?
    public var additionalProperties: Bool?
    @Nested public var items: JSONSchema? = nil
    public var oneOf: [JSONSchema]?
    public var anyOf: [JSONSchema]?
    public var allOf: [JSONSchema]?
    @Nested public var not: JSONSchema? = nil
    @Nested public var ifSchema: JSONSchema? = nil
    @Nested public var thenSchema: JSONSchema? = nil
    /// cog's `x-order`: the position of an input in a Replicate version's form.
    public var order: Int?
    public var component: Component?

    public init() {}

    // MARK: Building

    public static func string(pattern: String? = nil, format: String? = nil, minLength: Int? = nil, maxLength: Int? = nil) -> JSONSchema {
        var s = JSONSchema(type: .string)
        s.pattern = pattern
        s.format = format
        s.minLength = minLength
        s.maxLength = maxLength
        return s
    }

    public static func integer(minimum: Int64? = nil, maximum: Int64? = nil) -> JSONSchema {
        var s = JSONSchema(type: .integer)
        s.minimum = minimum.map(Literal.integer)
        s.maximum = maximum.map(Literal.integer)
        return s
    }

    public static func number(minimum: Double? = nil, maximum: Double? = nil) -> JSONSchema {
        var s = JSONSchema(type: .number)
        s.minimum = minimum.map(Literal.numeric)
        s.maximum = maximum.map(Literal.numeric)
        return s
    }

    public static let boolean = JSONSchema(type: .boolean)
    public static let null = JSONSchema(type: .null)
    /// Any JSON object; what is inside is described elsewhere (the run's `input`) or free-form.
    public static let anyObject = JSONSchema(type: .object)

    public init(type: TypeName...) { self.type = type }

    public static func strings(_ values: [String]) -> JSONSchema {
        var s = JSONSchema(type: .string)
        s.enumValues = values.map(Literal.string)
        return s
    }

    public static func const(_ value: Literal) -> JSONSchema {
        var s = JSONSchema()
        s.constValue = value
        return s
    }

    public static func array(of items: JSONSchema, minItems: Int? = nil) -> JSONSchema {
        var s = JSONSchema(type: .array)
        s.items = items
        s.minItems = minItems
        return s
    }

    /// An object with these properties; `closed`: no others (`additionalProperties: false`).
    public static func object(_ properties: [String: JSONSchema], required: [String] = [], closed: Bool = false) -> JSONSchema {
        var s = JSONSchema(type: .object)
        s.properties = properties
        s.required = required.isEmpty ? nil : required
        if closed { s.additionalProperties = false }
        return s
    }

    /// A wire type's object, one property per case of its `CodingKeys`: the exhaustive switch in `property` is
    /// why a field added to the type cannot be missing from its schema (the compiler asks for it).
    public static func keyed<Key: CodingKey & CaseIterable>(
        _: Key.Type, required: [Key] = [], _ property: (Key) -> JSONSchema
    ) -> JSONSchema {
        .object(Dictionary(uniqueKeysWithValues: Key.allCases.map { ($0.stringValue, property($0)) }),
                required: required.map(\.stringValue))
    }

    public static func oneOf(_ alternatives: [JSONSchema]) -> JSONSchema {
        var s = JSONSchema()
        s.oneOf = alternatives
        return s
    }

    public static func anyOf(_ alternatives: [JSONSchema]) -> JSONSchema {
        var s = JSONSchema()
        s.anyOf = alternatives
        return s
    }

    public static func allOf(_ parts: [JSONSchema]) -> JSONSchema {
        var s = JSONSchema()
        s.allOf = parts
        return s
    }

    public static func not(_ schema: JSONSchema) -> JSONSchema {
        var s = JSONSchema()
        s.not = schema
        return s
    }

    public static func ifThen(_ condition: JSONSchema, _ consequence: JSONSchema) -> JSONSchema {
        var s = JSONSchema()
        s.ifSchema = condition
        s.thenSchema = consequence
        return s
    }

    /// The value or null, as one of two alternatives.
    public static func nullable(_ schema: JSONSchema) -> JSONSchema { .oneOf([schema, .null]) }

    /// A named schema, defined once in `components.schemas` and referred to everywhere it is used.
    public static func component(_ name: String, _ schema: JSONSchema) -> JSONSchema {
        var s = JSONSchema()
        s.component = Component(name: name, schema: schema)
        return s
    }

    /// This schema with a description (and whatever else `change` sets).
    public func described(_ text: String) -> JSONSchema { with { $0.description = text } }

    public func with(_ change: (inout JSONSchema) -> Void) -> JSONSchema {
        var copy = self
        change(&copy)
        return copy
    }

    /// Every schema directly inside this one (not inside a component it refers to).
    public var children: [JSONSchema] {
        var out: [JSONSchema] = []
        if let properties { out += properties.keys.sorted().compactMap { properties[$0] } }
        out += [items, not, ifSchema, thenSchema, contentSchema].compactMap { $0 }
        out += (oneOf ?? []) + (anyOf ?? []) + (allOf ?? [])
        return out
    }

    /// This schema with `transform` applied to it and to every schema inside it, innermost first.
    public func rewritten(_ transform: (JSONSchema) -> JSONSchema) -> JSONSchema {
        var copy = self
        copy.properties = properties?.mapValues { $0.rewritten(transform) }
        copy.items = items?.rewritten(transform)
        copy.contentSchema = contentSchema?.rewritten(transform)
        copy.not = not?.rewritten(transform)
        copy.ifSchema = ifSchema?.rewritten(transform)
        copy.thenSchema = thenSchema?.rewritten(transform)
        copy.oneOf = oneOf?.map { $0.rewritten(transform) }
        copy.anyOf = anyOf?.map { $0.rewritten(transform) }
        copy.allOf = allOf?.map { $0.rewritten(transform) }
        return transform(copy)
    }

    // MARK: Encoding

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        if let component {
            try c.encode("#/components/schemas/\(component.name)", forKey: Key("$ref"))
            try c.encodeIfPresent(description, forKey: Key("description"))
            return
        }
        if type.count == 1 { try c.encode(type[0], forKey: Key("type")) } else if !type.isEmpty { try c.encode(type, forKey: Key("type")) }
        try c.encodeIfPresent(format, forKey: Key("format"))
        try c.encodeIfPresent(title, forKey: Key("title"))
        try c.encodeIfPresent(description, forKey: Key("description"))
        try c.encodeIfPresent(pattern, forKey: Key("pattern"))
        try c.encodeIfPresent(minLength, forKey: Key("minLength"))
        try c.encodeIfPresent(maxLength, forKey: Key("maxLength"))
        try c.encodeIfPresent(minimum, forKey: Key("minimum"))
        try c.encodeIfPresent(maximum, forKey: Key("maximum"))
        try c.encodeIfPresent(minItems, forKey: Key("minItems"))
        try c.encodeIfPresent(maxItems, forKey: Key("maxItems"))
        try c.encodeIfPresent(contentMediaType, forKey: Key("contentMediaType"))
        try c.encodeIfPresent(contentSchema, forKey: Key("contentSchema"))
        try c.encodeIfPresent(enumValues, forKey: Key("enum"))
        try c.encodeIfPresent(constValue, forKey: Key("const"))
        try c.encodeIfPresent(defaultValue, forKey: Key("default"))
        try c.encodeIfPresent(properties, forKey: Key("properties"))
        try c.encodeIfPresent(required, forKey: Key("required"))
        try c.encodeIfPresent(additionalProperties, forKey: Key("additionalProperties"))
        try c.encodeIfPresent(items, forKey: Key("items"))
        try c.encodeIfPresent(oneOf, forKey: Key("oneOf"))
        try c.encodeIfPresent(anyOf, forKey: Key("anyOf"))
        try c.encodeIfPresent(allOf, forKey: Key("allOf"))
        try c.encodeIfPresent(not, forKey: Key("not"))
        try c.encodeIfPresent(ifSchema, forKey: Key("if"))
        try c.encodeIfPresent(thenSchema, forKey: Key("then"))
        try c.encodeIfPresent(order, forKey: Key("x-order"))
    }
}

/// A schema inside a schema (`items`, `not`, `if`, `then`): boxed, so the struct can hold its own type.
@propertyWrapper
public struct Nested: Sendable, Equatable {
    private indirect enum Storage: Sendable, Equatable {
        case none
        case some(JSONSchema)
    }
    private var storage: Storage

    public init(wrappedValue: JSONSchema?) { storage = wrappedValue.map(Storage.some) ?? .none }

    public var wrappedValue: JSONSchema? {
        get { if case .some(let s) = storage { s } else { nil } }
        set { storage = newValue.map(Storage.some) ?? .none }
    }
}
