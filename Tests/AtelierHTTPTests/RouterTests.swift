import AtelierCore
import AtelierEngine
@testable import AtelierHTTP
@testable import AtelierRuns
import AtelierPersistence
import AtelierStorage
import AtelierTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The router with a real SQLite file and output folder; the queue only counts, because none of these requests
/// may ever reach a worker (the end-to-end tests run the real worker).
@Suite struct RouterTests {
    let store: SQLiteStore
    let storage: LocalFolderStorage
    let queue = InMemoryRunQueue()
    let key = APIKey.generate()

    init() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atelier-router-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        store = try SQLiteStore(path: dir.appendingPathComponent("db.sqlite").path)
        storage = try LocalFolderStorage(root: dir.appendingPathComponent("outputs"))
        try await store.addKey(key, accountID: try await store.ensureAccount(named: "t"))
    }

    func app(maxBody: Int = 1024 * 1024) -> some ApplicationProtocol {
        let entry = try! RepositoryCatalog.entry()
        var config = APIConfiguration()
        config.maxBodyBytes = maxBody
        let api = AtelierAPI(catalog: ModelCatalog([entry]), keys: store, jobs: store, storage: storage, queue: queue, config: config)
        return Application(router: api.buildRouter())
    }

    func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(buffer: buffer)) as! [String: Any]
    }

    @Test func missingKeyIs401WithEnvelope() async throws {
        try await app().test(.router) { client in
            try await client.execute(uri: "/api/v4/run", method: .post, body: ByteBuffer(string: "{}")) { response in
                #expect(response.status == .unauthorized)
                let body = try json(response.body)
                #expect(body["success"] as? Bool == false)
                #expect((body["error"] as? [String: Any])?["code"] as? String == "unauthorized")
            }
        }
        #expect(queue.queuedCount == 0)
    }

    @Test func wrongSchemeIs401() async throws {
        try await app().test(.router) { client in
            try await client.execute(uri: "/api/v4/run", method: .post, headers: [.authorization: "Basic abc"]) { response in
                #expect(response.status == .unauthorized)
            }
        }
    }

    @Test func badParametersAre400AndNothingIsQueued() async throws {
        try await app().test(.router) { client in
            try await client.execute(
                uri: "/api/v4/run", method: .post,
                headers: [.authorization: "Bearer \(key.plaintext)", .contentType: "application/json"],
                body: ByteBuffer(string: #"{"model_id":"flux-cute-3d-kawaii","prompt":"p","aspect_ratio":"2:1"}"#)
            ) { response in
                #expect(response.status == .badRequest)
                let error = try json(response.body)["error"] as? [String: Any]
                #expect(error?["param"] as? String == "aspect_ratio")
            }
        }
        #expect(queue.queuedCount == 0)
    }

    @Test func oversizedBodyIs413BeforeReadingIt() async throws {
        try await app(maxBody: 1000).test(.router) { client in
            try await client.execute(
                uri: "/api/v4/run", method: .post,
                headers: [.authorization: "Bearer \(key.plaintext)", .contentType: "application/json"],
                body: ByteBuffer(string: String(repeating: " ", count: 5000))
            ) { response in
                #expect(response.status == .contentTooLarge)
                let body = try json(response.body)
                #expect((body["error"] as? [String: Any])?["code"] as? String == "body_too_large")
            }
        }
    }

    @Test func unknownRouteIs404WithEnvelope() async throws {
        try await app().test(.router) { client in
            try await client.execute(uri: "/api/v5/run", method: .get) { response in
                #expect(response.status == .notFound)
                let body = try json(response.body)
                #expect(body["success"] as? Bool == false)
            }
        }
    }

    @Test(arguments: ["..%2Fdb.sqlite", "db.sqlite", "%2Fetc%2Fpasswd", "ABCDEF00000000000000000000000000.webp", "0123.webp"])
    func storageRefusesAnythingButOutputNames(name: String) async throws {
        try await app().test(.router) { client in
            try await client.execute(uri: "/storage/outputs/\(name)", method: .get) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test func storageServesAnExistingOutput() async throws {
        let name = storage.newName(format: .png)
        try Data([0x89, 0x50, 0x4E, 0x47]).write(to: URL(fileURLWithPath: storage.localPath(for: name)!))
        try await app().test(.router) { client in
            try await client.execute(uri: "/storage/outputs/\(name)", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "image/png")
                #expect(Array(buffer: response.body) == [0x89, 0x50, 0x4E, 0x47])
            }
        }
    }
}

/// The OpenAPI document as served (the routes' document completed from the catalog) against the router and the
/// catalog.
@Suite struct OpenAPIDocumentTests {
    let document: [String: Any]

    init() throws {
        let json = OpenAPIBuilder.json(catalog: ModelCatalog([try RepositoryCatalog.entry()]))
        document = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
    }

    /// A second model file appears with its own parameters: in /api/v4/run's model_id, the Replicate and OpenAI
    /// model names, and its own ModelInput schema, which has exactly its parameters (it narrows the steps and drops
    /// lora_scale and mask).
    @Test func aSecondModelAppearsWithItsOwnParameters() throws {
        let first = try RepositoryCatalog.entry()
        var second = first
        second.id = "flux-plain"
        second.parameters = first.parameters.filter { !["lora_scale", "mask"].contains($0.name) }
        if let i = second.parameters.firstIndex(where: { $0.name == "num_inference_steps" }) {
            second.parameters[i].maximum = 8
            second.parameters[i].defaultValue = .number(4)
        }
        #expect(RunParameter.problems(in: second).isEmpty)
        let json = OpenAPIBuilder.json(catalog: ModelCatalog([first, second]))
        let doc = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        let schemas = try #require((doc["components"] as? [String: Any])?["schemas"] as? [String: [String: Any]])
        let own = try #require(schemas["ModelInput_flux-plain"]?["properties"] as? [String: Any])
        #expect(Set(own.keys) == Set(second.parameters.map(\.name) + second.parameters.flatMap { $0.aliases ?? [] }))
        let steps = ((own["num_inference_steps"] as? [String: Any])?["oneOf"] as? [[String: Any]])?.first?["maximum"] as? Int
        #expect(steps == 8)
        let firstOwn = Set(try #require(schemas["ModelInput_flux-cute-3d-kawaii"]?["properties"] as? [String: Any]).keys)
        #expect(firstOwn.contains("lora_scale") && firstOwn.contains("mask"))
        let ids = (schemas["RunInput"]?["properties"] as? [String: [String: Any]])?["model_id"]?["enum"] as? [String]
        #expect(ids == ["flux-cute-3d-kawaii", "flux-plain"])
        #expect(schemas["ModelName"]?["enum"] as? [String] == ["flux-cute-3d-kawaii", "flux-plain"])
    }

    @Test func everyRouteIsDocumentedAndEveryDocumentedRouteExists() throws {
        let store = try SQLiteStore(path: FileManager.default.temporaryDirectory.appendingPathComponent("oa-\(UUID().uuidString).sqlite").path)
        let storage = try LocalFolderStorage(root: FileManager.default.temporaryDirectory.appendingPathComponent("oa-\(UUID().uuidString)"))
        let api = AtelierAPI(catalog: ModelCatalog([try RepositoryCatalog.entry()]), keys: store, jobs: store,
                             storage: storage, queue: InMemoryRunQueue())
        let served = Set(api.buildRouter().routes.map { "\($0.method.rawValue.lowercased()) \($0.path)" })
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let documented = Set(paths.flatMap { path, ops in ops.keys.map { "\($0) \(path)" } })
        #expect(served == documented)
    }

    @Test func runParametersAreExactlyTheCatalogs() throws {
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let run = try #require(schemas["RunInput"] as? [String: Any])
        let properties = Set(try #require(run["properties"] as? [String: Any]).keys)
        let entry = try RepositoryCatalog.entry()
        let supported = entry.parameters.filter(\.supported)
        // model_id, api_key, wait and the webhook are the request's, not the model's.
        let expected = Set(supported.map(\.name) + supported.flatMap { $0.aliases ?? [] }
                           + ["model_id", "api_key", "wait", "webhook", "webhook_events_filter"])
        #expect(properties == expected)
        // aspect_ratio is required unless an image gives the size: an anyOf of the two.
        let required = Set(run["required"] as? [String] ?? [])
        #expect(required == Set(entry.parameters.filter { $0.required && $0.name != "aspect_ratio" }.map(\.name) + ["model_id"]))
        let rules = run["allOf"] as? [[String: Any]] ?? []
        let alternatives = (rules.first?["anyOf"] as? [[String: Any]] ?? []).compactMap { $0["required"] as? [String] }
        #expect(alternatives == [["aspect_ratio"], ["image"]])
    }

    /// A field added to a wire type is in the document with no other change: its schema is keyed by the type's
    /// CodingKeys, so the document lists exactly the fields the encoder writes.
    @Test func wireTypesAreDescribedFieldForField() throws {
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: [String: Any]])
        func fields(_ name: String) -> Set<String> { Set((schemas[name]?["properties"] as? [String: Any] ?? [:]).keys) }
        #expect(fields("RunData") == Set(RunView.CodingKeys.allCases.map(\.stringValue)))
        #expect(fields("Prediction") == Set(ReplicatePrediction.CodingKeys.allCases.map(\.stringValue)))
        #expect(fields("Cost") == Set(RunCost.CodingKeys.allCases.map(\.stringValue)))
        #expect(fields("ImagesResponse") == Set(OpenAIRoutes.ImagesResponse.CodingKeys.allCases.map(\.stringValue)))
        let path = (schemas["RunData"]?["properties"] as? [String: [String: Any]])?["path"]?["enum"] as? [String]
        #expect(path == ExecutionPath.allCases.map(\.rawValue))
    }

    /// Every route the router serves is described with the same method, path and operation it was declared with.
    @Test func routesAreDeclaredOnce() throws {
        let declared = OpenAPIBuilder.routes(CatalogSchemas(catalog: ModelCatalog([try RepositoryCatalog.entry()]), dialects: .init()))
        let ids = declared.map(\.operation.operationId)
        #expect(Set(ids).count == ids.count, "operation ids are unique")
        let paths = try #require(document["paths"] as? [String: [String: [String: Any]]])
        for route in declared {
            #expect(paths[route.path]?[route.method.rawValue.lowercased()]?["operationId"] as? String == route.operation.operationId)
        }
    }

    @Test func isOpenAPI31() {
        #expect(document["openapi"] as? String == "3.1.0")
    }
}

@Suite struct ReadinessTests {
    @Test func notReadyWithoutAWorker() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atelier-ready-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: dir.appendingPathComponent("db.sqlite").path)
        let api = AtelierAPI(catalog: ModelCatalog([try RepositoryCatalog.entry()]), keys: store, jobs: store,
                             storage: try LocalFolderStorage(root: dir.appendingPathComponent("outputs")), queue: InMemoryRunQueue())
        try await Application(router: api.buildRouter()).test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
            }
        }
    }
}
