import AtelierCore
import AtelierRuns
import Hummingbird

/// `GET /metrics` on the API (or health) port, and on a `--metrics-address` listener.
extension ServerController {
    /// The answer of a `--metrics-address` listener, whose only route this is.
    func metricsOnOwnAddress(_ request: Request) async throws -> Response {
        guard let endpoint = metricsEndpoint else { throw AtelierError.notFound("metrics are off") }
        return try await endpoint.answer(request, jobs: jobs, queue: queue, catalog: catalog)
    }

    static let metricsRoute = Endpoint<ServerController>(.get("/metrics", .init(
        "metrics", "Prometheus metrics (text format 0.0.4); see docs/observability.md",
        description: "Served on the API port in the demo profile, or there with --metrics-token (then send it as a Bearer token), or on --metrics-address only. In production without either, the API port has no /metrics.",
        isPublic: true,
        responses: ["200": .init(description: "The metrics.", content: ["text/plain": .init(.string())])]
            + ErrorMapping.documented([401, 404], [401: "--metrics-token is set and the request did not send it.",
                                                   404: "Metrics are not served on this port."])))) { api in { request, _ in try await api.metrics(request) } }

    func metrics(_ request: Request) async throws -> Response {
        guard let endpoint = metricsEndpoint else {
            throw AtelierError.notFound("metrics are off on this node (see --metrics, --metrics-address and --metrics-token)")
        }
        return try await endpoint.onAPIPort(request, jobs: jobs, queue: queue, catalog: catalog)
    }
}
