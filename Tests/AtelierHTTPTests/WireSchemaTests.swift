import AtelierCore
@testable import AtelierHTTP
import AtelierRuns
import AtelierTesting
import Foundation
import Logging
import Testing

/// Real instances of every response type, encoded as the server encodes them and validated against the schema
/// the document gives the route that sends them: every run status and path, every error, every dialect. A field
/// the code sends and the document leaves out, or a value outside the document's enum, fails here.
@Suite struct WireSchemaTests {
    let entry: ModelEntry
    let catalog: ModelCatalog
    let routes: [APIRoute]
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    init() throws {
        entry = try RepositoryCatalog.entry()
        catalog = ModelCatalog([entry])
        routes = OpenAPIBuilder.routes(CatalogSchemas(catalog: catalog, dialects: .init()))
    }

    /// The schema the document gives an operation's answer with this status.
    func schema(_ operationID: String, _ status: String) throws -> JSONSchema {
        let operation = try #require(routes.first { $0.operation.operationId == operationID }?.operation, "no operation \(operationID)")
        let response = try #require(operation.responses[status], "\(operationID) documents no \(status)")
        return try #require(response.content?.values.first?.schema, "\(operationID) \(status) has no schema")
    }

    func expectValid(_ value: some Encodable, _ operationID: String, _ status: String = "200", sourceLocation: SourceLocation = #_sourceLocation) throws {
        let json = try WireJSON.decode(JSONResponse.encoder.encode(value))
        let failures = SchemaValidator.check(json, against: try schema(operationID, status))
        #expect(failures.isEmpty, "\(operationID) \(status): \(failures)", sourceLocation: sourceLocation)
    }

    func request(outputs: Int = 1) -> RunRequest {
        RunRequest(modelID: entry.id, prompt: "a cat", aspectRatio: "1:1", megapixels: "1", size: ImageSize(width: 1024, height: 1024),
                   numOutputs: outputs, numInferenceSteps: 28, guidance: 3, seed: 42, outputFormat: .webp, outputQuality: 80,
                   loraScale: 1, goFast: true, promptStrength: 0.8, disableSafetyChecker: false)
    }

    /// A run in every state it can be read in, succeeded ones on every path the worker reports.
    func jobs() -> [Job] {
        var out: [Job] = []
        func job(_ status: JobStatus, outputs: Int = 1) -> Job {
            Job(id: Job.idRange.lowerBound + Int64(out.count), accountID: 1, request: request(outputs: outputs),
                outputNames: (0..<outputs).map { "\(String(repeating: "a", count: 31))\($0).webp" }, pricePerImage: 3,
                status: status, attempts: status == .queued ? 0 : 1, createdAt: now,
                startedAt: status == .queued ? nil : now.addingTimeInterval(1),
                finishedAt: status.isTerminal ? now.addingTimeInterval(5) : nil)
        }
        out.append(job(.queued))
        var running = job(.running)
        running.progress = JobProgress(step: 3, total: 28)
        out.append(running)
        for path in ExecutionPath.allCases {
            for count in [1, 2] {
                var done = job(.succeeded, outputs: count)
                done.result = JobResult(outputs: done.outputNames.enumerated().map { JobOutput(name: $1, seed: 42 + UInt64($0), width: 1024, height: 1024, bytes: 10) },
                                        path: path.rawValue, pathReason: "why", inferenceMs: 1200.5, encodeMs: 30,
                                        safety: SafetyOutcome(checker: count == 1 ? nil : "checker", ran: count > 1, dropped: 0), batchSize: count)
                out.append(done)
            }
        }
        var expired = out.last!
        expired.outputsExpiredAt = now.addingTimeInterval(86_400)
        out.append(expired)
        var failed = job(.failed)
        failed.failure = JobFailure(code: .workerCrashed, message: "the worker died")
        out.append(failed)
        out.append(job(.canceled))
        return out
    }

