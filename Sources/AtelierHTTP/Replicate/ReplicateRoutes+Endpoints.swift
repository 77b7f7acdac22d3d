import AtelierCore
import AtelierRuns
import Hummingbird

/// Replicate's routes, declared once: registered on the router and described in /openapi.json from these values.
/// Every handler answers errors as RFC 7807 problems (`ReplicateRoutes.problems`).
extension ReplicateRoutes {
    /// What each error status means on Replicate's routes.
    static let statusTexts: [Int: String] = [
        400: "A parameter or the body is invalid; nothing was queued.",
        401: "Missing, unknown or revoked API key.",
        402: "The account's available credit does not cover price × images; nothing was queued.",
        404: "No such model, prediction or file for this key's account.",
        409: "The prediction already finished (cancel), or it was canceled.",
        413: "The body is larger than the limit.",
        415: "A Content-Type this route does not take.",
        422: "A well-formed value whose content cannot be used (an image that does not decode, an internal webhook host), or an Idempotency-Key first used with another request; or every image was flagged.",
        429: "Too many requests for this key, or too many runs in progress; see Retry-After.",
        503: "The database or image store is unreachable, the server is shutting down, or the run was lost to worker crashes; see Retry-After.",
    ]

    static func documented(_ statuses: [Int]) -> [String: OpenAPI.Response] {
        OpenAPI.errors(statuses, body: Problem.schema, contentType: "application/problem+json", texts: statusTexts)
    }

    /// A Replicate route: its operation (tagged Replicate) and a handler whose errors leave as problems.
    static func endpoint<C: Sendable>(_ method: (String, OpenAPI.Operation) -> APIRoute, _ path: String, _ operation: OpenAPI.Operation,
                                      _ handler: @escaping @Sendable (C, Request, AtelierRequestContext) async throws -> Response) -> Endpoint<C> {
        var tagged = operation
        tagged.tags = ["Replicate"]
        return Endpoint(method(path, tagged), credentials: .bearerOrToken, dialect: .replicate) { controller in
            { request, context in await problems(context) { try await handler(controller, request, context) } }
        }
    }

    static let predictionID = OpenAPI.Parameter.path("id", .string(pattern: "^[0-9]{1,18}$"))

    static let preferText = "`Prefer: wait` (60 s) or `Prefer: wait=N` (1-60) holds the answer until the prediction ends; a prediction still going then answers status starting, which the official clients keep polling."

    static func createBody(_ schemas: CatalogSchemas, version: Bool) -> OpenAPI.RequestBody {
        let url = JSONSchema.oneOf([.null, .string(pattern: RunInputSchema.webhookURL, maxLength: 2048)])
        var properties: [String: JSONSchema] = [
            "input": schemas.replicateInput,
            "webhook": url.described("http(s) URL POSTed the prediction as it starts and ends, signed per Standard Webhooks."),
            "webhook_completed": url.described("A URL for the completed event only (used when webhook is absent)."),
            "webhook_events_filter": JSONSchema.nullable(.array(of: .strings(["start", "output", "logs", "completed"])))
                .described("Which events to send (with a webhook; without one it has nothing to filter); output and logs exist only when a run ends here, so they come with completed."),
            "stream": JSONSchema(type: .boolean, .null).described("Accepted; every prediction has urls.stream."),
        ]
        if version { properties["version"] = schemas.modelVersion }
        return .json(.object(properties, required: version ? ["input", "version"] : ["input"], closed: true))
    }

