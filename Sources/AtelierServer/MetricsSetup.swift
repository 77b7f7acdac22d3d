import AtelierHTTP
import AtelierMetrics
import Logging
import Metrics
import Synchronization

/// Where /metrics is served, and the registry every part records into.
enum MetricsSetup {
    private static let bootstrapped = Atomic<Bool>(false)

    /// Where /metrics is served; swift-metrics' global system (which libraries record through) is bootstrapped
    /// here, once per process, with the same registry as Atelier's own metrics.
    static func endpoint(_ settings: ServeSettings, logger: Logger) -> MetricsEndpoint {
        let exporter = PrometheusExporter()
        guard settings.metricsEnabled else {
            logger.info("metrics: off (--metrics off)")
            return MetricsEndpoint(exporter: exporter, placement: .off, token: nil, recording: false)
        }
        // One global system per process: a second node in the same process (tests) keeps the first one's.
        if bootstrapped.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            MetricsSystem.bootstrap(exporter.factory)
        }
        let placement: MetricsEndpoint.Placement
        if let (host, port) = settings.metricsAddress {
            placement = .ownAddress("\(host):\(port)")
        } else if settings.metricsToken != nil || settings.profile == .demo {
            placement = .apiPort
        } else {
            placement = .off
        }
        switch placement {
        case .ownAddress(let address): logger.info("metrics: GET /metrics on \(address)\(settings.metricsToken != nil ? " (token required)" : "")")
        case .apiPort: logger.info("metrics: GET /metrics on the API port\(settings.metricsToken != nil ? " (token required)" : "")")
        case .off: logger.info("metrics: off (production without --metrics-address or --metrics-token)")
        }
        return MetricsEndpoint(exporter: exporter, placement: placement, token: settings.metricsToken, recording: true)
    }
}
