import AtelierCore
import AtelierEngine
import AtelierMetrics
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Where queued jobs go and how their ends are heard: the supervisor in production, a test double in unit tests.
public protocol RunQueue: Sendable {
    var events: JobEvents { get }
    func jobQueued() async
    /// Tells the worker running this job (if any) to stop; the store already recorded the cancel.
    func cancel(_ id: Int64)
    /// True once shutdown began: no new runs are taken and /readyz answers 503.
    var isDraining: Bool { get }
    /// Worker slots, for /healthz.
    var workerStatus: [WorkerSlotStatus] { get }
    /// False on an API-only node (`--workers 0`): other nodes' workers run its queue, so it is ready without any.
    var runsWorkers: Bool { get }
}

extension RunQueue {
    public var runsWorkers: Bool { true }
}

extension WorkerSupervisor: RunQueue {
    public var workerStatus: [WorkerSlotStatus] { status }
}

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
    public init() {}
}

/// The dependencies of the public API, injected.
public struct AtelierAPI: Sendable {
    public let catalog: ModelCatalog
    public let keys: any KeyStore
    public let jobs: any JobStore
    public let storage: any ImageStorage
    public let queue: any RunQueue
    public let clock: any WallClock
    public let config: APIConfiguration
    public let limiter: RateLimiter
    /// Where input images are kept while their run is queued or running; nil: image inputs are refused.
    public let inputs: InputImages?
    /// The web pages (`/`, `/models/{id}`, `/account`); nil: the server answers the API only.
    public let playground: Playground?
    /// `GET /metrics` (where it is served, and its registry); nil: the route answers 404.
    public let metricsEndpoint: MetricsEndpoint?
    /// Encoded /check answers of finished runs.
    let finishedRuns = FinishedRunCache()
    /// The catalog's schemas, built once: the routes' declarations and /openapi.json both use them.
    let schemas: CatalogSchemas
    /// /openapi.json, built once from the routes' declarations and the live catalog.
    let openapi: ByteBuffer
    var links: OutputLinks { OutputLinks(mode: config.outputURLs, storage: storage) }
    /// Makes, reads and cancels runs for every dialect.
    var runs: RunService {
        RunService(catalog: catalog, jobs: jobs, keys: keys, storage: storage, queue: queue, clock: clock, config: config, inputs: inputs,
                   metrics: metricsEndpoint?.metrics ?? AtelierMetrics())
    }

    public init(
        catalog: ModelCatalog, keys: any KeyStore, jobs: any JobStore, storage: any ImageStorage, queue: any RunQueue,
        clock: any WallClock = SystemWallClock(), config: APIConfiguration = .init(), limiter: RateLimiter = RateLimiter(),
        inputStorage: (any ImageStorage)? = nil, playground: Playground? = nil, metrics: MetricsEndpoint? = nil
    ) {
        self.metricsEndpoint = metrics
        self.playground = playground
        inputs = inputStorage.map {
            InputImages(storage: $0, client: OutboundClient(policy: config.outboundPolicy, purpose: "input_image", metrics: metrics?.metrics ?? AtelierMetrics()),
                        limits: config.imageLimits,
                        fetchLimits: config.fetchLimits)
        }
        self.limiter = limiter
        self.catalog = catalog
        self.keys = keys
        self.jobs = jobs
        self.storage = storage
        self.queue = queue
        self.clock = clock
        self.config = config
        schemas = CatalogSchemas(catalog: catalog, dialects: config.dialects)
        openapi = ByteBuffer(string: OpenAPIBuilder.json(schemas))
    }

    public func buildRouter() -> Router<AtelierRequestContext> {
        let router = Router(context: AtelierRequestContext.self)
        let allowed = AllowedMethods()
        // Outside the error envelope, so it counts the status each answer went out with.
        if let endpoint = metricsEndpoint, endpoint.recording { router.add(middleware: HTTPMetricsMiddleware(metrics: endpoint.http)) }
        router.add(middleware: ErrorEnvelopeMiddleware(allowed: allowed))
        // The same declarations /openapi.json is built from (`OpenAPIBuilder.routes`).
        router.add(Self.allEndpoints(schemas), on: self)
        playground?.add(to: router)
        allowed.load(router.routes)
        return router
    }

