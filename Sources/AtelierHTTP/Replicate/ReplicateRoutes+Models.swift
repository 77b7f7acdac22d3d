import AtelierCore
import AtelierRuns
import Foundation
import Hummingbird

/// `GET /v1/models/{owner}/{name}` and its versions: a catalog model as Replicate's clients read a model. It has
/// one version, whose schema (cog's `openapi_schema`) is the model's inputs from the catalog.
extension ReplicateRoutes {
    struct ModelObject: Encodable, Sendable {
        var url: String
        var owner: String
        var name: String
        var description: String
        var visibility = "public"
        var githubURL: String? = nil
        var paperURL: String? = nil
        var licenseURL: String?
        var runCount = 0
        var coverImageURL: String? = nil
        var defaultExample: String? = nil
        var latestVersion: VersionObject
        var pricePerImage: AccountController.ModelView.Price
        enum CodingKeys: String, CodingKey, CaseIterable {
            case url, owner, name, description, visibility
            case githubURL = "github_url"
            case paperURL = "paper_url"
            case licenseURL = "license_url"
            case runCount = "run_count"
            case coverImageURL = "cover_image_url"
            case defaultExample = "default_example"
            case latestVersion = "latest_version"
            case pricePerImage = "price_per_image"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(url, forKey: .url)
            try c.encode(owner, forKey: .owner)
            try c.encode(name, forKey: .name)
            try c.encode(description, forKey: .description)
            try c.encode(visibility, forKey: .visibility)
            // Nulls written out: the client's model requires the keys.
            try c.encode(githubURL, forKey: .githubURL)
            try c.encode(paperURL, forKey: .paperURL)
            try c.encode(licenseURL, forKey: .licenseURL)
            try c.encode(runCount, forKey: .runCount)
            try c.encode(coverImageURL, forKey: .coverImageURL)
            try c.encode(defaultExample, forKey: .defaultExample)
            try c.encode(latestVersion, forKey: .latestVersion)
            try c.encode(pricePerImage, forKey: .pricePerImage)
        }
    }

    struct VersionObject: Encodable, Sendable {
        var id: String
        var createdAt: Date
        var cogVersion = "atelier"
        var openapiSchema: CogSchema
        enum CodingKeys: String, CodingKey, CaseIterable {
            case id
            case createdAt = "created_at"
            case cogVersion = "cog_version"
            case openapiSchema = "openapi_schema"
        }

        static var schema: JSONSchema {
            .component("Version", .keyed(CodingKeys.self, required: Array(CodingKeys.allCases)) { key in
                switch key {
                case .id, .cogVersion: .string()
                case .createdAt: .string(format: "date-time")
                case .openapiSchema: JSONSchema.anyObject.described("cog's OpenAPI 3.0 document of the model's inputs (Input) and output (Output).")
                }
            })
        }
    }

    /// A version's `openapi_schema`, as cog writes it: the inputs and the output, no paths.
    struct CogSchema: Encodable, Sendable {
        struct Info: Encodable, Sendable {
            var title: String
            var version = "1"
        }
        struct Components: Encodable, Sendable {
            var schemas: [String: JSONSchema]
        }
        var openapi = "3.0.2"
        var info: Info
        var paths: [String: String] = [:]
        var components: Components
    }

    func entry(_ context: AtelierRequestContext) throws -> ModelEntry {
        guard let entry = catalog[try modelID(context)] else { throw AtelierError.modelNotFound(context.parameters.get("name") ?? "") }
        return entry
    }

    func versionObject(_ entry: ModelEntry) -> VersionObject {
        let schema = CogSchema(info: .init(title: entry.title),
                               components: .init(schemas: ["Input": CatalogSchema.input(of: entry), "Output": CatalogSchema.output]))
        // The version exists since the catalog was loaded; its id changes with the entry.
        return VersionObject(id: ReplicatePrediction.version(of: entry), createdAt: catalogLoadedAt, openapiSchema: schema)
    }

    func modelObject(_ entry: ModelEntry, request: Request) -> ModelObject {
        ModelObject(url: "\(edge.baseURL(for: request))/v1/models/\(owner)/\(entry.id)", owner: owner, name: entry.id,
                    description: entry.description, licenseURL: entry.license, latestVersion: versionObject(entry),
                    pricePerImage: .init(currency: entry.pricePerImage.currency, minorUnits: entry.pricePerImage.minorUnits,
                                                        display: entry.pricePerImage.display))
    }

    func model(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        return JSONResponse.make(status: .ok, modelObject(try entry(context), request: request))
    }

    func versions(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        return JSONResponse.make(status: .ok, Page(previous: nil, next: nil, results: [versionObject(try entry(context))]))
    }

    func version(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let entry = try entry(context)
        let version = versionObject(entry)
        guard context.parameters.get("version") == version.id else {
            throw AtelierError.notFound("no version \(context.parameters.get("version") ?? "") of \(owner)/\(entry.id); its version is \(version.id)")
        }
        return JSONResponse.make(status: .ok, version)
    }
}

extension ReplicateRoutes.ModelObject {
    static var schema: JSONSchema {
        .component("ReplicateModel", .keyed(CodingKeys.self, required: [.url, .owner, .name, .description, .visibility, .latestVersion, .pricePerImage]) { key in
            switch key {
            case .url, .owner, .name, .description, .visibility: .string()
            case .githubURL, .paperURL, .licenseURL, .coverImageURL, .defaultExample: JSONSchema(type: .string, .null)
            case .runCount: .integer(minimum: 0)
            case .latestVersion: ReplicateRoutes.VersionObject.schema
            case .pricePerImage: AccountController.ModelView.Price.schema
            }
        })
    }
}

/// When this process loaded the catalog: the `created_at` of every version.
let catalogLoadedAt = Date()
