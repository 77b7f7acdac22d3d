import AtelierCore
import Foundation
import HTTPTypes
import AtelierRuns
import Hummingbird
import NIOCore

/// OpenAI's Images API (`/v1/images/generations`, `/v1/images/edits`, `/v1/models`), translated onto the one
/// `RunService`: the same accounts, keys, queue, holds and charges as /api/v4/run. Its answers are synchronous,
/// as OpenAI's are: the request is held until the images exist (up to `--max-wait`).
struct OpenAIRoutes: Sendable {
    let runs: RunService
    let edge: HTTPEdge
    /// The owner Replicate's clients see on the shared `GET /v1/models`.
    let replicateOwner: String
    var catalog: ModelCatalog { runs.catalog }

    static func endpoints(_ schemas: CatalogSchemas) -> [Endpoint<OpenAIRoutes>] {
        let images = ["200": OpenAPI.Response.json("The images, once made.", ImagesResponse.schema)]
            + OpenAIErrors.documented([400, 401, 402, 404, 409, 413, 415, 422, 429, 500, 503, 504])
        func endpoint(_ route: APIRoute, tags: [String] = ["OpenAI"], credentials: Credentials = .bearer,
                      _ handler: @escaping @Sendable (OpenAIRoutes, Request, AtelierRequestContext, inout OpenAIErrors.RetrySafety) async throws -> Response)
            -> Endpoint<OpenAIRoutes> {
            var tagged = route
            tagged.operation.tags = tags
            return Endpoint(tagged, credentials: credentials, dialect: .openAI) { routes in
                { request, context in await routes.errors(context) { safety in try await handler(routes, request, context, &safety) } }
            }
        }
        return [
            endpoint(.post("/v1/images/generations", .init(
                "openaiGenerate", "Generate images (OpenAI Images API)", parameters: [RunController.idempotencyParameter],
                body: .json(schemas.imageGeneration), responses: images))) {
                try await $0.images($1, context: $2, edit: false, safety: &$3)
            },
            endpoint(.post("/v1/images/edits", .init(
                "openaiEdit", "Edit an image: image-to-image, or inpainting with a mask (transparent = repaint)",
                parameters: [RunController.idempotencyParameter], body: .multipart(schemas.imageEdit), responses: images))) {
                try await $0.images($1, context: $2, edit: true, safety: &$3)
            },
            endpoint(.get("/v1/models", .init(
                "openaiModels", "The catalog as OpenAI lists models (data) and as Replicate does (results)",
                responses: ["200": .json("Every model.", ModelList.schema)] + OpenAIErrors.documented([401, 429]))),
                tags: ["OpenAI", "Replicate"], credentials: .bearerOrToken) { routes, request, _, _ in try await routes.models(request) },
        ]
    }

    /// The longest an answer is held: the server's --max-wait, kept under openai-python's 600 s read timeout
    /// (a client that times out retries the POST, which would be a second run).
    var wait: Duration { min(runs.config.maxWait, .seconds(590)) }

