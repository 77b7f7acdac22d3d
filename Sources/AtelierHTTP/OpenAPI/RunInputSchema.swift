import AtelierCore

/// The run parameters' JSON Schema, built from the live catalog (the one source of the parameters) when the
/// server starts: /openapi.json's `RunInput` and `RunForm` (/api/v4/run), `ReplicateInput` (a prediction's
/// `input`), `OpenAIImageFields` and one `ModelInput_<id>` per model with that model's own parameters. What no
/// schema can say (an image that decodes, a URL that answers, a public webhook host, a hold the credit covers) is
/// refused with 422 or 402 after the syntax is accepted; see docs/api.md.
enum RunInputSchema {
    typealias P = SchemaPatterns

    static func optional(_ alternatives: [JSONValue], required: Bool) -> JSONValue {
        .object(["oneOf": .array(alternatives + (required ? [] : [.object(["type": .string("null")])]))])
    }

    static func range(_ d: ParameterDefinition) -> (Int, Int) { (Int(d.minimum ?? 0), Int(d.maximum ?? 0)) }

    /// One parameter: its JSON forms and its text form, exactly as the decoder reads them.
    static func parameter(_ d: ParameterDefinition, required: Bool) -> JSONValue {
        let empty = required ? "" : "|"  // an optional parameter sent as "" takes its default
        func text(_ pattern: String) -> JSONValue { .object(["type": .string("string"), "pattern": .string(pattern)]) }
        var out: JSONValue
        switch d.kind {
        case .string:
            out = .object(["type": .string("string"), "minLength": .integer(required ? 1 : 0),
                           "pattern": .string(required ? P.textNonBlank : P.text)])
            if let max = d.maxLength { out["maxLength"] = .integer(Int64(max)) }
        case .integer:
            let (lo, hi) = range(d)
            out = optional([.object(["type": .string("integer"), "minimum": .integer(Int64(lo)), "maximum": .integer(Int64(hi))]),
                            text("^(?:\(P.integerText(lo, hi))\(empty))$")], required: required)
        case .number:
            let (lo, hi) = range(d)
            out = optional([.object(["type": .string("number"), "minimum": number(d.minimum ?? 0), "maximum": number(d.maximum ?? 0)]),
                            text("^(?:\(P.decimalText(lo, hi))\(empty))$")], required: required)
        case .boolean:
            let words = ["true", "True", "1", "false", "False", "0"] + (required ? [] : [""])
            out = optional([.object(["type": .string("boolean")]), .object(["type": .string("integer"), "enum": .array([.integer(0), .integer(1)])]),
                            .object(["type": .string("string"), "enum": .array(words.map(JSONValue.string))])], required: required)
        case .choice:
            let words = (d.choices ?? []) + (d.choiceAliases ?? [:]).keys.sorted()
            var alternatives = [text("^(?:" + words.map(P.caseless).joined(separator: "|") + empty + ")$")]
            let numeric = (d.choices ?? []).filter { $0.allSatisfy { $0.isNumber || $0 == "." } && $0.first?.isNumber == true }.compactMap(Double.init)
            if !numeric.isEmpty { alternatives.append(.object(["type": .string("number"), "enum": .array(numeric.map(number))])) }
            out = optional(alternatives, required: required)
        case .seed:
            // No leading zeros in the document: with them the pattern took schemathesis minutes to cover.
            out = optional([.object(["type": .string("integer"), "minimum": .integer(0), "maximum": .integer(Int64(RunRequest.maxSeed))]),
                            text("^\(P.intRange(0, Int(RunRequest.maxSeed)))?$")], required: false)
        case .file:
            // Text rules hold here too: around and inside the value only spaces, tabs and line feeds.
            let data = "[dD][aA][tT][aA]:(?:[!-+\\--:<-~]*;)*[bB][aA][sS][eE]64(?:;[!-+\\--~]*)?,[A-Za-z0-9+/= \\t\\n]*"
            let url = "[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][!-~]*)?"
            out = optional([.object(["type": .string("string"), "maxLength": .integer(30_000_000),
                                     "pattern": .string("^[ \\t\\n]*(?:\(data)|\(url))?[ \\t\\n]*$")])], required: false)
        }
        out["description"] = .string(d.description)
        switch d.defaultValue {
        case .string(let s)?: out["default"] = .string(s)
        case .number(let n)?: out["default"] = number(n)
        case .bool(let b)?: out["default"] = .bool(b)
        case nil: break
        }
        return out
    }

