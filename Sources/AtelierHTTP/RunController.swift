import AtelierCore
import AtelierRuns
import Foundation
import HTTPTypes
import Hummingbird

/// `/api/v4/run`, `/check`, `/cancel` and a run's event stream: the hosted service's contract, translated onto
/// the one `RunService`. The key was checked (and the body read, for its `api_key` field) by
/// `AuthenticationMiddleware`.
struct RunController: Sendable {
    let runs: RunService
    let edge: HTTPEdge
    /// How long /run holds the connection before answering with the request_id and status only (`--wait`).
    let waitWindow: Duration
    /// `--output-retention`: a succeeded run's images are deleted this long after it finished; nil: kept.
    let outputRetention: Duration?
    /// Encoded /check answers of finished runs.
    let finishedRuns = FinishedRunCache()

    // MARK: /api/v4/run, /check, /cancel

    static let idempotencyParameter = OpenAPI.Parameter.header(
        "Idempotency-Key", .string(pattern: "^[!-~]+$", minLength: 1, maxLength: 255),
        description: "Same key and same request: the first run's answer, never a second run or charge (kept 48 h, per API key).")

    static func endpoints(_ schemas: CatalogSchemas) -> [Endpoint<RunController>] {
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
                ]))), credentials: .bearerOrBodyField) { api in { try await api.run($0, context: $1) } },
            Endpoint(.get("/api/v4/check", .init(
                "checkGet", "A run's status and outcome",
                parameters: [.query("request_id", .string(pattern: "^[0-9]{1,18}$"), required: true)],
                responses: ["200": ok] + ErrorMapping.documented([400, 401, 404, 429, 503], noRun))), credentials: .bearerOrBodyField) { api in
                { try await api.check($0, context: $1) }
            },
            Endpoint(.post("/api/v4/check", .init(
                "checkPost", "A run's status and outcome", body: .forms(json: checkInput, form: checkInput),
                responses: ["200": ok] + ErrorMapping.documented(common + [404], noRun))), credentials: .bearerOrBodyField) { api in
                { try await api.check($0, context: $1) }
            },
            Endpoint(.post("/api/v4/cancel", .init(
                "cancel", "Cancel a run: a queued run never starts, a running one stops at its next step; nothing is charged",
                body: .forms(json: checkInput, form: checkInput),
                responses: ["200": ok] + ErrorMapping.documented(common + [404, 409], noRun.merging(cancelTexts) { $1 }))), credentials: .bearerOrBodyField) { api in
                { try await api.cancel($0, context: $1) }
            },
        ]
    }

    func run(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        var raw = context.fields ?? [:]
        let account = try context.account()
        guard !runs.isDraining else { throw AtelierError.shuttingDown }
        let wait = try waitWindow(request, body: raw.removeValue(forKey: "wait"))
        let webhook = try await runs.webhook(url: raw.removeValue(forKey: "webhook"),
                                             filter: raw.removeValue(forKey: "webhook_events_filter"), baseURL: edge.baseURL(for: request))
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
        var view = RunView(job: job, baseURL: edge.baseURL(for: request), links: edge.links, currency: cost.currency)
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


    /// The longest a client may ask /run to hold its connection.
    static let maxWait = 600

    /// How long this request waits for its run: the `wait` parameter, else `Prefer: wait=N` (RFC 7240), else the
    /// server's window. 0 answers at once with the request_id. A longer ask than the server's --max-wait is cut to it.
    func waitWindow(_ request: Request, body: ParameterValue?) throws -> Duration {
        func parse(_ text: String, _ param: String) throws -> Duration {
            guard let n = NumberText.integer(text), (0...Self.maxWait).contains(n) else {
                throw AtelierError.invalid(param, "out_of_range", "\(param) must be whole seconds from 0 to \(Self.maxWait); got \"\(text)\"")
            }
            return min(.seconds(n), runs.config.maxWait)
        }
        switch body {
        case .string(let s)? where !s.isEmpty: return try parse(s, "wait")
        // As it reads (1e19 is not whole seconds in range; converting it to Int would trap).
        case .number(let d)?: return try parse(ParameterValue.number(d).display, "wait")
        case nil, .null?, .string?: break
        case .bool?, .file?: throw AtelierError.invalid("wait", "invalid_type", "wait must be whole seconds from 0 to \(Self.maxWait)")
        }
        if let prefer = request.headers[HTTPField.Name("Prefer")!] {
            for token in prefer.split(separator: ",") {
                let kv = token.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if kv.count == 2, kv[0].lowercased() == "wait" { return try parse(kv[1], "Prefer: wait") }
            }
        }
        return waitWindow
    }

    static let idempotencyHeader = HTTPField.Name("Idempotency-Key")!
    static let replayedHeader = HTTPField.Name("Idempotent-Replayed")!

    // MARK: /api/v4/check

    /// A run's status, progress and outcome, by `request_id` (query, JSON, form or multipart). Another account's
    /// run is 404, exactly like a run that does not exist, so ids cannot be probed.
    func check(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        var raw = context.fields ?? [:]
        // A key never travels in a URL (proxies and access logs keep URLs), so api_key is not read from the query.
        for (name, value) in request.uri.queryParameters where raw[String(name)] == nil && name != "api_key" {
            raw[String(name)] = .string(String(value))
        }
        let account = try context.account()
        let id = try Self.requestID(raw["request_id"])
        let base = edge.baseURL(for: request)
        if let cached = finishedRuns.body(for: id, accountID: account.accountID, baseURL: base, now: runs.clock.now()) {
            return JSONResponse.make(status: .ok, encoded: cached)
        }
        let job = try await runs.ownedJob(id, account: account)
        guard let body = JSONResponse.bytes(SuccessEnvelope(data: try await view(of: job, request: request))) else {
            throw AtelierError.internalError("run \(id) could not be encoded")
        }
        if job.status.isTerminal {
            finishedRuns.store(body, for: id, accountID: account.accountID, baseURL: base, validUntil: Self.linksValidUntil(job, outputRetention))
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
        RunView(try await runs.snapshot(of: job), baseURL: edge.baseURL(for: request), links: edge.links)
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

    // MARK: /api/v4/cancel

    /// Cancels a run (see `RunService.cancel`): nothing is charged.
    func cancel(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let id = try Self.requestID(context.fields?["request_id"])
        let job = try await runs.cancel(id, account: try context.account(), logger: context.logger)
        return JSONResponse.make(status: .ok, SuccessEnvelope(data: try await view(of: job, request: request)))
    }
}