    /// Every route of the API port, in one list that the router registers and the document describes: /api/v4's
    /// and the server's own (health, metrics, images, this document) beside their handlers, then each dialect's.
    static func allEndpoints(_ schemas: CatalogSchemas) -> [Endpoint<AtelierAPI>] {
        runEndpoints(schemas) + [eventsEndpoint] + accountEndpoints + serverEndpoints
            + ReplicateRoutes.endpoints(schemas).map { $0.lifted { ReplicateRoutes(api: $0) } }
            + ReplicateFiles.endpoints(schemas).map { $0.lifted { ReplicateFiles(api: $0) } }
            + OpenAIRoutes.endpoints(schemas).map { $0.lifted { OpenAIRoutes(api: $0) } }
    }

    /// A worker node's router: /healthz, /readyz and /metrics only.
    public func buildHealthRouter() -> Router<AtelierRequestContext> {
        let router = Router(context: AtelierRequestContext.self)
        let allowed = AllowedMethods()
        if let endpoint = metricsEndpoint, endpoint.recording { router.add(middleware: HTTPMetricsMiddleware(metrics: endpoint.http)) }
        router.add(middleware: ErrorEnvelopeMiddleware(allowed: allowed))
        // The API port's own declarations of these three routes, so a worker node answers them the same way.
        router.add(Self.serverEndpoints.filter { Self.healthOperations.contains($0.route.operation.operationId) }, on: self)
        allowed.load(router.routes)
        return router
    }

    static let healthOperations: Set<String> = ["health", "ready", "metrics"]

    // MARK: /api/v4/run, /check, /cancel

    static let idempotencyParameter = OpenAPI.Parameter.header(
        "Idempotency-Key", .string(pattern: "^[!-~]+$", minLength: 1, maxLength: 255),
        description: "Same key and same request: the first run's answer, never a second run or charge (kept 48 h, per API key).")

    static func runEndpoints(_ schemas: CatalogSchemas) -> [Endpoint<AtelierAPI>] {
        let runResponse = JSONSchema.component("RunResponse", SuccessEnvelope<RunView>.schema(RunView.schema))
        let ok = OpenAPI.Response.json("The run: finished (output set), failed is reported as an error, or still queued/running when the wait window ended.", runResponse)
        var linked = ok
        linked.links = ["CheckRun": .init(operationId: "checkGet", parameters: ["request_id": "$response.body#/data/request_id"],
                                          description: "The run's status and outcome, later.")]
        let checkInput = JSONSchema.component("CheckInput", .object([
            "request_id": .oneOf([.integer(minimum: 1, maximum: 9_007_199_254_740_991), .string(pattern: "^ *[0-9]{1,18} *$")]),
            "api_key": .string(pattern: SchemaPatterns.text),
        ], required: ["request_id"], closed: true))
        let common = [400, 401, 413, 415, 429, 503]
        let noRun = [404: "No such run for this key's account."]
        let cancelTexts = [409: "The run already succeeded or failed; there is nothing to cancel."]
        return [
            Endpoint(.post("/api/v4/run", .init(
                "run", "Run a model", parameters: [idempotencyParameter], body: .forms(json: schemas.runInput, form: schemas.runForm),
                responses: ["200": linked] + ErrorMapping.documented(common + [402, 409, 422, 500], [
                    503: "The run was lost to worker crashes or a timeout (nothing was made), or the server is shutting down (shutting_down: nothing was queued), or the database is unreachable (database_unavailable), or an input image could not be stored (storage_unavailable); see Retry-After.",
                ])))) { api in { try await api.run($0, context: $1) } },
            Endpoint(.get("/api/v4/check", .init(
                "checkGet", "A run's status and outcome",
                parameters: [.query("request_id", .string(pattern: "^[0-9]{1,18}$"), required: true)],
                responses: ["200": ok] + ErrorMapping.documented([400, 401, 404, 429, 503], noRun)))) { api in { try await api.check($0, context: $1) } },
            Endpoint(.post("/api/v4/check", .init(
                "checkPost", "A run's status and outcome", body: .forms(json: checkInput, form: checkInput),
                responses: ["200": ok] + ErrorMapping.documented(common + [404], noRun)))) { api in { try await api.check($0, context: $1) } },
            Endpoint(.post("/api/v4/cancel", .init(
                "cancel", "Cancel a run: a queued run never starts, a running one stops at its next step; nothing is charged",
                body: .forms(json: checkInput, form: checkInput),
                responses: ["200": ok] + ErrorMapping.documented(common + [404, 409], noRun.merging(cancelTexts) { $1 })))) { api in
                { try await api.cancel($0, context: $1) }
            },
        ]
    }

