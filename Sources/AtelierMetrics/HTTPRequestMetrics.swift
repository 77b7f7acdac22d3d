import CoreMetrics
import Synchronization

/// HTTP requests by route pattern, method and status, their durations, and how many are in flight: recorded by
/// the router's middleware on every request, so it is built for that path. The metric handles of each
/// (route, method, status) are made once and kept (routes are a fixed set, statuses a handful), so a request
/// costs one uncontended lock, a counter add and a histogram observation; the in-flight count is an atomic,
/// read at each scrape, instead of a gauge written twice per request.
public final class HTTPRequestMetrics: Sendable {
    struct Key: Hashable {
        var route: String
        var method: String
        var status: Int
    }
    struct Handles: Sendable {
        var requests: Counter
        var duration: CoreMetrics.Timer
    }

    let factory: any MetricsFactory
    private let handles = Mutex<[Key: Handles]>([:])
    private let inFlightCount = Atomic<Int>(0)

    public init(factory: any MetricsFactory) {
        self.factory = factory
    }

    public enum Name {
        public static let requests = "atelier_http_requests_total"
        public static let duration = "atelier_http_request_duration_seconds"
        public static let errors = "atelier_http_request_errors_total"
        public static let inFlight = "atelier_http_requests_in_flight"
    }

    /// Requests being handled now.
    public var inFlight: Int { inFlightCount.load(ordering: .relaxed) }

    public func started() {
        inFlightCount.add(1, ordering: .relaxed)
    }

    /// A request was answered: `route` is the matched pattern (`/api/v4/requests/{id}/events`), `NotFound` when
    /// none matched; `seconds` runs to the response head (a streamed body's length is the client's pace, not ours).
    public func answered(route: String, method: String, status: Int, seconds: Double) {
        inFlightCount.subtract(1, ordering: .relaxed)
        let key = Key(route: route, method: method, status: status)
        let h = handles.withLock { cache in
            if let h = cache[key] { return h }
            let dimensions = [("route", route), ("method", method), ("status", String(status))]
            let h = Handles(requests: Counter(label: Name.requests, dimensions: dimensions, factory: factory),
                            duration: CoreMetrics.Timer(label: Name.duration, dimensions: dimensions, factory: factory))
            cache[key] = h
            return h
        }
        h.requests.increment()
        h.duration.recordNanoseconds(Int64(max(0, seconds) * 1e9))
    }

    /// An error escaped every handler and middleware (the error envelope answers nearly all of them first).
    public func failed(route: String, method: String, status: Int, seconds: Double) {
        answered(route: route, method: method, status: status, seconds: seconds)
        Counter(label: Name.errors, dimensions: [("route", route), ("method", method), ("status", String(status))], factory: factory)
            .increment()
    }
}
