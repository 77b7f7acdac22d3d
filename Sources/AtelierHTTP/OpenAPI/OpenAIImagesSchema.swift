import AtelierCore

/// The bodies of OpenAI's image routes as `OpenAIImageRequest` reads them: OpenAI's own fields, and every other
/// parameter of the catalog's models (openai-python's `extra_body`) in the catalog's forms.
enum OpenAIImagesSchema {
    typealias P = SchemaPatterns

    static func nullable(_ schema: JSONValue) -> JSONValue {
        .object(["oneOf": .array([schema, .object(["type": .string("null")])])])
    }

    static func string(_ pattern: String, _ description: String) -> JSONValue {
        .object(["type": .string("string"), "pattern": .string(pattern), "description": .string(description)])
    }

    /// `WIDTHxHEIGHT`: the table's sizes, or sides within the custom range, or auto.
    static var size: JSONValue {
        let side = P.intRange(SizeTable.customSideRange.lowerBound, SizeTable.customSideRange.upperBound)
        let outside = SizeTable.allSizes.filter { !SizeTable.customSideRange.contains($0.width) || !SizeTable.customSideRange.contains($0.height) }
            .map { "\($0.width)x\($0.height)" }
        let pattern = "^(?:auto|" + (outside + ["\(side)x\(side)"]).joined(separator: "|") + ")$"
        return nullable(string(pattern, "WIDTHxHEIGHT: a size of the table (1024x1024, 1344x768, …) or each side from 256 to 1440 (rounded up to a multiple of 16); auto is 1024x1024. Ignored by edits (the output takes the input image's size)."))
    }

    static func generation(_ entries: [ModelEntry]) -> JSONValue {
        // The catalog's parameters but those OpenAI's own fields stand for (and the images, which are the edit
        // route's), without aliases: no rule between parameters remains, so every field stands alone.
        var properties: [String: JSONValue] = [:]
        for d in RunInputSchema.definitions(entries) where !OpenAIImageRequest.coveredByOpenAI.keys.contains(d.name) && !["image", "mask"].contains(d.name) {
            properties[d.name] = RunInputSchema.parameter(d, required: d.required)
        }
        let catalog = Dictionary(RunInputSchema.definitions(entries).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let ids = entries.map { escaped($0.id) }.joined(separator: "|")
        properties["model"] = nullable(string("^(?:\(ids)|dall-e\(P.textChar)*|gpt-image\(P.textChar)*|)$",
                                              "A catalog model id (GET /v1/models); OpenAI's own names (dall-e-*, gpt-image-*) or none: the first model."))
        if let n = catalog["num_outputs"] { properties["n"] = described(RunInputSchema.parameter(n, required: false), "How many images (num_outputs).") }
        if let q = catalog["output_quality"] {
            properties["output_compression"] = described(RunInputSchema.parameter(q, required: false), "Compression quality 0-100 for webp and jpeg (output_quality).")
        }
        properties["size"] = size
        properties["response_format"] = nullable(.object(["type": .string("string"), "enum": .array([.string("url"), .string("b64_json")]),
                                                          "description": .string("url (the default): links to the images; b64_json: the images in the answer.")]))
        properties["background"] = nullable(.object(["type": .string("string"), "enum": .array([.string("auto"), .string("opaque")]),
                                                     "description": .string("FLUX images are opaque: transparent is refused.")]))
        properties["stream"] = .object(["oneOf": .array([.object(["const": .bool(false)]), .object(["type": .string("null")])]),
                                        "description": .string("Streaming is not offered: false or absent.")])
        let anything: JSONValue = .object(["oneOf": .array([.object(["type": .string("string"), "pattern": .string(P.text)]),
                                                             .object(["type": .array([.string("number"), .string("boolean"), .string("null")])])]),
                                           "description": .string("Accepted and ignored (OpenAI's; no meaning for FLUX).")])
        for name in OpenAIImageRequest.ignored { properties[name] = anything }
        return .object(["type": .string("object"), "additionalProperties": .bool(false), "required": .array([.string("prompt")]),
                        "properties": .object(properties)])
    }

    /// The edit route's multipart body: the same fields as text, and the image (and mask) as files.
    static func edit(_ generation: JSONValue) -> JSONValue {
        var form = RunInputSchema.textOnly(generation)
        var properties: [String: JSONValue] = [:]
        if case .object(let p)? = form["properties"] { properties = p }
        properties["stream"] = nil
        properties["image"] = .object(["type": .string("string"), "format": .string("binary"),
                                       "description": .string("The picture to edit (PNG, JPEG or WebP); the output takes its size.")])
        properties["mask"] = .object(["type": .string("string"), "format": .string("binary"),
                                      "description": .string("A PNG whose transparent pixels are repainted (OpenAI's convention); without it the edit is image-to-image.")])
        for name in ["size", "model", "response_format", "background"] {
            if let p = properties[name] { properties[name] = RunInputSchema.textOnly(p) }
        }
        form["properties"] = .object(properties)
        form["required"] = .array([.string("image"), .string("prompt")])
        return form
    }

    static func escaped(_ id: String) -> String {
        id.map { "()[]{}?*+-|^$\\.&~# ".contains($0) ? "\\\($0)" : String($0) }.joined()
    }

    static func described(_ schema: JSONValue, _ description: String) -> JSONValue {
        var s = schema
        s["description"] = .string(description)
        return s
    }
}

extension JSONValue {
    /// True when the name appears anywhere in the value (a rule that constrains that parameter).
    func mentions(_ name: String) -> Bool {
        switch self {
        case .string(let s): s == name
        case .array(let items): items.contains { $0.mentions(name) }
        case .object(let members): members.keys.contains(name) || members.values.contains { $0.mentions(name) }
        default: false
        }
    }
}