    func run(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        var raw = try await readParameters(request)
        let account = try await authenticate(request, body: raw)
        guard !queue.isDraining else { throw AtelierError.shuttingDown }
        let wait = try waitWindow(request, body: raw.removeValue(forKey: "wait"))
        let webhook = try await webhookSubscription(url: raw.removeValue(forKey: "webhook"),
                                                    filter: raw.removeValue(forKey: "webhook_events_filter"), request: request)
        raw.removeValue(forKey: "api_key")
        let submitted = try await runs.submit(
            .init(parameters: raw, webhook: webhook, idempotencyKey: request.headers[Self.idempotencyHeader], wait: wait),
            account: account, logger: context.logger)
        if submitted.replayed {
            guard submitted.job.status.isTerminal else { throw AtelierError.idempotencyInProgress(requestID: submitted.job.id) }
            return runResponse(submitted.job, request: request, cost: try await runs.cost(of: submitted.job, account: account),
                               headers: [Self.replayedHeader: "true"])
        }
        return runResponse(submitted.job, request: request, cost: try await runs.cost(of: submitted.job, account: account))
    }

    /// What /run answers for a run in its current state. Still queued or running when the wait window ended:
    /// the request_id and status only, as the hosted service documents; /api/v4/check has the rest.
    func runResponse(_ job: Job, request: Request, cost: RunCost, headers: HTTPFields = [:]) -> Response {
        var view = RunView(job: job, baseURL: baseURL(for: request), links: links, currency: cost.currency)
        view.cost = cost
        switch job.status {
        case .failed:
            let failure = job.failure ?? JobFailure(code: .generationFailed, message: "the run failed")
            return ErrorMapping.response(for: .runFailed(code: failure.code, message: failure.message), run: view, extraHeaders: headers)
        case .succeeded, .canceled:
            return JSONResponse.make(status: .ok, SuccessEnvelope(data: view), headers: headers)
        case .queued, .running:
            return JSONResponse.make(status: .ok, SuccessEnvelope(data: RunStatus(requestID: job.id, status: job.status.rawValue, cost: cost)), headers: headers)
        }
    }


    /// The run's webhook, if asked for: a well-formed http(s) URL whose host resolves only to public addresses
    /// (or is on the operator's allow-list). Checked again before every delivery.
    func webhookSubscription(url: ParameterValue?, filter: ParameterValue?, request: Request) async throws -> WebhookSubscription? {
        guard let hook = try WebhookSubscription.parse(url: url, filter: filter, baseURL: baseURL(for: request)) else { return nil }
        let host = URL(string: hook.url)?.host ?? ""
        if case .failure(let refusal) = await HostResolver.checked(host: host, policy: config.outboundPolicy) {
            throw AtelierError.invalid("webhook", "unsafe_url", "webhook: \(refusal.reason)")
        }
        return hook
    }

    /// The longest a client may ask /run to hold its connection.
    static let maxWait = 600

    /// How long this request waits for its run: the `wait` parameter, else `Prefer: wait=N` (RFC 7240), else the
    /// server's window. 0 answers at once with the request_id. A longer ask than the server's --max-wait is cut to it.
    func waitWindow(_ request: Request, body: ParameterValue?) throws -> Duration {
        func parse(_ text: String, _ param: String) throws -> Duration {
            guard let n = NumberText.integer(text), (0...Self.maxWait).contains(n) else {
                throw AtelierError.invalid(param, "out_of_range", "\(param) must be whole seconds from 0 to \(Self.maxWait); got \"\(text)\"")
            }
            return min(.seconds(n), config.maxWait)
        }
        switch body {
        case .string(let s)? where !s.isEmpty: return try parse(s, "wait")
        case .number(let d)?: return try parse(d == d.rounded() ? String(Int(d)) : String(d), "wait")
        case nil, .null?, .string?: break
        case .bool?, .file?: throw AtelierError.invalid("wait", "invalid_type", "wait must be whole seconds from 0 to \(Self.maxWait)")
        }
        if let prefer = request.headers[HTTPField.Name("Prefer")!] {
            for token in prefer.split(separator: ",") {
                let kv = token.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if kv.count == 2, kv[0].lowercased() == "wait" { return try parse(kv[1], "Prefer: wait") }
            }
        }
        return config.waitWindow
    }

    static let idempotencyHeader = HTTPField.Name("Idempotency-Key")!
    static let replayedHeader = HTTPField.Name("Idempotent-Replayed")!

    // MARK: /api/v4/check