    static func number(_ d: Double) -> JSONValue { d == d.rounded() && abs(d) < 9e15 ? .integer(Int64(d)) : .number(d) }

    /// The parameter is absent, null or (for text) empty: the server treats all three as not given.
    static func blank(_ name: String) -> JSONValue {
        .object(["anyOf": .array([
            .object(["not": .object(["required": .array([.string(name)])])]),
            .object(["properties": .object([name: .object(["oneOf": .array([
                .object(["type": .string("null")]), .object(["type": .string("string"), "pattern": .string("^\\s*$")]),
            ])])])]),
        ])])
    }

    /// Every supported parameter of the given models, the first model's definition of a shared name winning.
    static func definitions(_ entries: [ModelEntry]) -> [ParameterDefinition] {
        var seen: Set<String> = []
        return entries.flatMap { $0.parameters.filter(\.supported) }.filter { seen.insert($0.name).inserted }
    }

    /// The models' parameters as schema properties (aliases included), and the rules between them.
    static func modelProperties(_ entries: [ModelEntry]) -> (properties: [String: JSONValue], rules: [JSONValue]) {
        var properties: [String: JSONValue] = [:]
        var rules: [JSONValue] = []
        let defs = definitions(entries)
        for d in defs {
            let required = d.required && d.name != "aspect_ratio"
            properties[d.name] = parameter(d, required: required)
            for alias in d.aliases ?? [] {
                var p = parameter(d, required: required)
                p["description"] = .string("Alias of \(d.name); send one of the two.")
                properties[alias] = p
                rules.append(.object(["not": .object(["required": .array([.string(d.name), .string(alias)])])]))
            }
        }
        func has(_ name: String) -> Bool { defs.contains { $0.name == name } }
        func req(_ name: String, _ schema: JSONValue) -> JSONValue {
            .object(["required": .array([.string(name)]), "properties": .object([name: schema])])
        }
        let nonBlank: JSONValue = .object(["type": .string("string"), "pattern": .string("\\S")])
        var sizeRules: [JSONValue] = []
        if has("aspect_ratio") {
            // aspect_ratio is required unless an image gives the size. (Further rules, such as width and height
            // only with custom and mask only with image, are in the descriptions where if/then/else schemas made
            // schemathesis' coverage phase run for minutes.)
            sizeRules.append(.object(["anyOf": .array([req("aspect_ratio", .object(["type": .string("string"), "minLength": .integer(1)])),
                                                       req("image", nonBlank)])]))
            let custom = req("aspect_ratio", .object(["type": .string("string"), "pattern": .string(P.custom)]))
            let other = req("aspect_ratio", .object(["not": .object(["type": .string("string"), "pattern": .string(P.custom)])]))
            // Without an image, custom needs width and height, and no other ratio takes them.
            sizeRules.append(.object(["if": .object(["allOf": .array([custom, blank("image")])]),
                                      "then": .object(["not": .object(["anyOf": .array([blank("width"), blank("height")])])])]))
            sizeRules.append(.object(["if": .object(["allOf": .array([other, blank("image")])]),
                                      "then": .object(["allOf": .array([blank("width"), blank("height")])])]))
        }
        if has("mask") {
            // A mask needs an image to paint on.
            sizeRules.append(.object(["if": .object(["not": blank("mask")]), "then": .object(["not": blank("image")])]))
        }
        return (properties, sizeRules + rules)
    }
}

