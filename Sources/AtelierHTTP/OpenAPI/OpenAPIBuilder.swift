import AtelierCore

/// /openapi.json as served: the routes and responses (`OpenAPIDocument`, generated from
/// docs/tools/openapi_source.py and checked against the router by a test) completed at start-up from the live
/// catalog: every parameter schema, each model's own inputs (`ModelInput_<id>`), the model names each dialect
/// takes. A model file added to the models folder is in the document of the next start, with its parameters.
public enum OpenAPIBuilder {
    public static func json(catalog: ModelCatalog, dialects: DialectConfiguration = .init()) -> String {
        let entries = catalog.ids.compactMap { catalog[$0] }
        guard let members = try? JSONBody.parameters(Array(OpenAPIDocument.json.utf8)) else { return OpenAPIDocument.json }
        var document = JSONValue(.object(members.map { JSONBody.Member(key: $0.key, value: $0.value) }))
        var schemas: [String: JSONValue] = [:]
        if case .object(let existing)? = document["components"]?["schemas"] { schemas = existing }
        let run = RunInputSchema.runInput(entries)
        schemas["RunInput"] = run
        schemas["RunForm"] = RunInputSchema.textOnly(run)
        schemas["ReplicateInput"] = RunInputSchema.replicateInput(entries)
        for entry in entries { schemas["ModelInput_\(entry.id)"] = RunInputSchema.modelInput([entry]) }
        schemas["ModelOwner"] = .object(["type": .string("string"), "enum": .array([.string(dialects.replicateOwner)])])
        schemas["ModelName"] = .object(["type": .string("string"), "enum": .array(entries.map { .string($0.id) })])
        // POST /v1/predictions' version: a version id, owner/name, or owner/name:version.
        let versions = entries.flatMap { entry -> [String] in
            let version = ReplicatePrediction.version(of: entry), name = "\(dialects.replicateOwner)/\(entry.id)"
            return [version, name, "\(name):\(version)"]
        }
        schemas["ModelVersion"] = .object(["type": .string("string"), "enum": .array(versions.map(JSONValue.string))])
        let images = OpenAIImagesSchema.generation(entries)
        schemas["OpenAIImageGeneration"] = images
        schemas["OpenAIImageEdit"] = OpenAIImagesSchema.edit(images)
        document["components"]?["schemas"] = .object(schemas)
        let encoded = (try? JSONResponse.encoder.encode(document)).map { String(decoding: $0, as: UTF8.self) }
        return encoded ?? OpenAPIDocument.json
    }
}
