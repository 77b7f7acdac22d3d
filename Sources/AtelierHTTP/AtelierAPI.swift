import AtelierCore
import AtelierMetrics
import AtelierRuns
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

public struct APIConfiguration: Sendable {
    /// Public base URL for output links (e.g. https://images.example.com); nil: built from the request's Host.
    public var publicBaseURL: String?
    /// How long /api/v4/run holds the connection before answering with the request_id and status only.
    public var waitWindow: Duration = .seconds(60)
    /// Largest body accepted; a larger Content-Length is refused before the body is read.
    public var maxBodyBytes: Int = 32 * 1024 * 1024
    /// The longest a request may ask to wait (`wait`, `Prefer: wait=N`); longer asks are cut to it.
    public var maxWait: Duration = .seconds(600)
    /// Runs an account may have queued or running at once; more are refused with 429.
    public var maxConcurrentRuns: Int = 16
    /// Which hosts client URLs (webhooks, input images) may reach: no internal addresses unless allow-listed.
    public var outboundPolicy = OutboundAddressPolicy()
    /// Bounds on input images (bytes, pixels), checked before anything decodes them.
    public var imageLimits = ImageLimits()
    /// Time limits (and redirects) for fetching an input image URL; its byte cap is `imageLimits.maxBytes`.
    public var fetchLimits = OutboundLimits()
    /// How output URLs reach the images: through this API (the default), a presigned redirect, or a CDN.
    public var outputURLs: OutputURLMode = .proxy
    /// The Replicate-compatible and OpenAI-compatible routes (`/v1/…`).
    public var dialects = DialectConfiguration()
    /// `--output-retention`: how long a succeeded run's images are kept (the sweeper deletes older ones); nil: kept.
    public var outputRetention: Duration?
    /// `--max-loras`, `--lora-max-bytes`.
    public var loraLimits = LoRALimits()
    public init() {}

    /// The limits of the run use case, from the same settings.
    var runs: RunsConfiguration {
        var runs = RunsConfiguration()
        runs.maxWait = maxWait
        runs.maxConcurrentRuns = maxConcurrentRuns
        runs.outboundPolicy = outboundPolicy
        runs.loraLimits = loraLimits
        return runs
    }
}

/// The public API assembled: the run use case (`RunService`) and the controllers that translate each API onto it,
/// each handed only the services it needs, behind the key check (`AuthenticationMiddleware`) and the one error map.
public struct AtelierAPI: Sendable {
    let keys: any KeyStore
    let limiter: RateLimiter
    let edge: HTTPEdge
    /// The web pages (`/`, `/models/{id}`, `/account`); nil: the server answers the API only.
    let playground: Playground?
    let runs: RunController
    let accounts: AccountController
    let server: ServerController
    let replicate: ReplicateRoutes
    let replicateFiles: ReplicateFiles
    let openAI: OpenAIRoutes
    /// The catalog's schemas, built once: the routes' declarations and /openapi.json both use them.
    let schemas: CatalogSchemas

    public init(
        catalog: ModelCatalog, keys: any AccountsStore, jobs: any JobStore, storage: any ImageStorage, queue: any RunQueue,
        clock: any WallClock = SystemWallClock(), config: APIConfiguration = .init(), limiter: RateLimiter = RateLimiter(),
        inputStorage: (any ImageStorage)? = nil, loraStore: (any LoRAStore)? = nil, loraFetches: (any LoRAFetchLeases)? = nil,
        playground: Playground? = nil,
        metrics: MetricsEndpoint? = nil
    ) {
        let recorder = metrics?.metrics ?? AtelierMetrics()
        let inputs = inputStorage.map {
            InputImages(storage: $0, client: OutboundClient(policy: config.outboundPolicy, purpose: "input_image", metrics: recorder),
                        limits: config.imageLimits, fetchLimits: config.fetchLimits)
        }
        let service = RunService(catalog: catalog, jobs: jobs, accounts: keys, storage: storage, queue: queue, clock: clock,
                                 config: config.runs, inputs: inputs, loraStore: loraStore, loraFetches: loraFetches,
                                 metrics: recorder)
        let edge = HTTPEdge(config: config, storage: storage)
        self.keys = keys
        self.limiter = limiter
        self.edge = edge
        self.playground = playground
        schemas = CatalogSchemas(catalog: catalog, dialects: config.dialects)
        runs = RunController(runs: service, edge: edge, waitWindow: config.waitWindow, outputRetention: config.outputRetention)
        accounts = AccountController(catalog: catalog, accounts: keys, clock: clock)
        server = ServerController(queue: queue, database: keys, jobs: jobs, catalog: catalog, storage: storage, outputURLs: config.outputURLs,
                                  outputRetention: config.outputRetention, metricsEndpoint: metrics,
                                  openapi: ByteBuffer(string: OpenAPIBuilder.json(schemas)))
        replicate = ReplicateRoutes(runs: service, edge: edge, owner: config.dialects.replicateOwner)
        replicateFiles = ReplicateFiles(runs: service, edge: edge)
        openAI = OpenAIRoutes(runs: service, edge: edge, replicateOwner: config.dialects.replicateOwner)
    }

