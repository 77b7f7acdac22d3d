/// One parameter of a model, as its catalog entry defines it: name, type, default, bounds, choices, aliases and
/// help text. Validation (`ParameterSchema`), the API reference and the model pages all read these, so a model
/// with another parameter set needs a catalog file, not code.
public struct ParameterDefinition: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case string
        case integer
        case number
        case boolean
        /// One of `choices` (a JSON number is read as its text: megapixels 1 → "1").
        case choice
        /// An integer seed, or "" / absent for a random one.
        case seed
        /// A file, URL or data URI (image inputs).
        case file
        /// A LoRA: an address (`LoRASource`) or an uploaded .safetensors file.
        case lora
        /// A JSON array of `{"path": address, "scale": number}`; `minimum` and `maximum` bound each scale.
        case loraList = "lora_list"
    }

    /// A JSON scalar default.
    public enum Scalar: Sendable, Codable, Equatable {
        case string(String)
        case number(Double)
        case bool(Bool)

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let d = try? c.decode(Double.self) { self = .number(d) }
            else { self = .string(try c.decode(String.self)) }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .string(let s): try c.encode(s)
            case .number(let d): try c.encode(d)
            case .bool(let b): try c.encode(b)
            }
        }
    }

    public var name: String
    public var kind: Kind
    public var description: String
    public var required: Bool
    public var defaultValue: Scalar?
    public var minimum: Double?
    public var maximum: Double?
    public var choices: [String]?
    /// Other spellings of a choice, e.g. "jpeg" for "jpg".
    public var choiceAliases: [String: String]?
    /// Other names of the parameter, e.g. "guidance_scale" for "guidance".
    public var aliases: [String]?
    public var maxLength: Int?
    /// Why `maxLength` is what it is, quoted in the error.
    public var maxLengthReason: String?
    /// False: documented by the hosted service but not run by this server yet; refused rather than ignored.
    public var supported: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, kind, description, required, minimum, maximum, choices, aliases, supported
        case defaultValue = "default"
        case choiceAliases = "choice_aliases"
        case maxLength = "max_length"
        case maxLengthReason = "max_length_reason"
    }

    /// A parameter as /api/v4/models lists it.
    public static var schema: JSONSchema {
        .keyed(CodingKeys.self, required: [.name, .kind]) { key in
            switch key {
            case .name, .description, .maxLengthReason: .string()
            case .kind: .strings(Kind.allCases.map(\.rawValue))
            case .required, .supported: .boolean
            case .minimum, .maximum: .number()
            case .defaultValue: .oneOf([.string(), .number(), .boolean])
            case .choices, .aliases: .array(of: .string())
            case .choiceAliases: JSONSchema.anyObject.described("Other spellings of a choice, e.g. jpeg for jpg.")
            case .maxLength: .integer(minimum: 0)
            }
        }
    }

    public init(
        name: String, kind: Kind, description: String = "", required: Bool = false, defaultValue: Scalar? = nil,
        minimum: Double? = nil, maximum: Double? = nil, choices: [String]? = nil, choiceAliases: [String: String]? = nil,
        aliases: [String]? = nil, maxLength: Int? = nil, maxLengthReason: String? = nil, supported: Bool = true
    ) {
        self.name = name
        self.kind = kind
        self.description = description
        self.required = required
        self.defaultValue = defaultValue
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
        self.choiceAliases = choiceAliases
        self.aliases = aliases
        self.maxLength = maxLength
        self.maxLengthReason = maxLengthReason
        self.supported = supported
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        kind = try c.decode(Kind.self, forKey: .kind)
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        required = try c.decodeIfPresent(Bool.self, forKey: .required) ?? false
        defaultValue = try c.decodeIfPresent(Scalar.self, forKey: .defaultValue)
        minimum = try c.decodeIfPresent(Double.self, forKey: .minimum)
        maximum = try c.decodeIfPresent(Double.self, forKey: .maximum)
        choices = try c.decodeIfPresent([String].self, forKey: .choices)
        choiceAliases = try c.decodeIfPresent([String: String].self, forKey: .choiceAliases)
        aliases = try c.decodeIfPresent([String].self, forKey: .aliases)
        maxLength = try c.decodeIfPresent(Int.self, forKey: .maxLength)
        maxLengthReason = try c.decodeIfPresent(String.self, forKey: .maxLengthReason)
        supported = try c.decodeIfPresent(Bool.self, forKey: .supported) ?? true
    }
}

/// A parameter's value after validation.
public enum TypedValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case number(Double)
    case boolean(Bool)
    /// nil: random (the server picks one).
    case seed(UInt64?)
    /// An image input, not yet fetched or checked.
    case image(ImageSource)
    /// A LoRA, its address resolved but not yet fetched.
    case lora(LoRAInput)
    /// LoRAs with their scales, in the order given.
    case loraList([LoRAInput], scales: [Double])
}