    /// A run's status, progress and outcome, by `request_id` (query, JSON, form or multipart). Another account's
    /// run is 404, exactly like a run that does not exist, so ids cannot be probed.
    func check(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        var raw = request.method == .post ? try await readParameters(request) : [:]
        // A key never travels in a URL (proxies and access logs keep URLs), so api_key is not read from the query.
        for (name, value) in request.uri.queryParameters where raw[String(name)] == nil && name != "api_key" {
            raw[String(name)] = .string(String(value))
        }
        let account = try await authenticate(request, body: raw)
        let id = try Self.requestID(raw["request_id"])
        let base = baseURL(for: request)
        if let cached = finishedRuns.body(for: id, accountID: account.accountID, baseURL: base, now: clock.now()) {
            return JSONResponse.make(status: .ok, encoded: cached)
        }
        let job = try await ownedJob(id, account: account)
        guard let body = JSONResponse.bytes(SuccessEnvelope(data: try await view(of: job, request: request))) else {
            throw AtelierError.internalError("run \(id) could not be encoded")
        }
        if job.status.isTerminal {
            finishedRuns.store(body, for: id, accountID: account.accountID, baseURL: base, validUntil: Self.linksValidUntil(job, config.outputRetention))
        }
        return JSONResponse.make(status: .ok, encoded: body)
    }

    /// Until when a finished run's answer stays as it is: for ever, except a succeeded run's whose images the
    /// retention sweeper will delete.
    static func linksValidUntil(_ job: Job, _ retention: Duration?) -> Date? {
        guard let retention, job.status == .succeeded, job.outputsExpiredAt == nil, let finished = job.finishedAt else { return nil }
        return finished.addingTimeInterval(Double(retention.components.seconds))
    }

    /// A run's full view: outcome, cost, progress while it runs, place in the queue while it waits.
    func view(of job: Job, request: Request) async throws -> RunView {
        try await runs.view(of: job, baseURL: baseURL(for: request))
    }

    static func requestID(_ value: ParameterValue?) throws -> Int64 {
        let id: Int64? =
            switch value {
            case .string(let s)?: Int64(s.trimmingCharacters(in: .whitespaces))
            case .number(let d)? where d == d.rounded() && abs(d) < 1e18: Int64(d)
            default: nil
            }
        guard let id else {
            throw AtelierError.invalid("request_id", "required", "request_id is required: the integer /api/v4/run returned")
        }
        return id
    }

    func ownedJob(_ id: Int64, account: KeyRecord) async throws -> Job {
        try await runs.ownedJob(id, account: account)
    }

    // MARK: /api/v4/cancel

    /// Cancels a run (see `RunService.cancel`): nothing is charged.
    func cancel(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let raw = try await readParameters(request)
        let account = try await authenticate(request, body: raw)
        let id = try Self.requestID(raw["request_id"])
        let job = try await runs.cancel(id, account: account, logger: context.logger)
        return JSONResponse.make(status: .ok, SuccessEnvelope(data: try await view(of: job, request: request)))
    }

    func readParameters(_ request: Request) async throws -> [String: ParameterValue] {
        try BodyParser.parse(try await readBody(request), contentType: request.headers[.contentType])
    }

    /// The whole body, refused with 413 past `maxBodyBytes` (before it is read when Content-Length says so).
    func readBody(_ request: Request) async throws -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > config.maxBodyBytes {
            throw AtelierError.bodyTooLarge(limit: config.maxBodyBytes)
        }
        do {
            return try await request.body.collect(upTo: config.maxBodyBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw AtelierError.bodyTooLarge(limit: config.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            // A body without Content-Length (chunked) that grew past the limit while it streamed.
            throw AtelierError.bodyTooLarge(limit: config.maxBodyBytes)
        }
    }

    func baseURL(for request: Request) -> String {
        if let configured = config.publicBaseURL { return configured }
        let host = request.head.authority ?? "127.0.0.1"
        return "http://\(host)"
    }

    /// An image file from disk, or a 404 saying `missing` if it is not there.
    static func imageFile(path: String, format: OutputFormat, cacheControl: String, missing: String,
                          context: AtelierRequestContext) async throws -> Response {
        let body: ResponseBody
        do {
            body = try await FileIO().loadFile(path: path, context: context)
        } catch {
            throw AtelierError.notFound(missing)
        }
        let headers: HTTPFields = [.contentType: format.contentType, .cacheControl: cacheControl,
                                   HTTPField.Name("X-Content-Type-Options")!: "nosniff"]
        return Response(status: .ok, headers: headers, body: body)
    }

}

extension AtelierAPI {
    /// The HTTP/1.1 server with the 100-continue handler in its pipeline.
    public static func server() -> HTTPServerBuilder {
        .http1(configuration: .init(additionalChannelHandlers: [ExpectContinueHandler()]))
    }
}