    /// The key check each endpoint's declaration asks for.
    func authentication(_ credentials: Credentials, _ dialect: ErrorDialect) -> AuthenticationMiddleware {
        AuthenticationMiddleware(keys: keys, limiter: limiter, edge: edge, credentials: credentials, dialect: dialect)
    }

    public func buildRouter() -> Router<AtelierRequestContext> {
        let router = Router(context: AtelierRequestContext.self)
        let allowed = AllowedMethods()
        // Outside the error envelope, so it counts the status each answer went out with.
        if let endpoint = server.metricsEndpoint, endpoint.recording { router.add(middleware: HTTPMetricsMiddleware(metrics: endpoint.http)) }
        router.add(middleware: ErrorEnvelopeMiddleware(allowed: allowed))
        // The same declarations /openapi.json is built from (`OpenAPIBuilder.routes`).
        router.add(Self.allEndpoints(schemas), on: self, authentication: authentication)
        playground?.add(to: router)
        allowed.load(router.routes)
        return router
    }

    /// Every route of the API port, in one list that the router registers and the document describes: each
    /// controller's, /api/v4's first, then the server's own (health, metrics, images, this document), then each
    /// dialect's.
    static func allEndpoints(_ schemas: CatalogSchemas) -> [Endpoint<AtelierAPI>] {
        RunController.endpoints(schemas).map { $0.lifted(\.runs) } + [RunController.eventsEndpoint.lifted(\.runs)]
            + AccountController.endpoints.map { $0.lifted(\.accounts) }
            + ServerController.endpoints.map { $0.lifted(\.server) }
            + ReplicateRoutes.endpoints(schemas).map { $0.lifted(\.replicate) }
            + ReplicateFiles.endpoints(schemas).map { $0.lifted(\.replicateFiles) }
            + OpenAIRoutes.endpoints(schemas).map { $0.lifted(\.openAI) }
    }

    /// A worker node's router: /healthz, /readyz and /metrics only.
    public func buildHealthRouter() -> Router<AtelierRequestContext> {
        let router = Router(context: AtelierRequestContext.self)
        let allowed = AllowedMethods()
        if let endpoint = server.metricsEndpoint, endpoint.recording { router.add(middleware: HTTPMetricsMiddleware(metrics: endpoint.http)) }
        router.add(middleware: ErrorEnvelopeMiddleware(allowed: allowed))
        // The API port's own declarations of these three routes, so a worker node answers them the same way.
        router.add(ServerController.endpoints.filter { Self.healthOperations.contains($0.route.operation.operationId) }, on: server,
                   authentication: authentication)
        allowed.load(router.routes)
        return router
    }

    static let healthOperations: Set<String> = ["health", "ready", "metrics"]

    /// The listener of `--metrics-address`: /metrics alone.
    public func buildMetricsRouter() -> Router<AtelierRequestContext> {
        let router = Router(context: AtelierRequestContext.self)
        let allowed = AllowedMethods()
        router.add(middleware: ErrorEnvelopeMiddleware(allowed: allowed))
        let server = self.server
        router.get("/metrics") { request, _ in try await server.metricsOnOwnAddress(request) }
        allowed.load(router.routes)
        return router
    }

    /// The HTTP/1.1 server with the 100-continue handler in its pipeline.
    public static func server() -> HTTPServerBuilder {
        .http1(configuration: .init(additionalChannelHandlers: [ExpectContinueHandler()]))
    }
}
