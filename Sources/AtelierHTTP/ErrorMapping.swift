import AtelierCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging

/// The one place that turns errors into HTTP statuses and the public error envelope:
/// `{"success": false, "message": "…", "error": {"code": "…", "param": "…", "details": [...]}}`.
public enum ErrorMapping {
    public struct Envelope: Encodable, Sendable {
        public struct Detail: Encodable, Sendable {
            public var code: String
            public var param: String?
            public var message: String?
            public var details: [ParameterProblem]?
            enum CodingKeys: String, CodingKey, CaseIterable { case code, param, message, details }
        }
        public var success = false
        public var message: String
        public var error: Detail
        public var data: RunView?
        enum CodingKeys: String, CodingKey, CaseIterable { case success, message, error, data }

        /// /api/v4's error body; a failed run's answer carries the run as `data`.
        public static var schema: JSONSchema {
            .component("Error", .keyed(CodingKeys.self, required: [.success, .message, .error]) { key in
                switch key {
                case .success: .const(.bool(false))
                case .message: JSONSchema.string().described("What is wrong and how to fix it.")
                case .error:
                    .keyed(Detail.CodingKeys.self, required: [.code]) { key in
                        switch key {
                        case .code, .param, .message: .string()
                        case .details: .array(of: ParameterProblem.schema)
                        }
                    }
                case .data: RunView.schema
                }
            })
        }
    }

    /// What each error status means on /api/v4, for the API's description (a route may say it more exactly).
    static let statusTexts: [Int: String] = [
        400: "A parameter or the body is invalid; nothing was queued.",
        401: "Missing, unknown or revoked API key.",
        402: "The account's available credit does not cover price × num_outputs; nothing was queued.",
        404: "No such run for this key's account.",
        409: "The first request with this Idempotency-Key is still running.",
        413: "The body is larger than the limit.",
        415: "A Content-Type other than JSON, form or multipart.",
        422: "Every image was flagged by the safety checker, or the Idempotency-Key was used with a different request.",
        429: "Too many requests for this API key, or too many runs in progress for its account; see Retry-After.",
        500: "The generation failed.",
        503: "The database is unreachable for the moment (database_unavailable); see Retry-After.",
    ]

    /// A route's error answers in /api/v4's envelope.
    static func documented(_ statuses: [Int], _ overriding: [Int: String] = [:]) -> [String: OpenAPI.Response] {
        OpenAPI.errors(statuses, body: Envelope.schema, texts: statusTexts, overriding: overriding)
    }

    /// Problems of a parameter's content that no schema can state; the request's form was right.
    public static let contentProblemCodes: Set<String> = [
        "unsafe_url", "fetch_failed", "image_too_large", "empty_image", "unsupported_format", "truncated_image",
        "invalid_image_size", "too_many_pixels", "invalid_data_uri", "too_few_steps", "invalid_metadata", "lora_url_unusable",
        "lora_invalid", "too_many_loras", "invalid_lora_list",
        "parameter_of_another_model",
    ]

    public static func status(for error: AtelierError) -> HTTPResponse.Status {
        switch error {
        case .unauthorized: .unauthorized
        case .insufficientCredit: HTTPResponse.Status(code: 402, reasonPhrase: "Payment Required")
        // The document's schema says what well-formed is (400 outside it); a well-formed value whose content
        // cannot be used (an image that does not decode, a URL that does not answer, an internal address) is 422.
        case .invalidParameters(let problems) where !problems.isEmpty && problems.allSatisfy({ contentProblemCodes.contains($0.code) }):
            .unprocessableContent
        case .invalidParameters, .malformedBody: .badRequest
        case .bodyTooLarge: .contentTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .rateLimited: .tooManyRequests
        case .idempotencyMismatch: .unprocessableContent
        case .idempotencyInProgress: .conflict
        case .modelNotFound, .notFound: .notFound
        case .unavailable, .shuttingDown, .databaseUnavailable, .storageUnavailable: .serviceUnavailable
        case .conflict: .conflict
        case .runFailed(let code, _): status(for: code)
        case .stillRunning: .gatewayTimeout
        case .internalError: .internalServerError
        }
    }

    /// A failed run's status, for every failure code (the switch is exhaustive: a new code needs its status here).
    public static func status(for code: RunFailureCode) -> HTTPResponse.Status {
        switch code {
        // Infrastructure failures are worth retrying: 503.
        case .workerCrashed, .workerLost, .timeout, .storageUnavailable: .serviceUnavailable
        // Every image flagged, an input image that does not decode, a LoRA that cannot be fetched or used: the
        // request's content, 422.
        case .safetyFlagged, .invalidInput, .loraIncompatible, .loraUnavailable, .loraInvalid: .unprocessableContent
        // Stopped by a cancel: the run's state, not the request, is in the way.
        case .canceled: .conflict
        // A failure of the generation itself.
        case .invalidRequest, .generationFailed, .encodeFailed, .outOfMemory, .storageError: .internalServerError
        }
    }

