import AtelierCore
import Hummingbird

public struct AtelierRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The caller's key, put here by `AuthenticationMiddleware` on every route that needs one.
    var identity: KeyRecord?
    /// The body's fields, when the middleware read them to find an `api_key` field (the /api/v4 routes).
    var fields: [String: ParameterValue]?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// The authenticated key. Only a route registered without credentials has none, and such a handler never asks.
    func account() throws -> KeyRecord {
        guard let identity else { throw AtelierError.internalError("a route that needs a key was registered without authentication") }
        return identity
    }
}
