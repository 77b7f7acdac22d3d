import AtelierCore

/// The run parameters' JSON Schema, built from the live catalog (the one source of the parameters) when the
/// server starts: /openapi.json's `RunInput` and `RunForm` (/api/v4/run), `ReplicateInput` (a prediction's
/// `input`), and one `ModelInput_<id>` per model with that model's own parameters. What no schema can say (an
/// image that decodes, a URL that answers, a public webhook host, a hold the credit covers) is refused with 422 or
/// 402 after the syntax is accepted; see docs/api.md.
enum RunInputSchema {
    typealias P = SchemaPatterns

    static func optional(_ alternatives: [JSONSchema], required: Bool) -> JSONSchema {
        .oneOf(alternatives + (required ? [] : [.null]))
    }

    static func range(_ d: ParameterDefinition) -> (Int, Int) { (Int(d.minimum ?? 0), Int(d.maximum ?? 0)) }

    static func literal(_ value: ParameterDefinition.Scalar?, integer: Bool = false) -> JSONSchema.Literal? {
        switch value {
        case .string(let s)?: .string(s)
        case .number(let n)?: integer ? .integer(Int64(n)) : .numeric(n)
        case .bool(let b)?: .bool(b)
        case nil: nil
        }
    }

    /// One parameter: its JSON forms and its text form, exactly as the decoder reads them.
    static func parameter(_ d: ParameterDefinition, required: Bool) -> JSONSchema {
        let empty = required ? "" : "|"  // an optional parameter sent as "" takes its default
        func text(_ pattern: String) -> JSONSchema { .string(pattern: pattern) }
        var out: JSONSchema
        switch d.kind {
        case .string:
            out = .string(pattern: required ? P.textNonBlank : P.text, minLength: required ? 1 : 0, maxLength: d.maxLength)
        case .integer:
            let (lo, hi) = range(d)
            out = optional([.integer(minimum: Int64(lo), maximum: Int64(hi)), text("^(?:\(P.integerText(lo, hi))\(empty))$")], required: required)
        case .number:
            let (lo, hi) = range(d)
            out = optional([.number(minimum: d.minimum ?? 0, maximum: d.maximum ?? 0), text("^(?:\(P.decimalText(lo, hi))\(empty))$")],
                           required: required)
        case .boolean:
            let words = ["true", "True", "1", "false", "False", "0"] + (required ? [] : [""])
            out = optional([.boolean, JSONSchema(type: .integer).with { $0.enumValues = [.integer(0), .integer(1)] }, .strings(words)],
                           required: required)
        case .choice:
            let words = (d.choices ?? []) + (d.choiceAliases ?? [:]).keys.sorted()
            var alternatives = [text("^(?:" + words.map(P.caseless).joined(separator: "|") + empty + ")$")]
            let numeric = (d.choices ?? []).filter { $0.allSatisfy { $0.isNumber || $0 == "." } && $0.first?.isNumber == true }.compactMap(Double.init)
            if !numeric.isEmpty { alternatives.append(JSONSchema(type: .number).with { $0.enumValues = numeric.map(JSONSchema.Literal.numeric) }) }
            out = optional(alternatives, required: required)
        case .seed:
            // No leading zeros in the document: with them the pattern took schemathesis minutes to cover.
            out = optional([.integer(minimum: 0, maximum: Int64(RunRequest.maxSeed)), text("^\(P.intRange(0, Int(RunRequest.maxSeed)))?$")],
                           required: false)
        case .file:
            // Text rules hold here too: around and inside the value only spaces, tabs and line feeds.
            let data = "[dD][aA][tT][aA]:(?:[!-+\\--:<-~]*;)*[bB][aA][sS][eE]64(?:;[!-+\\--~]*)?,[A-Za-z0-9+/= \\t\\n]*"
            let url = "[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][!-~]*)?"
            out = optional([.string(pattern: "^[ \\t\\n]*(?:\(data)|\(url))?[ \\t\\n]*$", maxLength: 30_000_000)], required: false)
        case .lora:
            out = optional([.string(pattern: "^[ \\t\\n]*(?:\(P.loraAddress))?[ \\t\\n]*$", maxLength: 2048)], required: false)
        case .loraList:
            let entry = JSONSchema.object([
                "path": .string(pattern: "^[ \\t\\n]*\(P.loraAddress)[ \\t\\n]*$", maxLength: 2048),
                "scale": .oneOf([.number(minimum: d.minimum ?? -10, maximum: d.maximum ?? 10), .null]),
            ], required: ["path"], closed: true)
            // In a form, the list's JSON text: text rules hold (no control characters but tab and line feed).
            out = optional([.array(of: entry), .string(pattern: "^[ \\t\\n]*(?:\\[\(P.textChar)*\\])?[ \\t\\n]*$")], required: false)
        }
        out.description = d.description
        out.defaultValue = literal(d.defaultValue)
        return out
    }

