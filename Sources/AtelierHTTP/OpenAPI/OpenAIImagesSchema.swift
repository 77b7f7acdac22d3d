import AtelierCore

/// The bodies of OpenAI's image routes as `OpenAIImageRequest` reads them: OpenAI's own fields, and every other
/// parameter of the catalog's models (openai-python's `extra_body`) in the catalog's forms.
enum OpenAIImagesSchema {
    typealias P = SchemaPatterns

    static func string(_ pattern: String, _ description: String) -> JSONSchema {
        JSONSchema.string(pattern: pattern).described(description)
    }

    /// `WIDTHxHEIGHT`: the table's sizes, or sides within the custom range, or auto.
    static var size: JSONSchema {
        let side = P.intRange(SizeTable.customSideRange.lowerBound, SizeTable.customSideRange.upperBound)
        let outside = SizeTable.allSizes.filter { !SizeTable.customSideRange.contains($0.width) || !SizeTable.customSideRange.contains($0.height) }
            .map { "\($0.width)x\($0.height)" }
        let pattern = "^(?:auto|" + (outside + ["\(side)x\(side)"]).joined(separator: "|") + ")$"
        return .nullable(string(pattern, "WIDTHxHEIGHT: a size of the table (1024x1024, 1344x768, …) or each side from 256 to 1440 (rounded up to a multiple of 16); auto is 1024x1024. Ignored by edits (the output takes the input image's size)."))
    }

    static func generation(_ entries: [ModelEntry]) -> JSONSchema {
        // The catalog's parameters but those OpenAI's own fields stand for (and the images, which are the edit
        // route's), without aliases: no rule between parameters remains, so every field stands alone.
        var properties: [String: JSONSchema] = [:]
        let definitions = RunInputSchema.definitions(entries)
        for d in definitions where !OpenAIImageRequest.coveredByOpenAI.keys.contains(d.name) && !["image", "mask"].contains(d.name) {
            properties[d.name] = RunInputSchema.parameter(d, required: d.required)
        }
        let catalog = Dictionary(definitions.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let ids = entries.map { escaped($0.id) }.joined(separator: "|")
        properties["model"] = .nullable(string("^(?:\(ids)|dall-e\(P.textChar)*|gpt-image\(P.textChar)*|)$",
                                               "A catalog model id (GET /v1/models); OpenAI's own names (dall-e-*, gpt-image-*) or none: the first model."))
        if let n = catalog["num_outputs"] { properties["n"] = RunInputSchema.parameter(n, required: false).described("How many images (num_outputs).") }
        if let q = catalog["output_quality"] {
            properties["output_compression"] = RunInputSchema.parameter(q, required: false)
                .described("Compression quality 0-100 for webp and jpeg (output_quality).")
        }
        properties["size"] = size
        properties["response_format"] = .nullable(JSONSchema.strings(["url", "b64_json"])
            .described("url (the default): links to the images; b64_json: the images in the answer."))
        properties["background"] = .nullable(JSONSchema.strings(["auto", "opaque"]).described("FLUX images are opaque: transparent is refused."))
        properties["stream"] = JSONSchema.oneOf([.const(.bool(false)), .null]).described("Streaming is not offered: false or absent.")
        let anything = JSONSchema.oneOf([.string(pattern: P.text), JSONSchema(type: .number, .boolean, .null)])
            .described("Accepted and ignored (OpenAI's; no meaning for FLUX).")
        for name in OpenAIImageRequest.ignored { properties[name] = anything }
        return .object(properties, required: ["prompt"], closed: true)
    }

    /// The edit route's multipart body: the same fields as text, and the image (and mask) as files.
    static func edit(_ generation: JSONSchema) -> JSONSchema {
        var form = RunInputSchema.textOnly(generation)
        var properties = form.properties ?? [:]
        properties["stream"] = nil
        properties["image"] = JSONSchema.string(format: "binary").described("The picture to edit (PNG, JPEG or WebP); the output takes its size.")
        properties["mask"] = JSONSchema.string(format: "binary")
            .described("A PNG whose transparent pixels are repainted (OpenAI's convention); without it the edit is image-to-image.")
        form.properties = properties
        form.required = ["image", "prompt"]
        return form
    }

    static func escaped(_ id: String) -> String {
        id.map { "()[]{}?*+-|^$\\.&~# ".contains($0) ? "\\\($0)" : String($0) }.joined()
    }
}