extension RunInputSchema {
    /// /api/v4/run's body: the model's parameters and the request's own (model_id, api_key, wait, webhook).
    static func runInput(_ entries: [ModelEntry]) -> JSONValue {
        var (properties, rules) = modelProperties(entries)
        properties["model_id"] = .object(["type": .string("string"), "enum": .array(entries.map { .string($0.id) }),
                                          "description": .string("The model to run.")])
        properties["api_key"] = .object(["type": .string("string"), "pattern": .string(P.text),
                                         "description": .string("The API key, for clients that cannot set the Authorization header.")])
        properties["wait"] = .object([
            "description": .string("Seconds to hold the connection for the run (0-600); 0 answers at once with the request_id. Also `Prefer: wait=N`."),
            "oneOf": .array([.object(["type": .string("integer"), "minimum": .integer(0), "maximum": .integer(600)]),
                             .object(["type": .string("string"), "pattern": .string("^(?:\(P.integerText(0, 600))|)$")]),
                             .object(["type": .string("null")])]),
        ])
        properties["webhook"] = .object([
            "description": .string("http(s) URL POSTed the /check body when the run starts and ends, signed per Standard Webhooks (see docs/api.md)."),
            "oneOf": .array([.object(["type": .string("null")]),
                             .object(["type": .string("string"), "maxLength": .integer(2048),
                                      "pattern": .string("^ *(?:[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][!-~]*)?)? *$")])]),
        ])
        properties["webhook_events_filter"] = .object([
            "description": .string("Which events to send: start, completed (default both). Comma-separated, or a JSON array."),
            "oneOf": .array([.object(["type": .string("null")]),
                             .object(["type": .string("string"), "pattern": .string("^( *(start|completed)( *, *(start|completed))* *)?$")]),
                             .object(["type": .string("array"), "minItems": .integer(1),
                                      "items": .object(["type": .string("string"), "enum": .array([.string("start"), .string("completed")])])])]),
        ])
        // A filter needs a webhook to filter.
        rules.append(.object([
            "if": .object(["required": .array([.string("webhook_events_filter")]),
                           "properties": .object(["webhook_events_filter": .object(["type": .array([.string("string"), .string("array")]), "minLength": .integer(1)])])]),
            "then": .object(["required": .array([.string("webhook")]),
                             "properties": .object(["webhook": .object(["type": .string("string"), "pattern": .string("\\S")])])]),
        ]))
        return .object(["type": .string("object"), "additionalProperties": .bool(false), "required": .array([.string("model_id"), .string("prompt")]),
                        "properties": .object(properties), "allOf": .array(rules)])
    }

    /// A prediction's `input` (Replicate), or one model's inputs: the models' parameters only.
    static func modelInput(_ entries: [ModelEntry]) -> JSONValue {
        let (properties, rules) = modelProperties(entries)
        let required = definitions(entries).filter { $0.required && $0.name != "aspect_ratio" }.map { JSONValue.string($0.name) }
        return .object(["type": .string("object"), "additionalProperties": .bool(false), "required": .array(required),
                        "properties": .object(properties), "allOf": .array(rules)])
    }

    /// A prediction's `input`: every parameter on its own, no aliases and no rule between parameters (nested in
    /// the request body, such rules defeat schemathesis' generator). The Replicate routes answer what the rules
    /// say with 422 instead (`ErrorMapping.crossParameter`), and take aspect_ratio 1:1 when neither it nor an
    /// image is given, as Replicate's FLUX models do.
    static func replicateInput(_ entries: [ModelEntry]) -> JSONValue {
        var properties: [String: JSONValue] = [:]
        for d in definitions(entries) { properties[d.name] = parameter(d, required: d.required && d.name != "aspect_ratio") }
        let required = definitions(entries).filter { $0.required && $0.name != "aspect_ratio" }.map { JSONValue.string($0.name) }
        return .object(["type": .string("object"), "additionalProperties": .bool(false), "required": .array(required),
                        "properties": .object(properties)])
    }

    /// The form and multipart version of a schema: only the text alternatives, defaults written as text (a form
    /// client writes every value as text, so a number alternative would reach the server in whatever spelling
    /// the client's language prints, 1.25e-56).
    static func textOnly(_ schema: JSONValue) -> JSONValue {
        switch schema {
        case .array(let items): return .array(items.map(textOnly))
        case .object(let members):
            var out = members.mapValues(textOnly)
            if case .array(let alternatives)? = out["oneOf"] {
                out["oneOf"] = .array(alternatives.filter { $0["type"] == .string("string") })
                switch out["default"] {
                case .integer(let i)?: out["default"] = .string(String(i))
                case .number(let d)?: out["default"] = .string(String(d))
                case .bool(let b)?: out["default"] = .string(String(b))
                default: break
                }
            }
            return .object(out)
        default: return schema
        }
    }
}