    /// The parameter is absent, null or (for text) empty: the server treats all three as not given.
    static func blank(_ name: String) -> JSONSchema {
        .anyOf([.not(JSONSchema().with { $0.required = [name] }),
                JSONSchema().with { $0.properties = [name: .oneOf([.null, .string(pattern: "^\\s*$")])] }])
    }

    /// Every supported parameter of the given models, the first model's definition of a shared name winning.
    static func definitions(_ entries: [ModelEntry]) -> [ParameterDefinition] {
        var seen: Set<String> = []
        return entries.flatMap { $0.parameters.filter(\.supported) }.filter { seen.insert($0.name).inserted }
    }

    /// A schema that holds when `name` is present and matches `schema`.
    static func req(_ name: String, _ schema: JSONSchema) -> JSONSchema {
        JSONSchema().with {
            $0.required = [name]
            $0.properties = [name: schema]
        }
    }

    /// The models' parameters as schema properties (aliases included), and the rules between them.
    static func modelProperties(_ entries: [ModelEntry]) -> (properties: [String: JSONSchema], rules: [JSONSchema]) {
        var properties: [String: JSONSchema] = [:]
        var rules: [JSONSchema] = []
        let defs = definitions(entries)
        for d in defs {
            let required = d.required && d.name != "aspect_ratio"
            properties[d.name] = parameter(d, required: required)
            for alias in d.aliases ?? [] {
                properties[alias] = parameter(d, required: required).described("Alias of \(d.name); send one of the two.")
                rules.append(.not(JSONSchema().with { $0.required = [d.name, alias] }))
            }
        }
        func has(_ name: String) -> Bool { defs.contains { $0.name == name } }
        let nonBlank = JSONSchema.string(pattern: "\\S")
        var sizeRules: [JSONSchema] = []
        if has("aspect_ratio") {
            // aspect_ratio is required unless an image gives the size. (Further rules, such as width and height
            // only with custom and mask only with image, are in the descriptions where if/then/else schemas made
            // schemathesis' coverage phase run for minutes.)
            sizeRules.append(.anyOf([req("aspect_ratio", .string(minLength: 1)), req("image", nonBlank)]))
            let custom = req("aspect_ratio", .string(pattern: P.custom))
            let other = req("aspect_ratio", .not(.string(pattern: P.custom)))
            // Without an image, custom needs width and height, and no other ratio takes them.
            sizeRules.append(.ifThen(.allOf([custom, blank("image")]), .not(.anyOf([blank("width"), blank("height")]))))
            sizeRules.append(.ifThen(.allOf([other, blank("image")]), .allOf([blank("width"), blank("height")])))
        }
        if has("mask") {
            // A mask needs an image to paint on.
            sizeRules.append(.ifThen(.not(blank("mask")), .not(blank("image"))))
        }
        return (properties, sizeRules + rules)
    }

    static func requiredNames(_ entries: [ModelEntry]) -> [String] {
        definitions(entries).filter { $0.required && $0.name != "aspect_ratio" }.map(\.name)
    }
}

