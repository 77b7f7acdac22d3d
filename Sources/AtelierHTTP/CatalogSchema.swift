import AtelierCore

/// A model's inputs as JSON Schema, read from its catalog entry (the one source of the parameters): types,
/// bounds, choices, defaults and descriptions, in the catalog's order (`x-order`, as cog writes it). It is the
/// schema of a Replicate version, so a model file added to `models/` appears there with its own parameters.
enum CatalogSchema {
    static func input(of entry: ModelEntry) -> JSONSchema {
        var properties: [String: JSONSchema] = [:]
        var required: [String] = []
        for (order, d) in entry.parameters.filter(\.supported).enumerated() {
            var p: JSONSchema
            switch d.kind {
            case .string: p = .string(maxLength: d.maxLength)
            case .integer: p = .integer(minimum: d.minimum.map { Int64($0) }, maximum: d.maximum.map { Int64($0) })
            case .number: p = .number(minimum: d.minimum, maximum: d.maximum)
            case .boolean: p = .boolean
            case .choice: p = .strings(d.choices ?? [])
            case .seed: p = .integer(minimum: 0, maximum: Int64(RunRequest.maxSeed))
            case .file, .lora: p = .string(format: "uri")
            case .loraList:
                p = .array(of: JSONSchema.object([
                    "path": .string(format: "uri"), "scale": .number(minimum: d.minimum, maximum: d.maximum),
                ]).with { $0.required = ["path"] })
            }
            p.description = d.description
            p.order = order
            p.title = d.name.split(separator: "_").map { $0.capitalized }.joined(separator: " ")
            p.defaultValue = RunInputSchema.literal(d.defaultValue, integer: d.kind == .integer)
            if d.required { required.append(d.name) }
            properties[d.name] = p
        }
        return JSONSchema.object(properties).with {
            $0.title = "Input"
            $0.required = required
        }
    }

    /// What every model gives back: image URLs.
    static let output = JSONSchema.array(of: .string(format: "uri")).with { $0.title = "Output" }
}
