import CoreMetrics
import Foundation
import Prometheus

/// The registry behind `GET /metrics` and the factory that fills it. Hummingbird's MetricsMiddleware records
/// through swift-metrics' global system under its own names (`hb.requests`, `http.server.request.duration`);
/// they are renamed here to Atelier's (`atelier_http_requests_total`, …) with Prometheus-style label names.
public final class PrometheusExporter: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory

    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.nameAndLabelSanitizer = { name, labels in
            (Self.names[name] ?? name, labels.map { (Self.labels[$0.0] ?? $0.0, $0.1) })
        }
        factory.defaultDurationHistogramBuckets = AtelierMetrics.runBuckets
        factory.durationHistogramBuckets = [Self.names["http.server.request.duration"]!: Self.httpBuckets]
        factory.valueHistogramBuckets = [AtelierMetrics.Name.batchSize: AtelierMetrics.batchBuckets]
        self.registry = registry
        self.factory = factory
    }

    /// Requests answer in milliseconds, or wait up to a minute for a run: buckets from 5 ms to 120 s.
    static let httpBuckets: [Duration] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
        .map { .microseconds(Int($0 * 1_000_000)) }

    static let names = [
        "hb.requests": "atelier_http_requests_total",
        "hb.request.errors": "atelier_http_request_errors_total",
        "http.server.request.duration": "atelier_http_request_duration_seconds",
        "http.server.active_requests": "atelier_http_active_requests",
    ]
    static let labels = [
        "http.route": "route", "http.request.method": "method", "http.response.status_code": "status", "error.type": "error",
    ]

    public func render() -> String {
        registry.emitToString()
    }
}