    @Test func runViewsInEveryStatusAndPath() throws {
        for job in jobs() {
            var view = RunView(job: job, baseURL: "http://h", currency: "USD",
                               progress: job.progress.map { .init(step: $0.step, total: $0.total) }, queuePosition: job.status == .queued ? 0 : nil)
            view.cost.availableBalance = 100
            try expectValid(SuccessEnvelope(data: view), "checkGet")
            try expectValid(SuccessEnvelope(data: view), "cancel")
        }
        // /run's answer while the run is pending: its id, status and cost only.
        try expectValid(SuccessEnvelope(data: RunController.RunStatus(requestID: 1, status: "running", cost: RunCost(job: jobs()[1], currency: "USD"))), "run")
    }

    /// Every error, as each dialect writes it, including a failed run's answer that carries the run.
    @Test func errorsInEveryDialect() throws {
        let failed = jobs().first { $0.status == .failed }!
        let errors: [AtelierError] = [
            .unauthorized("no key"), .insufficientCredit(needed: 6, available: 1, pricePerImage: 3, currency: "USD", account: "a"),
            .invalidParameters([ParameterProblem(param: "seed", code: "out_of_range", message: "too big")]), .malformedBody("bad"),
            .bodyTooLarge(limit: 10), .unsupportedMediaType("xml"), .idempotencyMismatch("other"), .idempotencyInProgress(requestID: 1),
            .modelNotFound("x"), .notFound("none"), .unavailable("no worker"), .databaseUnavailable, .storageUnavailable, .shuttingDown,
            .conflict(code: "canceled", message: "it was"),
            .stillRunning(requestID: 1, seconds: 60), .internalError("boom"),
            .rateLimited(message: "slow down", retryAfter: 1, limit: 60, remaining: 0, reset: 1),
        ] + RunFailureCode.allCases.map { .runFailed(code: $0, message: "it failed") }
        let logger = Logger(label: "test")
        for error in errors {
            let status = String(ErrorMapping.status(for: error).code)
            // Validated against a route of each dialect that documents the status (504 is OpenAI's alone).
            func documenting(_ ids: [String]) -> String? { ids.first { id in routes.contains { $0.operation.operationId == id && $0.operation.responses[status] != nil } } }
            let run = RunView(job: failed, baseURL: "http://h")
            if let id = documenting(["run", "checkGet"]) { try expectValid(ErrorMapping.envelope(for: error, run: run), id, status) }
            let resolved = ErrorMapping.resolve(error, logger: logger)
            if let id = documenting(["replicateCreatePrediction", "replicateCancelPrediction"]) {
                try expectValid(ReplicateRoutes.Problem(status: resolved.status, envelope: resolved.envelope), id, status)
            }
            let body = OpenAIErrors.Body(error: .init(message: resolved.envelope.message, type: OpenAIErrors.type(resolved.status), param: nil,
                                                      code: resolved.envelope.error.code, details: resolved.envelope.error.details))
            #expect(documenting(["openaiGenerate"]) != nil, "OpenAI's routes document \(status)")
            try expectValid(body, "openaiGenerate", status)
        }
    }

    @Test func predictionsInEveryStatus() throws {
        var predictions: [ReplicatePrediction] = []
        for job in jobs() {
            var prediction = ReplicatePrediction(job: job, owner: "atelier", catalog: catalog, baseURL: "http://h", links: nil,
                                                 progress: job.progress)
            prediction.cost.availableBalance = 5
            try expectValid(prediction, "replicateGetPrediction")
            try expectValid(prediction, "replicateCreatePrediction", "201")
            predictions.append(prediction)
        }
        try expectValid(ReplicateRoutes.Page(previous: nil, next: "http://h/v1/predictions?cursor=1", results: predictions), "replicateListPredictions")
    }