    public static func envelope(for error: AtelierError, run: RunView? = nil) -> Envelope {
        switch error {
        case .unauthorized(let m): Envelope(message: m, error: .init(code: "unauthorized"))
        case .insufficientCredit(let needed, let available, let price, let currency, let account):
            Envelope(
                message: "this run needs \(MoneyText.format(needed, currency)) (\(MoneyText.format(price, currency)) per image) but the account's available credit is \(MoneyText.format(available, currency)); add credit with `atelier credits add --account \(account) AMOUNT --reason TEXT`, or ask for fewer images",
                error: .init(code: "insufficient_credit")
            )
        case .invalidParameters(let problems):
            Envelope(
                message: problems.map(\.message).joined(separator: "; "),
                error: .init(code: problems.first?.code ?? "invalid_parameter", param: problems.first?.param,
                             details: problems)
            )
        case .malformedBody(let m): Envelope(message: m, error: .init(code: "malformed_body"))
        case .bodyTooLarge(let limit):
            Envelope(message: "the request body is larger than the limit of \(limit) bytes; send a smaller body (or a URL for large images)",
                     error: .init(code: "body_too_large"))
        case .unsupportedMediaType(let m): Envelope(message: m, error: .init(code: "unsupported_media_type"))
        case .rateLimited(let m, _, _, _, _): Envelope(message: m, error: .init(code: "rate_limited"))
        case .idempotencyMismatch(let m): Envelope(message: m, error: .init(code: "idempotency_key_reused", param: "Idempotency-Key"))
        case .idempotencyInProgress(let id):
            Envelope(message: "the first request with this Idempotency-Key (request_id \(id)) is still running; poll /api/v4/check or retry later",
                     error: .init(code: "idempotency_in_progress", param: "Idempotency-Key"))
        case .modelNotFound(let id): Envelope(message: "no model \"\(id)\"; GET /api/v4/models lists them", error: .init(code: "model_not_found", param: "model_id"))
        case .notFound(let m): Envelope(message: m, error: .init(code: "not_found"))
        case .unavailable(let m): Envelope(message: m, error: .init(code: "unavailable"))
        case .databaseUnavailable:
            Envelope(message: "the database is unreachable for the moment; retry in a few seconds (send the same Idempotency-Key so a retry never makes a second run)",
                     error: .init(code: "database_unavailable"))
        case .storageUnavailable:
            Envelope(message: "the image store is unreachable for the moment; retry in a few seconds", error: .init(code: "storage_unavailable"))
        case .shuttingDown:
            Envelope(message: "the server is shutting down and takes no new runs; retry in a few seconds", error: .init(code: "shutting_down"))
        case .conflict(let code, let m): Envelope(message: m, error: .init(code: code))
        case .runFailed(let code, let m): Envelope(message: m, error: .init(code: code.rawValue), data: run)
        case .stillRunning(let id, let seconds):
            Envelope(message: "run \(id) is still running after \(seconds) s; it goes on and is charged when it ends: read it with GET /api/v4/check?request_id=\(id) instead of sending the request again (a new request is a new run)",
                     error: .init(code: "still_running"))
        case .internalError: Envelope(message: "internal error; the server's log has the details", error: .init(code: "internal_error"))
        }
    }

    public static func headers(for error: AtelierError) -> HTTPFields {
        var headers: HTTPFields = [:]
        if case .unauthorized = error { headers[.wwwAuthenticate] = "Bearer" }
        if status(for: error) == .serviceUnavailable { headers[.retryAfter] = "5" }
        if case .rateLimited(_, let retry, let limit, let remaining, let reset) = error {
            headers[.retryAfter] = String(retry)
            if let limit { headers[HTTPField.Name("RateLimit-Limit")!] = String(limit) }
            if let remaining { headers[HTTPField.Name("RateLimit-Remaining")!] = String(remaining) }
            if let reset { headers[HTTPField.Name("RateLimit-Reset")!] = String(reset) }
        }
        return headers
    }

    public static func response(for error: AtelierError, run: RunView? = nil, extraHeaders: HTTPFields = [:]) -> Response {
        var headers = headers(for: error)
        for field in extraHeaders { headers[field.name] = field.value }
        return JSONResponse.make(status: status(for: error), envelope(for: error, run: run), headers: headers)
    }

    /// Any error, decided once: its status, its envelope (code, param, message) and its headers. Each dialect
    /// writes these in its own shape (the envelope here, RFC 7807 for Replicate's, OpenAI's error object).
    public struct Resolved: Sendable {
        public var status: HTTPResponse.Status
        public var envelope: Envelope
        public var headers: HTTPFields
    }

