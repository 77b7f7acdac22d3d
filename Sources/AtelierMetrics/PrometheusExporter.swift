import CoreMetrics
import Foundation
import Prometheus

/// The registry behind `GET /metrics` and the factory that fills it. Libraries that record through swift-metrics'
/// global system (bootstrapped with this factory) keep their own names; Hummingbird's MetricsMiddleware names are
/// mapped to Atelier's should it ever be used, with Prometheus-style label names.
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
        factory.durationHistogramBuckets = [HTTPRequestMetrics.Name.duration: Self.httpBuckets]
        factory.valueHistogramBuckets = [AtelierMetrics.Name.batchSize: AtelierMetrics.batchBuckets]
        self.registry = registry
        self.factory = factory
    }

    /// Requests answer in milliseconds, or wait up to a minute for a run: buckets from 5 ms to 120 s.
    static let httpBuckets: [Duration] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
        .map { .microseconds(Int($0 * 1_000_000)) }

    static let names = [
        "hb.requests": HTTPRequestMetrics.Name.requests,
        "hb.request.errors": HTTPRequestMetrics.Name.errors,
        "http.server.request.duration": HTTPRequestMetrics.Name.duration,
        "http.server.active_requests": HTTPRequestMetrics.Name.inFlight,
    ]
    static let labels = [
        "http.route": "route", "http.request.method": "method", "http.response.status_code": "status", "error.type": "error",
    ]

    public func render() -> String {
        registry.emitToString()
    }
}