extension RunInputSchema {
    static let webhookURL = "^ *(?:[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][!-~]*)?)? *$"

    /// /api/v4/run's body: the model's parameters and the request's own (model_id, api_key, wait, webhook).
    static func runInput(_ entries: [ModelEntry]) -> JSONSchema {
        var (properties, rules) = modelProperties(entries)
        properties["model_id"] = JSONSchema.strings(entries.map(\.id)).described("The model to run.")
        properties["api_key"] = JSONSchema.string(pattern: P.text).described("The API key, for clients that cannot set the Authorization header.")
        properties["wait"] = JSONSchema.oneOf([.integer(minimum: 0, maximum: 600), .string(pattern: "^(?:\(P.integerText(0, 600))|)$"), .null])
            .described("Seconds to hold the connection for the run (0-600); 0 answers at once with the request_id. Also `Prefer: wait=N`.")
        properties["webhook"] = JSONSchema.oneOf([.null, .string(pattern: webhookURL, maxLength: 2048)])
            .described("http(s) URL POSTed the /check body when the run starts and ends, signed per Standard Webhooks (see docs/api.md).")
        properties["webhook_events_filter"] = JSONSchema.oneOf([
            .null, .string(pattern: "^( *(start|completed)( *, *(start|completed))* *)?$"),
            .array(of: .strings(["start", "completed"]), minItems: 1),
        ]).described("Which events to send: start, completed (default both). Comma-separated, or a JSON array.")
        // A filter needs a webhook to filter.
        let filterGiven = req("webhook_events_filter", JSONSchema(type: .string, .array).with { $0.minLength = 1 })
        rules.append(.ifThen(filterGiven, req("webhook", .string(pattern: "\\S"))))
        return JSONSchema.object(properties, required: ["model_id", "prompt"], closed: true).with { $0.allOf = rules }
    }

    /// One model's inputs: its parameters only, with the rules between them.
    static func modelInput(_ entries: [ModelEntry]) -> JSONSchema {
        let (properties, rules) = modelProperties(entries)
        return JSONSchema.object(properties, required: requiredNames(entries), closed: true).with {
            $0.required = requiredNames(entries)
            $0.allOf = rules
        }
    }

    /// A prediction's `input`: every parameter on its own, no aliases and no rule between parameters (nested in
    /// the request body, such rules defeat schemathesis' generator). The Replicate routes answer what the rules
    /// say with 422 instead (`ErrorMapping.crossParameter`), take aspect_ratio 1:1 when neither it nor an image is
    /// given, and ignore width and height unless aspect_ratio is custom, as Replicate's FLUX models do.
    static func replicateInput(_ entries: [ModelEntry]) -> JSONSchema {
        var properties: [String: JSONSchema] = [:]
        for d in definitions(entries) { properties[d.name] = parameter(d, required: d.required && d.name != "aspect_ratio") }
        for side in ["width", "height"] {
            guard let described = properties[side]?.description else { continue }
            properties[side]?.description = "\(described) Read only when aspect_ratio is custom (ignored otherwise, as Replicate's FLUX models do)."
        }
        return JSONSchema.object(properties, required: requiredNames(entries), closed: true).with { $0.required = requiredNames(entries) }
    }

    /// The form and multipart version of a schema: only the text alternatives, defaults written as text (a form
    /// client writes every value as text, so a number alternative would reach the server in whatever spelling
    /// the client's language prints, 1.25e-56).
    static func textOnly(_ schema: JSONSchema) -> JSONSchema {
        schema.rewritten { s in
            guard let alternatives = s.oneOf else { return s }
            var out = s
            out.oneOf = alternatives.filter { $0.type == [.string] }
            switch s.defaultValue {
            case .integer(let i)?: out.defaultValue = .string(String(i))
            case .number(let d)?: out.defaultValue = .string(String(d))
            case .bool(let b)?: out.defaultValue = .string(String(b))
            default: break
            }
            return out
        }
    }
}
