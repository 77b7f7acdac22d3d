/// One problem with one request parameter, in machine form (`code`, `param`) and for people (`message`).
public struct ParameterProblem: Sendable, Equatable, Codable {
    public var param: String
    public var code: String
    public var message: String

    enum CodingKeys: String, CodingKey, CaseIterable { case param, code, message }

    /// One refused parameter in an error answer's `details` (every dialect lists them).
    public static var schema: JSONSchema {
        .keyed(CodingKeys.self, required: Array(CodingKeys.allCases)) { _ in .string() }
    }

    public init(param: String, code: String, message: String) {
        self.param = param
        self.code = code
        self.message = message
    }
}

/// Every error a request can end in. The HTTP layer maps these to status codes and envelopes in one place
/// (`AtelierHTTP.ErrorMapping`); nothing else decides a status.
public enum AtelierError: Error, Sendable, Equatable {
    /// No key, an unknown key or a revoked key. The associated text says which and what to do.
    case unauthorized(String)
    /// One or more parameters are invalid; all of them are reported at once.
    case invalidParameters([ParameterProblem])
    /// The body could not be read as JSON, form or multipart.
    case malformedBody(String)
    /// The body is larger than the configured limit.
    case bodyTooLarge(limit: Int)
    case unsupportedMediaType(String)
    case modelNotFound(String)
    case notFound(String)
    /// The account's available credit does not cover the run's hold (price × num_outputs).
    case insufficientCredit(needed: Int64, available: Int64, pricePerImage: Int64, currency: String, account: String)
    /// An Idempotency-Key reused with a different request.
    case idempotencyMismatch(String)
    /// An Idempotency-Key whose first request is still running.
    case idempotencyInProgress(requestID: Int64)
    /// Too many requests from one API key (token bucket), or too many runs in progress for one account.
    case rateLimited(message: String, retryAfter: Int, limit: Int?, remaining: Int?, reset: Int?)
    /// The engine cannot take work (no worker ready).
    case unavailable(String)
    /// The database cannot be reached (a restart, a failover): nothing was queued unless the answer says so;
    /// retry after Retry-After (with the same Idempotency-Key, a retry cannot make a second run).
    case databaseUnavailable
    /// The image store (an S3 bucket) cannot be reached: retry after Retry-After.
    case storageUnavailable
    /// The server is draining for a restart: it takes no new runs; retry shortly (on another instance).
    case shuttingDown
    /// The request conflicts with the run's state (e.g. canceling a run that already finished).
    case conflict(code: String, message: String)
    /// The run ended without an image; `code` is the worker's or engine's reason.
    case runFailed(code: RunFailureCode, message: String)
    /// A dialect that answers only with the finished images (OpenAI's) waited its whole window: the run goes on
    /// and is charged when it ends, so the client must not send it again.
    case stillRunning(requestID: Int64, seconds: Int)
    case internalError(String)
}

extension AtelierError {
    public static func invalid(_ param: String, _ code: String, _ message: String) -> AtelierError {
        .invalidParameters([ParameterProblem(param: param, code: code, message: message)])
    }
}
