import AtelierCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Errors of the OpenAI-compatible routes in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`),
/// with the status, code and headers `ErrorMapping` decides for every API.
enum OpenAIErrors {
    /// Whether openai-python may safely resend the POST. It retries 408, 409, 429 and 5xx on its own, without an
    /// idempotency key; once a run may exist (it was handed to the run service without an Idempotency-Key) a
    /// resend would be a second paid run, so the answer says `x-should-retry: false`.
    enum RetrySafety: Sendable {
        case safe
        case runMayExist
    }

    struct Body: Encodable, Sendable {
        struct Detail: Encodable, Sendable {
            var message: String
            var type: String
            var param: String?
            var code: String
            /// Every problem of a refused request, as /api/v4 lists them.
            var details: [ParameterProblem]?
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(message, forKey: .message)
                try c.encode(type, forKey: .type)
                try c.encode(param, forKey: .param)  // null, not absent, as OpenAI sends it
                try c.encode(code, forKey: .code)
                try c.encodeIfPresent(details, forKey: .details)
            }
            enum CodingKeys: String, CodingKey, CaseIterable { case message, type, param, code, details }
        }
        var error: Detail
        enum CodingKeys: String, CodingKey, CaseIterable { case error }

        static var schema: JSONSchema {
            .component("OpenAIError", .keyed(CodingKeys.self, required: [.error]) { _ in
                .keyed(Detail.CodingKeys.self, required: [.message, .type, .param, .code]) { key in
                    switch key {
                    case .message, .type, .code: .string()
                    case .param: JSONSchema(type: .string, .null)
                    case .details: .array(of: ParameterProblem.schema)
                    }
                }
            })
        }
    }

    /// What each error status means on OpenAI's routes: as on Replicate's, and two of their own.
    static let statusTexts = ReplicateRoutes.statusTexts.merging([
        500: "The generation failed.",
        504: "The run is still going when the answer could wait no longer (still_running): it goes on and is charged when it ends; x-should-retry: false.",
    ]) { $1 }

    static func documented(_ statuses: [Int]) -> [String: OpenAPI.Response] {
        OpenAPI.errors(statuses, body: Body.schema, texts: statusTexts)
    }

    /// OpenAI's error types by status.
    static func type(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 401: "authentication_error"
        case 402: "insufficient_quota"
        case 403: "permission_error"
        case 429: "rate_limit_error"
        case 500...: "server_error"
        default: "invalid_request_error"
        }
    }

    /// Refusals that happen before anything is queued or charged: resending them makes no second run.
    static func queuedNothing(_ error: any Error) -> Bool {
        switch error as? AtelierError {
        case .invalidParameters?, .malformedBody?, .bodyTooLarge?, .unsupportedMediaType?, .unauthorized?,
             .insufficientCredit?, .rateLimited?, .shuttingDown?, .idempotencyMismatch?, .idempotencyInProgress?,
             .modelNotFound?:
            true
        // A failed run charges nothing; a new one is what the client wants.
        case .runFailed?: true
        default: false
        }
    }

    static func response(_ error: any Error, safety: RetrySafety, logger: Logger) -> Response {
        let resolved = ErrorMapping.resolve(error, logger: logger)
        var headers = resolved.headers
        if safety == .runMayExist && !queuedNothing(error) { headers[HTTPField.Name("x-should-retry")!] = "false" }
        // A problem the decoder found with a translated field is the client's field's (num_outputs → n); a field
        // refused under its own name keeps it.
        func name(_ param: String, _ code: String) -> String { code == "unknown_parameter" ? param : OpenAIImageRequest.clientNames[param] ?? param }
        let param = resolved.envelope.error.param.map { name($0, resolved.envelope.error.code) }
        let details = resolved.envelope.error.details?.map { problem -> ParameterProblem in
            var renamed = problem
            renamed.param = name(problem.param, problem.code)
            return renamed
        }
        let body = Body(error: .init(message: resolved.envelope.message, type: type(resolved.status), param: param,
                                     code: resolved.envelope.error.code, details: details))
        return JSONResponse.make(status: resolved.status, body, headers: headers)
    }
}