    static func endpoints(_ schemas: CatalogSchemas) -> [Endpoint<ReplicateRoutes>] {
        let ownerName: [OpenAPI.Parameter] = [.path("owner", schemas.modelOwner), .path("name", schemas.modelName)]
        var created = OpenAPI.Response.json("The prediction (201, Location: its URL).", ReplicatePrediction.schema)
        created.headers = ["Location": .init(schema: .string(), description: "The prediction's URL.")]
        let creates = ["201": created] + documented([400, 401, 402, 404, 413, 415, 422, 429, 503])
        let prediction = ["200": OpenAPI.Response.json("The prediction.", ReplicatePrediction.schema)]
        let version = ReplicateRoutes.VersionObject.schema
        let streamEvent = JSONSchema.object([
            "id": .string(),
            "event": .strings(StreamEvent.allCases.map(\.rawValue)),
            "data": JSONSchema.string().described("output: an image URL; logs: a line of text; error: a JSON object {\"detail\": \"why it failed (code)\"}; done: a JSON object, {\"reason\": \"error\"} or {\"reason\": \"canceled\"} when it did not succeed."),
        ], required: ["event", "data"])
        return [
            endpoint(APIRoute.post, "/v1/models/{owner}/{name}/predictions", .init(
                "replicateCreateModelPrediction", "Create a prediction of a model (Replicate)", description: preferText,
                parameters: ownerName + [RunController.idempotencyParameter], body: createBody(schemas, version: false), responses: creates)) {
                try await $0.create($1, context: $2, model: try $0.modelID($2))
            },
            endpoint(APIRoute.post, "/v1/predictions", .init(
                "replicateCreatePrediction", "Create a prediction of a model version (Replicate)", description: preferText,
                parameters: [RunController.idempotencyParameter], body: createBody(schemas, version: true), responses: creates)) {
                try await $0.create($1, context: $2, model: nil)
            },
            endpoint(APIRoute.get, "/v1/predictions", .init(
                "replicateListPredictions", "The account's predictions, newest first, 100 a page",
                parameters: [.query("cursor", .string(pattern: "^\\+?0*[1-9][0-9]{0,17}$"))],
                responses: ["200": .json("One page; next is the following page's URL.", Page<ReplicatePrediction>.schema("PredictionPage", items: ReplicatePrediction.schema))]
                    + documented([400, 401, 429, 503]))) { try await $0.list($1, context: $2) },
            endpoint(APIRoute.get, "/v1/predictions/{id}", .init(
                "replicateGetPrediction", "A prediction (Replicate)", parameters: [predictionID],
                responses: prediction + documented([401, 404, 429, 503]))) { try await $0.get($1, context: $2) },
            endpoint(APIRoute.post, "/v1/predictions/{id}/cancel", .init(
                "replicateCancelPrediction", "Cancel a prediction: nothing is charged", parameters: [predictionID],
                responses: ["200": .json("The canceled prediction.", ReplicatePrediction.schema)] + documented([401, 404, 409, 429, 503]))) {
                try await $0.cancel($1, context: $2)
            },
            endpoint(APIRoute.get, "/v1/predictions/{id}/stream", .init(
                "replicateStream", "A prediction as Server-Sent Events: logs, output, error, done", parameters: [predictionID],
                responses: ["200": .init(description: "text/event-stream with the event names Replicate's clients accept.",
                                         content: ["text/event-stream": .init(streamEvent)])]
                    + documented([401, 404, 429, 503]))) { try await $0.stream($1, context: $2) },
            endpoint(APIRoute.get, "/v1/models/{owner}/{name}", .init(
                "replicateGetModel", "A catalog model as Replicate's clients read it", parameters: ownerName,
                responses: ["200": .json("The model and its one version.", ModelObject.schema)] + documented([401, 404, 429]))) {
                try await $0.model($1, context: $2)
            },
            endpoint(APIRoute.get, "/v1/models/{owner}/{name}/versions", .init(
                "replicateListVersions", "The model's versions (one: its catalog entry)", parameters: ownerName,
                responses: ["200": .json("One page.", Page<VersionObject>.schema("VersionPage", items: version))] + documented([401, 404, 429]))) {
                try await $0.versions($1, context: $2)
            },
            endpoint(APIRoute.get, "/v1/models/{owner}/{name}/versions/{version}", .init(
                "replicateGetVersion", "A version: its inputs' schema", parameters: ownerName + [.path("version", .string())],
                responses: ["200": .json("The version.", version)] + documented([401, 404, 429]))) { try await $0.version($1, context: $2) },
            endpoint(APIRoute.get, "/v1/webhooks/default/secret", .init(
                "replicateWebhookSecret", "The account's webhook signing secret (whsec_…)",
                responses: ["200": .json("The secret.", WebhookSecret.schema)] + documented([401, 429, 503]))) { try await $0.secret($1, context: $2) },
        ]
    }
}

extension ReplicateFiles {
    static func endpoints(_ schemas: CatalogSchemas) -> [Endpoint<ReplicateFiles>] {
        let id = OpenAPI.Parameter.path("id", .string())
        let file = ["200": OpenAPI.Response.json("The file.", FileObject.schema)]
        let upload = JSONSchema.object([
            "content": .string(format: "binary"),
            // JSON Schema's own words for "a string that holds a JSON object": no pattern can say it.
            // An empty list is also valid: a multipart body writes it as no part at all, which is leaving metadata out.
            "metadata": JSONSchema.oneOf([
                JSONSchema.string(pattern: "^[ \\t\\n]*\\{\(SchemaPatterns.textChar)*\\}[ \\t\\n]*$").with {
                    $0.contentMediaType = "application/json"
                    $0.contentSchema = .anyObject
                },
                JSONSchema.array(of: .string()).with { $0.maxItems = 0 },
            ]).described("A JSON object as text, as the official client sends it (422 invalid_metadata if it is not one)."),
        ], required: ["content"], closed: true)
        return [
            ReplicateRoutes.endpoint(APIRoute.post, "/v1/files", .init(
                "replicateCreateFile", "Upload an input image; pass its urls.get as an input", body: .multipart(upload),
                responses: ["201": .json("The file.", FileObject.schema)] + ReplicateRoutes.documented([400, 401, 413, 415, 422, 429, 503]))) {
                f, request, _ in try await f.create(request)
            },
            ReplicateRoutes.endpoint(APIRoute.get, "/v1/files/{id}", .init(
                "replicateGetFile", "An uploaded file", parameters: [id], responses: file + ReplicateRoutes.documented([401, 404, 429, 503]))) {
                try await $0.get($1, context: $2)
            },
            ReplicateRoutes.endpoint(APIRoute.delete, "/v1/files/{id}", .init(
                "replicateDeleteFile", "Delete an uploaded file", parameters: [id],
                responses: ["204": .described("Deleted.")] + ReplicateRoutes.documented([401, 404, 429, 503]))) {
                try await $0.delete($1, context: $2)
            },
        ]
    }
}