    /// Problems between parameters (width without custom, custom without width, a mask without an image, a
    /// parameter and its alias both given): stated by /api/v4/run's schema (400 outside it), not by a schema that
    /// lists each parameter alone (Replicate's `input`), where the value is well-formed and the request
    /// unprocessable: 422.
    static func crossParameter(_ problem: ParameterProblem) -> Bool {
        ["requires_custom", "mask_without_image", "duplicate_parameter"].contains(problem.code)
            || (problem.code == "required" && ["width", "height", "aspect_ratio"].contains(problem.param))
    }

    /// `resolve`, for an API whose schema states no rule between parameters.
    public static func resolveWithoutParameterRules(_ error: any Error, logger: Logger) -> Resolved {
        var resolved = resolve(error, logger: logger)
        if case .invalidParameters(let problems)? = error as? AtelierError, !problems.isEmpty,
           problems.allSatisfy({ crossParameter($0) || contentProblemCodes.contains($0.code) }) {
            resolved.status = .unprocessableContent
        }
        return resolved
    }

    public static func resolve(_ error: any Error, logger: Logger) -> Resolved {
        if let e = error as? StoreUnavailable {
            logger.warning("database unavailable: \(e.reason)")
            return resolve(AtelierError.databaseUnavailable, logger: logger)
        }
        if let e = error as? StorageUnavailable {
            logger.warning("image store unavailable: \(e.reason)")
            return resolve(AtelierError.storageUnavailable, logger: logger)
        }
        if let e = error as? AtelierError {
            if case .internalError(let detail) = e { logger.error("internal error: \(detail)") }
            return Resolved(status: status(for: e), envelope: envelope(for: e), headers: headers(for: e))
        }
        if let e = error as? HTTPError {
            let code: String
            let message: String
            switch e.status {
            case .notFound: (code, message) = ("not_found", "no such route; docs/api.md lists the API's routes")
            case .contentTooLarge: (code, message) = ("body_too_large", e.body ?? "the request body is too large")
            case .methodNotAllowed: (code, message) = ("method_not_allowed", e.body ?? "this route does not take that method")
            default: (code, message) = (e.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_"), e.body ?? e.status.reasonPhrase)
            }
            return Resolved(status: e.status, envelope: Envelope(message: message, error: .init(code: code)), headers: e.headers)
        }
        logger.error("unexpected error: \(String(reflecting: error))")
        return resolve(AtelierError.internalError(String(describing: error)), logger: logger)
    }

    /// Errors that are not ours (the router's 404, Hummingbird's body limit) get the same envelope.
    /// A request refused before its handler ran (its key, its body), in the shape of the route's API: /api/v4's
    /// envelope is the router's `ErrorEnvelopeMiddleware`'s, so the error goes on to it.
    static func refusal(_ error: any Error, in dialect: ErrorDialect, logger: Logger) throws -> Response {
        switch dialect {
        case .atelier: throw error
        case .replicate: return ReplicateRoutes.problem(error, logger: logger)
        case .openAI: return OpenAIErrors.response(error, safety: .safe, logger: logger)
        }
    }

    public static func response(for error: any Error, logger: Logger) -> Response {
        let r = resolve(error, logger: logger)
        return JSONResponse.make(status: r.status, r.envelope, headers: r.headers)
    }
}

/// Wraps every route so that any thrown error leaves as the public envelope.
/// A known path asked with a method it does not take becomes a 405 with `Allow` instead of the router's 404.
public struct ErrorEnvelopeMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowed: AllowedMethods?

    public init(allowed: AllowedMethods? = nil) {
        self.allowed = allowed
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            if let methods = allowed?.methods(for: request.uri.path), !methods.contains(request.method.rawValue) {
                let refusal = HTTPError(.methodNotAllowed, headers: [.allow: methods.joined(separator: ", ")],
                                        message: "\(request.uri.path) takes \(methods.joined(separator: ", ")), not \(request.method.rawValue)")
                return ErrorMapping.response(for: refusal, logger: context.logger)
            }
            return ErrorMapping.response(for: error, logger: context.logger)
        } catch {
            return ErrorMapping.response(for: error, logger: context.logger)
        }
    }
}

enum JSONResponse {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    static func make(status: HTTPResponse.Status, _ value: some Encodable, headers: HTTPFields = [:]) -> Response {
        make(status: status, encoded: bytes(value) ?? ByteBuffer(string: #"{"success":false,"message":"encoding failed"}"#),
             headers: headers)
    }

    static func bytes(_ value: some Encodable) -> ByteBuffer? {
        (try? encoder.encode(value)).map { ByteBuffer(bytes: $0) }
    }

    static func make(status: HTTPResponse.Status, encoded body: ByteBuffer, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.cacheControl] = "no-store"
        return Response(status: status, headers: fields, body: .init(byteBuffer: body))
    }
}
