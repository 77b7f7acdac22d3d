import Foundation

/// Validates raw parameters against a model's parameter definitions: unknown names (with the nearest known one as
/// a hint), aliases, documented-but-unsupported parameters, types, bounds, choices and defaults.
public struct ParameterSchema: Sendable {
    public let definitions: [ParameterDefinition]
    private let byName: [String: ParameterDefinition]
    private let aliasTarget: [String: String]

    public init(_ definitions: [ParameterDefinition]) {
        self.definitions = definitions
        byName = Dictionary(definitions.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        aliasTarget = Dictionary(definitions.flatMap { d in (d.aliases ?? []).map { ($0, d.name) } }, uniquingKeysWith: { first, _ in first })
    }

    /// Names the client may send: canonical names, aliases, and the two every run takes.
    public var acceptedNames: [String] { ["model_id", "api_key"] + definitions.map(\.name) + aliasTarget.keys.sorted() }

    /// Typed values (defaults filled in) and the names the client actually sent (after aliases).
    public func validate(_ raw: [String: ParameterValue], into p: inout Problems) -> (TypedParameters, Set<String>) {
        var values: [String: ParameterValue] = [:]
        for (name, value) in raw.sorted(by: { $0.key < $1.key }) {
            let canonical = aliasTarget[name] ?? name
            guard let definition = byName[canonical] else {
                let hint = nearest(to: name).map { "; did you mean \"\($0)\"?" } ?? ""
                p.add(name, "unknown_parameter", "\(name) is not a parameter of this model\(hint)")
                continue
            }
            if values[canonical] != nil {
                p.add(canonical, "duplicate_parameter", "\(canonical) is given twice (\(name) is an alias of \(canonical)); send it once")
                continue
            }
            if !definition.supported, value != .null, value != .string("") {
                p.add(canonical, "unsupported_parameter", "\(canonical) is not supported by this server yet; send the request without it")
                continue
            }
            values[canonical] = value
        }
        var typed: [String: TypedValue] = [:]
        for d in definitions where d.supported {
            if let v = type(d, values, &p) { typed[d.name] = v }
        }
        let sent = Set(values.filter { $0.value != .null && $0.value != .string("") }.keys)
        return (TypedParameters(values: typed), sent)
    }

    private func type(_ d: ParameterDefinition, _ values: [String: ParameterValue], _ p: inout Problems) -> TypedValue? {
        switch d.kind {
        case .string:
            guard let s = p.string(values, d.name, required: d.required) else {
                if case .string(let def)? = d.defaultValue { return .string(def) }
                return nil
            }
            if d.required && s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                p.add(d.name, "empty", "\(d.name) must not be empty")
                return nil
            }
            // Counted in Unicode code points, as JSON Schema's maxLength counts them.
            if let max = d.maxLength, s.unicodeScalars.count > max {
                let why = d.maxLengthReason.map { " (\($0))" } ?? ""
                p.add(d.name, "too_long", "\(d.name) must be at most \(max) characters\(why); got \(s.unicodeScalars.count)")
                return nil
            }
            return .string(s)
        case .choice:
            var def: String?
            switch d.defaultValue {
            case .string(let s)?: def = s
            case .number(let n)?: def = Problems.format(n)
            default: def = nil
            }
            return p.choice(values, d.name, d.choices ?? [], aliases: d.choiceAliases ?? [:], default: def, required: d.required).map(TypedValue.string)
        case .integer:
            let range = Int(d.minimum ?? -1e15)...Int(d.maximum ?? 1e15)
            var def: Int?
            if case .number(let n)? = d.defaultValue { def = Int(n) }
            if d.required && values[d.name] == nil { p.add(d.name, "required", "\(d.name) is required"); return nil }
            return p.integer(values, d.name, range: range, default: def).map(TypedValue.integer)
        case .number:
            let range = (d.minimum ?? -Double.greatestFiniteMagnitude)...(d.maximum ?? Double.greatestFiniteMagnitude)
            var def: Double?
            if case .number(let n)? = d.defaultValue { def = n }
            return p.number(values, d.name, range: range, default: def).map(TypedValue.number)
        case .boolean:
            var def: Bool?
            if case .bool(let b)? = d.defaultValue { def = b }
            return p.boolean(values, d.name, default: def).map(TypedValue.boolean)
        case .seed:
            return p.seed(values).map(TypedValue.seed)
        case .file:
            return collecting(&p) { () throws(AtelierError) in try ImageSource.parse(values[d.name], param: d.name).map(TypedValue.image) }
        case .lora:
            return collecting(&p) { () throws(AtelierError) in try LoRAInput.parse(values[d.name], param: d.name).map(TypedValue.lora) }
        case .loraList:
            let scales = (d.minimum ?? -Double.greatestFiniteMagnitude)...(d.maximum ?? Double.greatestFiniteMagnitude)
            return collecting(&p) { () throws(AtelierError) in
                try LoRAInput.parseList(values[d.name], param: d.name, scales: scales).map { TypedValue.loraList($0.map(\.0), scales: $0.map(\.1)) }
            }
        }
    }

    /// A value read by a parser of its own (files, LoRAs): its problems join the request's others.
    private func collecting(_ p: inout Problems, _ parse: () throws(AtelierError) -> TypedValue?) -> TypedValue? {
        do {
            return try parse()
        } catch {
            if case .invalidParameters(let problems) = error { p.items += problems }
            return nil
        }
    }

    /// The accepted name closest to a misspelt one, for the error's hint.
    func nearest(to name: String) -> String? {
        let scored = acceptedNames.map { ($0, Self.editDistance(name.lowercased(), $0)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= max(3, name.count / 3) else { return nil }
        return aliasTarget[best] ?? best
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// Validated values by parameter name.
public struct TypedParameters: Sendable, Equatable {
    public var values: [String: TypedValue]

    public func string(_ name: String) -> String? { if case .string(let s)? = values[name] { s } else { nil } }
    public func integer(_ name: String) -> Int? { if case .integer(let n)? = values[name] { n } else { nil } }
    public func number(_ name: String) -> Double? {
        switch values[name] {
        case .number(let d)?: d
        case .integer(let n)?: Double(n)
        default: nil
        }
    }
    public func boolean(_ name: String) -> Bool? { if case .boolean(let b)? = values[name] { b } else { nil } }
    public func seed(_ name: String) -> UInt64? { if case .seed(let s)? = values[name] { s } else { nil } }
    public func image(_ name: String) -> ImageSource? { if case .image(let s)? = values[name] { s } else { nil } }
    public func lora(_ name: String) -> LoRAInput? { if case .lora(let l)? = values[name] { l } else { nil } }
    public func loraList(_ name: String) -> [(LoRAInput, Double)]? {
        if case .loraList(let l, let scales)? = values[name] { Array(zip(l, scales)) } else { nil }
    }
}
