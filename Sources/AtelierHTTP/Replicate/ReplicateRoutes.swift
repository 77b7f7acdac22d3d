import AtelierCore
import AtelierRuns
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Replicate's predictions API (`/v1/…`), translated onto the one `RunService`: the same accounts, keys, queue,
/// holds and charges as /api/v4/run. A catalog model is `OWNER/model_id` (`--replicate-owner`, default
/// `atelier`); its version is the hash of its catalog entry. Errors are RFC 7807 problem documents.
struct ReplicateRoutes: Sendable {
    let runs: RunService
    let edge: HTTPEdge
    /// `--replicate-owner`: the owner of every catalog model here.
    let owner: String
    var catalog: ModelCatalog { runs.catalog }
    var files: ReplicateFiles { ReplicateFiles(runs: runs, edge: edge) }

    /// Every error of this dialect as Replicate's clients read it: RFC 7807 (`type`, `title`, `status`,
    /// `detail`), with the same status, code and headers /api/v4 gives (one mapping, `ErrorMapping`).
    static func problems(_ context: AtelierRequestContext, _ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch {
            return problem(error, logger: context.logger)
        }
    }

    static func problem(_ error: any Error, logger: Logger) -> Response {
        let resolved = ErrorMapping.resolveWithoutParameterRules(error, logger: logger)
        var headers = resolved.headers
        headers[.contentType] = "application/problem+json"
        headers[.cacheControl] = "no-store"
        let problem = Problem(status: resolved.status, envelope: resolved.envelope)
        let bytes = JSONResponse.bytes(problem) ?? ByteBuffer(string: #"{"title":"error"}"#)
        return Response(status: resolved.status, headers: headers, body: .init(byteBuffer: bytes))
    }

    struct Problem: Encodable, Sendable {
        var type: String
        var title: String
        var status: Int
        var detail: String
        /// Atelier's error code and, for a refused input, every problem (RFC 7807's extension members).
        var code: String
        var invalidParams: [ParameterProblem]?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case type, title, status, detail, code
            case invalidParams = "invalid_params"
        }

        static var schema: JSONSchema {
            .component("Problem", JSONSchema.keyed(CodingKeys.self, required: [.type, .title, .status, .detail, .code]) { key in
                switch key {
                case .type, .title, .detail, .code: .string()
                case .status: .integer()
                case .invalidParams: .array(of: ParameterProblem.schema)
                }
            }.described("RFC 7807"))
        }
        init(status: HTTPResponse.Status, envelope: ErrorMapping.Envelope) {
            type = "https://atelier.invalid/problems/\(envelope.error.code)"
            title = status.reasonPhrase
            self.status = status.code
            detail = envelope.message
            code = envelope.error.code
            invalidParams = envelope.error.details
        }
    }

    /// `{owner}/{name}` of the path: the configured owner and a catalog model, else 404.
    func modelID(_ context: AtelierRequestContext) throws -> String {
        let path = (context.parameters.get("owner") ?? "", context.parameters.get("name") ?? "")
        guard path.0 == owner, catalog[path.1] != nil else {
            throw AtelierError.notFound("no model \(path.0)/\(path.1); the models here are \(catalog.ids.map { "\(owner)/\($0)" }.joined(separator: ", "))")
        }
        return path.1
    }

    /// `version` of POST /v1/predictions: `owner/name`, `owner/name:VERSION` or a bare VERSION of a catalog model.
    func modelID(version: String?) throws -> String {
        guard let version, !version.isEmpty else {
            throw AtelierError.invalid("version", "required", "version is required: a model version id, or \(owner)/MODEL; GET /v1/models/\(owner)/MODEL/versions lists them")
        }
        let parts = version.split(separator: ":", maxSplits: 1).map(String.init)
        if parts[0].contains("/") {
            let name = parts[0].split(separator: "/", maxSplits: 1).map(String.init)
            guard name.count == 2, name[0] == owner, let entry = catalog[name[1]],
                  parts.count == 1 || parts[1] == ReplicatePrediction.version(of: entry) else {
                throw AtelierError.invalid("version", "unknown_version", "no model version \(version); GET /v1/models/\(owner)/MODEL/versions lists them")
            }
            return entry.id
        }
        guard let id = catalog.ids.first(where: { ReplicatePrediction.version(of: catalog[$0]) == version }) else {
            throw AtelierError.invalid("version", "unknown_version", "no model version \(version); GET /v1/models/\(owner)/MODEL/versions lists them")
        }
        return id
    }

