import AtelierCore
import Hummingbird

/// `GET /metrics` on the API (or health) port, and the router of a `--metrics-address` listener.
extension AtelierAPI {
    /// The listener of `--metrics-address`: /metrics alone.
    public func buildMetricsRouter() -> Router<AtelierRequestContext> {
        let router = Router(context: AtelierRequestContext.self)
        let allowed = AllowedMethods()
        router.add(middleware: ErrorEnvelopeMiddleware(allowed: allowed))
        router.get("/metrics") { request, _ in
            guard let endpoint = self.metricsEndpoint else { throw AtelierError.notFound("metrics are off") }
            return try await endpoint.answer(request, jobs: self.jobs, queue: self.queue, catalog: self.catalog)
        }
        allowed.load(router.routes)
        return router
    }

    func metrics(_ request: Request) async throws -> Response {
        guard let endpoint = metricsEndpoint else {
            throw AtelierError.notFound("metrics are off on this node (see --metrics, --metrics-address and --metrics-token)")
        }
        return try await endpoint.onAPIPort(request, jobs: jobs, queue: queue, catalog: catalog)
    }
}