    @Test func modelsAccountsFilesAndImages() throws {
        let price = AccountController.ModelView.Price(currency: "USD", minorUnits: 3, display: "$0.03")
        let version = ReplicateRoutes.VersionObject(id: "v", createdAt: now, openapiSchema: .init(
            info: .init(title: entry.title), components: .init(schemas: ["Input": CatalogSchema.input(of: entry), "Output": CatalogSchema.output])))
        let model = ReplicateRoutes.ModelObject(url: "http://h/v1/models/atelier/x", owner: "atelier", name: entry.id, description: "d",
                                                licenseURL: nil, latestVersion: version, pricePerImage: price)
        try expectValid(SuccessEnvelope(data: [AccountController.ModelView(entry)]), "models")
        try expectValid(SuccessEnvelope(data: AccountController.ModelView(entry)), "model")
        try expectValid(model, "replicateGetModel")
        try expectValid(version, "replicateGetVersion")
        try expectValid(ReplicateRoutes.Page(previous: nil, next: nil, results: [version]), "replicateListVersions")
        try expectValid(OpenAIRoutes.ModelList(data: [.init(id: entry.id, ownedBy: "atelier", pricePerImage: 3, currency: "USD")], results: [model]),
                        "openaiModels")
        let account = AccountController.AccountView(
            account: "a", currency: "USD", balance: 10, held: 3, available: 7, display: ["balance": "$0.10"],
            spend: .init(from: now, to: now, byModel: [ModelSpend(modelID: entry.id, runs: 1, images: 1, amount: 3)]),
            keys: [.init(prefix: "atl_abc", createdAt: now, revokedAt: now)])
        try expectValid(SuccessEnvelope(data: account), "account")
        try expectValid(SuccessEnvelope(data: AccountController.UsagePage(items: [.init(requestID: 1, modelID: entry.id, images: 1, amount: 3, chargedAt: now)],
                                                                   currency: "USD", nextCursor: "5")), "usage")
        try expectValid(ServerController.Health(status: "ok", workers: []), "health")
        try expectValid(ServerController.Readiness(ready: false, workers: false, database: true, storage: false, draining: true), "ready", "503")
        let file = ReplicateFiles.FileObject(id: "f.png", name: "f.png", contentType: "image/png", size: 4, etag: "e", checksums: ["sha256": "e"],
                                             createdAt: now, urls: ["get": "http://h/v1/files/f.png"])
        try expectValid(file, "replicateCreateFile", "201")
        try expectValid(file, "replicateGetFile")
        try expectValid(WebhookSecret(key: "whsec_abc"), "replicateWebhookSecret")
        let succeeded = jobs().first { $0.status == .succeeded }!
        let images = OpenAIRoutes.ImagesResponse(job: succeeded, images: [.init(url: "http://h/x.webp", revisedPrompt: "a cat"),
                                                                          .init(b64JSON: "AAAA", revisedPrompt: "a cat")],
                                                 cost: RunCost(job: succeeded, currency: "USD"))
        try expectValid(images, "openaiGenerate")
        try expectValid(images, "openaiEdit")
    }

    /// The validator is not lenient: a field the schema does not declare, a wrong enum value and a missing
    /// required field each fail.
    @Test func theValidatorRefusesWhatTheDocumentDoesNotSay() throws {
        let schema = try schema("checkGet", "200")
        let good = try WireJSON.decode(Data(#"{"success": true, "data": {"request_id": 1, "status": "queued"}}"#.utf8))
        #expect(SchemaValidator.check(good, against: schema).isEmpty)
        for bad in [#"{"success": true, "data": {"request_id": 1, "status": "queued", "surprise": 1}}"#,
                    #"{"success": true, "data": {"request_id": 1, "status": "sleeping"}}"#,
                    #"{"success": true, "data": {"request_id": 1, "status": "succeeded", "path": "warp"}}"#,
                    #"{"success": true, "data": {"status": "queued"}}"#] {
            #expect(!SchemaValidator.check(try WireJSON.decode(Data(bad.utf8)), against: schema).isEmpty, "\(bad)")
        }
    }
}