    /// `Prefer: wait` (up to 60 s) or `Prefer: wait=N` (1–60), as Replicate documents it; absent: answer at once.
    func preferredWait(_ request: Request) throws -> Int? {
        guard let prefer = request.headers[HTTPField.Name("Prefer")!] else { return nil }
        for token in prefer.split(separator: ",") {
            let kv = token.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv[0].lowercased() == "wait" else { continue }
            if kv.count == 1 { return 60 }
            guard let n = Int(kv[1]), (1...60).contains(n) else {
                throw AtelierError.invalid("Prefer", "out_of_range", "Prefer: wait=N takes whole seconds from 1 to 60; got \"\(kv[1])\"")
            }
            return n
        }
        return nil
    }

    func create(_ request: Request, context: AtelierRequestContext, model: String?) async throws -> Response {
        let account = try context.account()
        let body = try await DialectBody.object(request, edge: edge)
        let fields = Set(["input", "webhook", "webhook_completed", "webhook_events_filter", "stream"] + (model == nil ? ["version"] : []))
        if let unknown = body.keys.sorted().first(where: { !fields.contains($0) }) {
            throw AtelierError.invalid(unknown, "unknown_parameter",
                                       "\(unknown.prefix(40)) is not a field of a prediction; send \(fields.sorted().joined(separator: ", ")) (the model's parameters go in input)")
        }
        switch body["stream"] {
        case nil, .null?, .bool?: break
        default: throw AtelierError.invalid("stream", "invalid_type", "stream must be true or false")
        }
        let modelID = try model ?? modelID(version: try DialectBody.string(body["version"], name: "version"))
        guard case .object(let members)? = body["input"] else {
            throw AtelierError.invalid("input", "required", "input is required: an object of the model's inputs, e.g. {\"input\": {\"prompt\": \"…\"}}")
        }
        // The model is the route's (or the version's), and the key the Authorization header's.
        if let taken = members.first(where: { ["model_id", "api_key"].contains($0.key) }) {
            throw AtelierError.invalid(taken.key, "unknown_parameter", "\(taken.key) does not go in input: the model is in the URL (or version) and the key in the Authorization header")
        }
        var parameters = try DialectBody.parameters(members)
        // The aliases are /api/v4's (the hosted service's clients); a prediction names each input once.
        let aliases = catalog[modelID]?.parameters.flatMap { d in (d.aliases ?? []).map { ($0, d.name) } } ?? []
        if let (alias, name) = aliases.first(where: { parameters[$0.0] != nil }) {
            throw AtelierError.invalid(alias, "unknown_parameter", "\(alias) is not an input of this model; send \(name)")
        }
        // Replicate's FLUX models default to 1:1; an image gives the size itself.
        let blank: (ParameterValue?) -> Bool = { v in
            switch v { case nil, .null?: true; case .string(let s)?: s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty; default: false }
        }
        if blank(parameters["aspect_ratio"]) && blank(parameters["image"]) { parameters["aspect_ratio"] = .string("1:1") }
        // They read width and height only for a custom ratio, and ignore them otherwise.
        if case .string(let ratio)? = parameters["aspect_ratio"], ratio.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() != "custom" {
            parameters["width"] = nil
            parameters["height"] = nil
        }
        parameters["model_id"] = .string(modelID)
        try await files.resolveUploads(in: &parameters, request: request)
        let webhook = try await webhook(body, request: request)
        let waitSeconds = try preferredWait(request)
        // A second early, so a client whose read timeout is the window (the Python client's) hears the answer.
        let wait: Duration = waitSeconds.map { min(.milliseconds(max($0 * 1000 - 1000, $0 * 500)), runs.config.maxWait) } ?? .zero
        var submitted = try await runs.submit(
            .init(parameters: parameters, webhook: webhook, idempotencyKey: request.headers[RunController.idempotencyHeader], wait: wait),
            account: account, logger: context.logger)
        if submitted.replayed, !submitted.job.status.isTerminal { submitted.job = try await runs.awaitEnd(submitted.job.id, timeout: wait) }
        var prediction = try await prediction(submitted.job, request: request)
        prediction.cost = try await runs.cost(of: submitted.job, account: account)
        if let waitSeconds {
            // The official client polls only while the status is `starting`: a run still going when the window
            // closes must say so, or the client hands back a prediction without output.
            if !submitted.job.status.isTerminal { prediction.status = "starting" }
            // Sync mode's answer carries the images themselves (data URIs), as Replicate's does.
            if submitted.job.status == .succeeded, let inline = try await dataURIs(submitted.job) { prediction.output = inline }
        }
        var headers: HTTPFields = [.location: prediction.urls["get"] ?? ""]
        if let waitSeconds { headers[HTTPField.Name("Preference-Applied")!] = "wait=\(waitSeconds)" }
        if submitted.replayed { headers[RunController.replayedHeader] = "true" }
        return JSONResponse.make(status: .created, prediction, headers: headers)
    }

    /// The images as data URIs, when together they are small enough to inline (8 MB); nil otherwise.
    func dataURIs(_ job: Job) async throws -> [String]? {
        try await runs.outputBytes(of: job, limit: 8_000_000)?.map {
            "data:\(job.request.outputFormat.contentType);base64,\(Data($0).base64EncodedString())"
        }
    }

