import AtelierMetrics
import Hummingbird

/// Records every request in `HTTPRequestMetrics`. Outside the error envelope, so it counts the status each answer
/// went out with. Hummingbird's own MetricsMiddleware does the same work but wraps every response body to time its
/// end and keeps an in-flight gauge in the metrics backend: about 9 µs a request, 9 % of /api/v4/check's rate
/// (bench/metrics_overhead.py). This one times the response head and counts in-flight requests in an atomic.
struct HTTPMetricsMiddleware: RouterMiddleware {
    typealias Context = AtelierRequestContext
    let metrics: HTTPRequestMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        metrics.started()
        do {
            let response = try await next(request, context)
            metrics.answered(route: context.endpointPath ?? "NotFound", method: request.method.rawValue,
                             status: response.status.code, seconds: Self.seconds(since: start))
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.failed(route: context.endpointPath ?? "NotFound", method: request.method.rawValue, status: status,
                           seconds: Self.seconds(since: start))
            throw error
        }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
