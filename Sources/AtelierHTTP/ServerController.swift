import AtelierCore
import AtelierEngine
import AtelierRuns
import Foundation
import Hummingbird
import NIOCore

/// The routes every node serves besides the APIs: liveness and readiness (for load balancers and operators),
/// metrics, the images and the API's own description.
struct ServerController: Sendable {
    let queue: any RunQueue
    /// Asked one cheap question for readiness: is the database answering.
    let database: any KeyStore
    let jobs: any JobStore
    let catalog: ModelCatalog
    let storage: any ImageStorage
    let outputURLs: OutputURLMode
    /// `--output-retention`; nil: images are kept.
    let outputRetention: Duration?
    /// `GET /metrics` (where it is served, and its registry); nil: the route answers 404.
    let metricsEndpoint: MetricsEndpoint?
    /// /openapi.json, built once from the routes' declarations and the live catalog.
    let openapi: ByteBuffer

    // MARK: /healthz

    struct Health: Encodable, Sendable {
        var status: String
        var workers: [WorkerSlotStatus]
        enum CodingKeys: String, CodingKey, CaseIterable { case status, workers }
        static var schema: JSONSchema {
            .component("Health", .keyed(CodingKeys.self, required: [.status, .workers]) { key in
                switch key {
                case .status: .strings(["ok", "starting"])
                case .workers: .array(of: JSONSchema.anyObject.described("A worker slot: its state, process, device, compiled paths and last stats report."))
                }
            })
        }
    }

    struct Readiness: Encodable, Sendable {
        var ready: Bool
        var workers: Bool
        var database: Bool
        var storage: Bool
        var draining: Bool
        enum CodingKeys: String, CodingKey, CaseIterable { case ready, workers, database, storage, draining }
        static var schema: JSONSchema {
            .component("Readiness", .keyed(CodingKeys.self, required: Array(CodingKeys.allCases)) { key in
                switch key {
                case .draining: JSONSchema.boolean.described("True after SIGTERM: no new runs are taken.")
                case .storage: JSONSchema.boolean.described("Whether the image store answers. Not part of ready: every node shares it, so no other node would do better; requests that need it answer 503 storage_unavailable at once meanwhile.")
                case .ready, .workers, .database: .boolean
                }
            })
        }
    }

    /// The routes every API node serves besides the APIs: liveness, readiness, metrics, images and this document.
    static var endpoints: [Endpoint<ServerController>] {
        [
            Endpoint(.get("/healthz", .init("health", "Liveness and the workers' state", isPublic: true,
                                            responses: ["200": .json("Alive.", Health.schema)]))) { api in { _, _ in api.health() } },
            Endpoint(.get("/readyz", .init("ready", "Ready for traffic: a worker ready and the database answering", isPublic: true,
                                           responses: ["200": .json("Ready.", Readiness.schema), "503": .json("Not ready.", Readiness.schema)]))) { api in
                { _, _ in try await api.ready() }
            },
            outputEndpoint, metricsRoute,
            Endpoint(.get("/openapi.json", .init("openapi", "This document", isPublic: true,
                                                 responses: ["200": .init(description: "OpenAPI 3.1", content: ["application/json": .init()])]))) { api in
                { _, _ in Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-cache"], body: .init(byteBuffer: api.openapi)) }
            },
        ]
    }

    /// Ready for traffic: at least one worker ready and the database answering; 503 otherwise, so a load balancer
    /// sends requests elsewhere. The image store is reported beside it (its probe goes through the bucket's circuit
    /// breaker, so it answers at once while the bucket is known to be down).
    func ready() async throws -> Response {
        // An API-only node (--workers 0 on a shared database) serves without workers of its own.
        let workerReady = !queue.runsWorkers || queue.workerStatus.contains(where: \.isReady)
        async let databaseAnswers = (try? await self.database.keyCount()) != nil
        async let storageAnswers = (try? await self.storage.probe()) != nil
        let (database, storage) = await (databaseAnswers, storageAnswers)
        let draining = queue.isDraining
        let ok = workerReady && database && !draining
        return JSONResponse.make(status: ok ? .ok : .serviceUnavailable,
                                 Readiness(ready: ok, workers: workerReady, database: database, storage: storage, draining: draining))
    }

    func health() -> Response {
        let workers = queue.workerStatus
        let ready = workers.contains(where: \.isReady)
        return JSONResponse.make(status: .ok, Health(status: ready ? "ok" : "starting", workers: workers))
    }
}