    /// `webhook` and `webhook_events_filter` (Replicate's words: start, output, logs, completed). Outputs and
    /// logs exist only once a run ends here, so `output` is sent with `completed`, and `logs` at start and end.
    func webhook(_ body: [String: JSONBody.Value], request: Request) async throws -> WebhookSubscription? {
        // Both are read (and so checked) even when webhook wins: a bad webhook_completed is refused, not ignored.
        let primary = try DialectBody.string(body["webhook"], name: "webhook")
        let completed = try DialectBody.string(body["webhook_completed"], name: "webhook_completed")
        let url = primary ?? completed
        var events: Set<String> = []
        if let names = try DialectBody.strings(body["webhook_events_filter"], name: "webhook_events_filter") {
            for name in names {
                switch name {
                case "start": events.insert("start")
                case "output", "completed": events.insert("completed")
                case "logs": events.formUnion(["start", "completed"])
                default:
                    throw AtelierError.invalid("webhook_events_filter", "invalid_choice",
                                               "webhook_events_filter takes start, output, logs and completed; got \"\(name.prefix(40))\"")
                }
            }
        } else if body["webhook"] == nil || body["webhook"] == .null, url != nil {
            events = ["completed"]  // webhook_completed alone
        }
        // Without a webhook the filter has nothing to filter: ignored, as Replicate does.
        if url?.trimmingCharacters(in: .whitespaces).isEmpty ?? true { events = [] }
        let filter: ParameterValue? = events.isEmpty ? nil : .string(events.sorted().joined(separator: ","))
        guard var hook = try await runs.webhook(url: url.map(ParameterValue.string), filter: filter, baseURL: edge.baseURL(for: request)) else { return nil }
        hook.format = .replicate
        return hook
    }

    func prediction(_ job: Job, request: Request) async throws -> ReplicatePrediction {
        let progress = await runs.progress(of: job)
        let download = job.status == .running && progress == nil ? await runs.loraDownload(of: job) : nil
        return ReplicatePrediction(job: job, owner: owner, catalog: catalog, baseURL: edge.baseURL(for: request), links: edge.links,
                                   progress: progress, loraDownload: download)
    }

    func predictionID(_ context: AtelierRequestContext) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Int64(text) else {
            throw AtelierError.notFound("no prediction \(context.parameters.get("id") ?? "") for this API token's account")
        }
        return id
    }

    func get(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let account = try context.account()
        let job = try await runs.ownedJob(try predictionID(context), account: account)
        return JSONResponse.make(status: .ok, try await prediction(job, request: request))
    }

    func cancel(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let account = try context.account()
        let job = try await runs.cancel(try predictionID(context), account: account, logger: context.logger)
        return JSONResponse.make(status: .ok, try await prediction(job, request: request))
    }

    struct Page<Item: Encodable & Sendable>: Encodable, Sendable {
        var previous: String?
        var next: String?
        var results: [Item]
        enum CodingKeys: String, CodingKey, CaseIterable { case previous, next, results }

        /// A page of `items`, named `name` in the document.
        static func schema(_ name: String, items: JSONSchema) -> JSONSchema {
            .component(name, .keyed(CodingKeys.self, required: [.results]) { key in
                switch key {
                case .previous, .next: JSONSchema(type: .string, .null)
                case .results: .array(of: items)
                }
            })
        }
    }

    /// The account's predictions, newest first, 100 a page; `next` is the following page's URL.
    func list(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let account = try context.account()
        var before: Int64?
        if let text = request.uri.queryParameters["cursor"] {
            guard let c = Int64(text), c > 0 else {
                throw AtelierError.invalid("cursor", "invalid_cursor", "cursor must come from a previous page's next URL; got \"\(text)\"")
            }
            before = c
        }
        let (page, more) = try await runs.list(account: account, before: before, limit: 100)
        var results: [ReplicatePrediction] = []
        for job in page { results.append(try await prediction(job, request: request)) }
        let next = more ? page.last.map { "\(edge.baseURL(for: request))/v1/predictions?cursor=\($0.id)" } : nil
        return JSONResponse.make(status: .ok, Page(previous: nil, next: next, results: results))
    }

    func secret(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let account = try context.account()
        return JSONResponse.make(status: .ok, WebhookSecret(key: try await runs.webhookSecret(account: account)))
    }
}

/// The account's webhook signing secret, as Replicate's clients read it.
struct WebhookSecret: Encodable, Sendable {
    var key: String
    enum CodingKeys: String, CodingKey, CaseIterable { case key }
    static var schema: JSONSchema { .keyed(CodingKeys.self, required: [.key]) { _ in .string(pattern: "^whsec_") } }
}
