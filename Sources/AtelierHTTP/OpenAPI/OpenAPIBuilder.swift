import AtelierCore
import Foundation

/// The schemas /openapi.json builds from the live catalog when the server starts: every parameter schema, each
/// model's own inputs (`ModelInput_<id>`), the model names each dialect takes. A model file added to the models
/// folder is in the document of the next start, with its parameters. Routes refer to these by name.
public struct CatalogSchemas: Sendable {
    public let runInput: JSONSchema
    public let runForm: JSONSchema
    public let replicateInput: JSONSchema
    public let modelOwner: JSONSchema
    public let modelName: JSONSchema
    public let modelVersion: JSONSchema
    public let imageGeneration: JSONSchema
    public let imageEdit: JSONSchema
    /// `ModelInput_<id>`: no route takes them; clients and reviewers look a model's inputs up by name.
    public let modelInputs: [JSONSchema]

    public init(catalog: ModelCatalog, dialects: DialectConfiguration) {
        let entries = catalog.ids.compactMap { catalog[$0] }
        let run = RunInputSchema.runInput(entries)
        runInput = .component("RunInput", run)
        runForm = .component("RunForm", RunInputSchema.textOnly(run))
        replicateInput = .component("ReplicateInput", RunInputSchema.replicateInput(entries))
        modelInputs = entries.map { .component("ModelInput_\($0.id)", RunInputSchema.modelInput([$0])) }
        modelOwner = .component("ModelOwner", .strings([dialects.replicateOwner]))
        modelName = .component("ModelName", .strings(entries.map(\.id)))
        // POST /v1/predictions' version: a version id, owner/name, or owner/name:version.
        let versions = entries.flatMap { entry -> [String] in
            let version = ReplicatePrediction.version(of: entry), name = "\(dialects.replicateOwner)/\(entry.id)"
            return [version, name, "\(name):\(version)"]
        }
        modelVersion = .component("ModelVersion", .strings(versions))
        let images = OpenAIImagesSchema.generation(entries)
        imageGeneration = .component("OpenAIImageGeneration", images)
        imageEdit = .component("OpenAIImageEdit", OpenAIImagesSchema.edit(images))
    }
}

/// /openapi.json: every endpoint of every API this server speaks, described from the declarations the router
/// registers (`Endpoint`), with the catalog's schemas.
public enum OpenAPIBuilder {
    static let info = OpenAPI.Info(title: "Atelier", version: "1.0.0",
                                   description: "Self-hosted image generation with the hosted service's /api/v4/run contract. See docs/api.md.")

    /// Every route of the API port: the very list the router registers (`AtelierAPI.allEndpoints`).
    static func routes(_ schemas: CatalogSchemas) -> [APIRoute] {
        AtelierAPI.allEndpoints(schemas).map(\.route)
    }

    static func document(_ schemas: CatalogSchemas) -> OpenAPI.Document {
        OpenAPI.Document(info: info, routes: routes(schemas), extraSchemas: schemas.modelInputs)
    }

    static func json(_ schemas: CatalogSchemas) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every value is a plain struct of strings, numbers and arrays: encoding cannot fail.
        return String(decoding: (try? encoder.encode(document(schemas))) ?? Data(), as: UTF8.self)
    }

    public static func json(catalog: ModelCatalog, dialects: DialectConfiguration = .init()) -> String {
        json(CatalogSchemas(catalog: catalog, dialects: dialects))
    }
}