    func images(_ request: Request, context: AtelierRequestContext, edit: Bool, safety: inout OpenAIErrors.RetrySafety) async throws -> Response {
        let account = try context.account()
        var fields = try await edge.readParameters(request)
        if edit {
            try Self.takeImages(&fields)
        } else if fields["image"] != nil || fields["mask"] != nil {
            throw AtelierError.invalid(fields["image"] != nil ? "image" : "mask", "unsupported_parameter",
                                       "images go to POST /v1/images/edits; /v1/images/generations takes a prompt only")
        }
        let translated = try OpenAIImageRequest(fields, catalog: catalog)
        let key = request.headers[RunController.idempotencyHeader]
        // From here a run may be queued: without an Idempotency-Key a retried POST would be a second paid run.
        if key == nil { safety = .runMayExist }
        let submitted = try await runs.submit(
            .init(parameters: translated.parameters, webhook: nil, idempotencyKey: key, wait: wait,
                  maskConvention: edit ? .transparent : .white),
            account: account, logger: context.logger)
        var job = submitted.job
        if submitted.replayed, !job.status.isTerminal { job = try await runs.awaitEnd(job.id, timeout: wait) }
        switch job.status {
        case .queued, .running:
            throw AtelierError.stillRunning(requestID: job.id, seconds: Int(wait.components.seconds))
        case .failed:
            let failure = job.failure ?? JobFailure(code: .generationFailed, message: "the run failed")
            throw AtelierError.runFailed(code: failure.code, message: failure.message)
        case .canceled:
            throw AtelierError.conflict(code: "canceled", message: "run \(job.id) was canceled before it finished; nothing was charged")
        case .succeeded:
            break
        }
        let answer = try await ImagesResponse(job: job, format: translated.responseFormat, runs: runs, links: edge.links,
                                              baseURL: edge.baseURL(for: request), cost: try await runs.cost(of: job, account: account))
        var headers: HTTPFields = [HTTPField.Name("x-request-id")!: String(job.id)]
        if submitted.replayed { headers[RunController.replayedHeader] = "true" }
        return JSONResponse.make(status: .ok, answer, headers: headers)
    }

    /// openai-python sends one image as `image` and a list as `image[]`; a FLUX edit takes one.
    static func takeImages(_ fields: inout [String: ParameterValue]) throws {
        if let listed = fields.removeValue(forKey: "image[]") {
            guard fields["image"] == nil else {
                throw AtelierError.invalid("image", "too_many_images", "this model edits one image; send one image")
            }
            fields["image"] = listed
        }
        guard fields["image"] != nil else {
            throw AtelierError.invalid("image", "required", "image is required: the picture to edit, as a file part named image")
        }
    }

    struct ImagesResponse: Encodable, Sendable {
        struct Image: Encodable, Sendable {
            var url: String?
            var b64JSON: String?
            var revisedPrompt: String
            enum CodingKeys: String, CodingKey, CaseIterable {
                case url
                case b64JSON = "b64_json"
                case revisedPrompt = "revised_prompt"
            }
        }
        /// OpenAI's token usage: FLUX counts no tokens, so zeros, in the shape its clients parse.
        struct Usage: Encodable, Sendable {
            struct Details: Encodable, Sendable {
                var imageTokens = 0
                var textTokens = 0
                enum CodingKeys: String, CodingKey, CaseIterable {
                    case imageTokens = "image_tokens"
                    case textTokens = "text_tokens"
                }
            }
            var inputTokens = 0
            var outputTokens = 0
            var totalTokens = 0
            var inputTokensDetails = Details()
            enum CodingKeys: String, CodingKey, CaseIterable {
                case inputTokens = "input_tokens"
                case outputTokens = "output_tokens"
                case totalTokens = "total_tokens"
                case inputTokensDetails = "input_tokens_details"
            }
        }
        var created: Int
        var data: [Image]
        var usage = Usage()
        var outputFormat: String
        var size: String
        /// Atelier's addition: what the images cost and the account's credit after them.
        var cost: RunCost
        var requestID: String
        enum CodingKeys: String, CodingKey, CaseIterable {
            case created, data, usage, size, cost
            case outputFormat = "output_format"
            case requestID = "request_id"
        }

        init(job: Job, format: OpenAIImageRequest.ResponseFormat, runs: RunService, links: OutputLinks, baseURL: String, cost: RunCost) async throws {
            let prompt = job.request.prompt
            switch format {
            case .url:
                let view = RunView(job: job, baseURL: baseURL, links: links, currency: cost.currency)
                let urls: [String] = switch view.output { case .one(let u)?: [u]; case .many(let us)?: us; case .removed?, nil: [] }
                self.init(job: job, images: urls.map { Image(url: $0, revisedPrompt: prompt) }, cost: cost)
            case .b64JSON:
                guard let images = try await runs.outputBytes(of: job, limit: 64_000_000) else {
                    throw AtelierError.invalid("response_format", "too_large", "the images are too large to send inline; ask for response_format url")
                }
                self.init(job: job, images: images.map { Image(b64JSON: Data($0).base64EncodedString(), revisedPrompt: prompt) }, cost: cost)
            }
        }

