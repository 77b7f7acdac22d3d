import AtelierCore
import HTTPTypes
import Hummingbird

/// Who is asking: the key of a request, checked against the store and the key's rate limit.
extension AtelierAPI {
    /// `Authorization: Bearer <key>`, or an `api_key` body field (the hosted API accepts both).
    /// Replicate's clients may send `Authorization: Token <key>` (`acceptsTokenScheme`).
    func authenticate(_ request: Request, body: [String: ParameterValue], acceptsTokenScheme: Bool = false) async throws -> KeyRecord {
        switch body["api_key"] {
        case nil, .string?: break
        case let value?: throw AtelierError.invalid("api_key", "invalid_type", "api_key must be the key as a string; got \(value.display)")
        }
        var presented: String?
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" || (acceptsTokenScheme && parts[0].lowercased() == "token") else {
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
