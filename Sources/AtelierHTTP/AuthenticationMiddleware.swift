import AtelierCore
import HTTPTypes
import Hummingbird

/// How a route's caller presents a key. Each endpoint declares it beside its route (`Endpoint.credentials`).
enum Credentials: Sendable, Hashable {
    /// A public route: no key.
    case none
    /// `Authorization: Bearer <key>`.
    case bearer
    /// Bearer, or `Authorization: Token <key>` (Replicate's older clients).
    case bearerOrToken
    /// Bearer, or an `api_key` field in the body (the hosted API accepts both). The body is read here, within the
    /// limit, and its fields handed to the handler on the context, so it is read once.
    case bearerOrBodyField
}

/// Who is asking: the key of a request, checked against the store and the key's rate limit, put on the context
/// before the handler runs. Handlers read `context.account()` and never check keys themselves.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = AtelierRequestContext
    let keys: any KeyStore
    let limiter: RateLimiter
    let edge: HTTPEdge
    let credentials: Credentials
    /// The shape a refusal is answered in: the route's API's.
    let dialect: ErrorDialect

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        do {
            var fields: [String: ParameterValue] = [:]
            if credentials == .bearerOrBodyField, request.method == .post {
                fields = try await edge.readParameters(request)
                context.fields = fields
            }
            context.identity = try await authenticate(request, body: fields)
        } catch {
            return try ErrorMapping.refusal(error, in: dialect, logger: context.logger)
        }
        return try await next(request, context)
    }

    func authenticate(_ request: Request, body: [String: ParameterValue]) async throws -> KeyRecord {
        switch body["api_key"] {
        case nil, .string?: break
        case let value?: throw AtelierError.invalid("api_key", "invalid_type", "api_key must be the key as a string; got \(value.display)")
        }
        var presented: String?
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            let scheme = parts.first?.lowercased()
            guard parts.count == 2, scheme == "bearer" || (credentials == .bearerOrToken && scheme == "token") else {
                throw AtelierError.unauthorized("the Authorization header must be \"Bearer <your API key>\"")
            }
            presented = parts[1].trimmingCharacters(in: .whitespaces)
        } else if case .string(let k)? = body["api_key"] {
            presented = k
        }
        guard let text = presented, !text.isEmpty else {
            throw AtelierError.unauthorized("no API key: send \"Authorization: Bearer <your API key>\" (create one with `atelier keys create --account NAME`)")
        }
        let key = APIKey(plaintext: text)
        guard key.isWellFormed, let record = try await keys.lookupKey(hash: key.hash) else {
            throw AtelierError.unauthorized("this API key is not known; check it was copied whole, or create one with `atelier keys create --account NAME`")
        }
        if record.revokedAt != nil {
            throw AtelierError.unauthorized("this API key (\(record.prefix)…) was revoked; create a new one with `atelier keys create --account \(record.accountName)`")
        }
        let decision = limiter.take(record.prefix)
        guard decision.allowed else {
            throw AtelierError.rateLimited(
                message: "too many requests for this API key (\(limiter.limit) per minute); retry after \(decision.retryAfter) s",
                retryAfter: decision.retryAfter, limit: limiter.limit, remaining: decision.remaining, reset: decision.reset
            )
        }
        return record
    }
}