        init(job: Job, images: [Image], cost: RunCost) {
            created = Int(job.createdAt.timeIntervalSince1970)
            data = images
            outputFormat = job.request.outputFormat == .jpg ? "jpeg" : job.request.outputFormat.rawValue
            size = "\(job.request.size.width)x\(job.request.size.height)"
            self.cost = cost
            requestID = String(job.id)
        }
    }

    struct ModelList: Encodable, Sendable {
        struct Model: Encodable, Sendable {
            var id: String
            var object = "model"
            var created = 0
            var ownedBy: String
            var pricePerImage: Int
            var currency: String
            enum CodingKeys: String, CodingKey, CaseIterable {
                case id, object, created, currency
                case ownedBy = "owned_by"
                case pricePerImage = "price_per_image"
            }
        }
        var object = "list"
        var data: [Model]
        /// The same models as Replicate's clients list them: `GET /v1/models` is both APIs' route, and each client
        /// reads only its own keys (`data`; `results`, `next`).
        var results: [ReplicateRoutes.ModelObject]
        enum CodingKeys: String, CodingKey, CaseIterable { case object, data, results }
    }

    /// The catalog, as OpenAI lists models (with each model's price per image, in minor units) and as Replicate does.
    func models(_ request: Request) async throws -> Response {
        let owner = replicateOwner
        let entries = catalog.ids.compactMap { catalog[$0] }
        let models = entries.map {
            ModelList.Model(id: $0.id, ownedBy: owner, pricePerImage: $0.pricePerImage.minorUnits, currency: $0.pricePerImage.currency)
        }
        let replicate = ReplicateRoutes(runs: runs, edge: edge, owner: owner)
        return JSONResponse.make(status: .ok, ModelList(data: models, results: entries.map { replicate.modelObject($0, request: request) }))
    }

    func errors(_ context: AtelierRequestContext, _ body: (inout OpenAIErrors.RetrySafety) async throws -> Response) async -> Response {
        var safety = OpenAIErrors.RetrySafety.safe
        do {
            return try await body(&safety)
        } catch {
            return OpenAIErrors.response(error, safety: safety, logger: context.logger)
        }
    }
}

extension OpenAIRoutes.ImagesResponse {
    static var schema: JSONSchema {
        .component("ImagesResponse", .keyed(CodingKeys.self, required: Array(CodingKeys.allCases)) { key in
            switch key {
            case .created: .integer()
            case .data:
                .array(of: .keyed(Image.CodingKeys.self, required: [.revisedPrompt]) { _ in .string() })
            case .usage:
                .keyed(Usage.CodingKeys.self, required: Array(Usage.CodingKeys.allCases)) { key in
                    switch key {
                    case .inputTokens, .outputTokens, .totalTokens: .integer(minimum: 0)
                    case .inputTokensDetails: .keyed(Usage.Details.CodingKeys.self) { _ in .integer(minimum: 0) }
                    }
                }
            case .outputFormat: .strings(["png", "jpeg", "webp"])
            case .size, .requestID: .string()
            case .cost: RunCost.schema
            }
        })
    }
}

extension OpenAIRoutes.ModelList {
    static var schema: JSONSchema {
        .component("OpenAIModelList", .keyed(CodingKeys.self, required: Array(CodingKeys.allCases)) { key in
            switch key {
            case .object: .const(.string("list"))
            case .results: .array(of: ReplicateRoutes.ModelObject.schema)
            case .data:
                .array(of: .keyed(Model.CodingKeys.self, required: [.id, .object, .created, .ownedBy]) { key in
                    switch key {
                    case .id, .ownedBy, .currency: .string()
                    case .object: .const(.string("model"))
                    case .created, .pricePerImage: .integer()
                    }
                })
            }
        })
    }
}
