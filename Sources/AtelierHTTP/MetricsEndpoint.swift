import AtelierCore
import AtelierRuns
import AtelierEngine
import AtelierMetrics
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /metrics`: the Prometheus text of this node. Counters and histograms are recorded as things happen; the
/// gauges whose truth is elsewhere (the queue in the database, the supervisor's worker slots) are read at each
/// scrape, so they are never stale and nothing polls between scrapes.
public struct MetricsEndpoint: Sendable {
    public enum Placement: Sendable, Equatable {
        /// On the API (or health) port; `token` nil: open to anyone who reaches the port (the demo profile).
        case apiPort
        /// Only on a listener of its own (`--metrics-address`); the API port answers 404 with where to look.
        case ownAddress(String)
        /// Not served (production without --metrics-address or --metrics-token).
        case off
    }

    public let exporter: PrometheusExporter
    public let placement: Placement
    /// `--metrics-token`: a scrape must send `Authorization: Bearer TOKEN`. Compared in constant time, never logged.
    public let token: String?

    /// False with `--metrics off`: nothing is recorded (the no-op factory).
    public let recording: Bool

    /// The HTTP requests of the API port (recorded by `HTTPMetricsMiddleware`).
    public let http: HTTPRequestMetrics

    public init(exporter: PrometheusExporter, placement: Placement, token: String?, recording: Bool = true) {
        self.exporter = exporter
        self.placement = placement
        self.token = token
        self.recording = recording
        http = HTTPRequestMetrics(factory: exporter.factory)
    }

    public var metrics: AtelierMetrics { recording ? AtelierMetrics(factory: exporter.factory) : AtelierMetrics() }

    /// The answer on the API port: the metrics, or a 404 saying where they are.
    func onAPIPort(_ request: Request, jobs: any JobStore, queue: any RunQueue, catalog: ModelCatalog) async throws -> Response {
        switch placement {
        case .apiPort: return try await answer(request, jobs: jobs, queue: queue, catalog: catalog)
        case .ownAddress(let address):
            throw AtelierError.notFound("metrics are served on this node's metrics address (\(address)), not on the API port")
        case .off:
            throw AtelierError.notFound("metrics are off on this node (see --metrics, --metrics-address and --metrics-token)")
        }
    }

    func answer(_ request: Request, jobs: any JobStore, queue: any RunQueue, catalog: ModelCatalog) async throws -> Response {
        if let token {
            let sent = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
            guard Self.sameSecret(sent, token) else {
                throw AtelierError.unauthorized("send the metrics token as Authorization: Bearer TOKEN (--metrics-token)")
            }
        }
        await sample(jobs: jobs, queue: queue, catalog: catalog)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: exporter.render())))
    }

    /// Compares every byte whatever the first difference, so the time taken does not tell how much of a guess
    /// was right (only the length can differ in time).
    static func sameSecret(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// The gauges read at scrape time. Every catalog model and every slot state is written, 0 when absent, so a
    /// series drops to 0 instead of keeping its last value.
    func sample(jobs: any JobStore, queue: any RunQueue, catalog: ModelCatalog) async {
        let m = metrics
        if let active = try? await jobs.activeRuns() {
            for model in Set(catalog.ids + active.map(\.modelID)) {
                for (name, status) in [(AtelierMetrics.Name.runsQueued, JobStatus.queued), (AtelierMetrics.Name.runsRunning, .running)] {
                    let n = active.first { $0.modelID == model && $0.status == status }?.count ?? 0
                    m.set(name, [("model", model)], to: n)
                }
                let mine = active.filter { $0.modelID == model }
                m.set(AtelierMetrics.Name.holdsOpen, [("model", model)], to: mine.reduce(0) { $0 + $1.count })
                m.set(AtelierMetrics.Name.heldCredit, [("model", model)], to: Int(mine.reduce(Int64(0)) { $0 + $1.held }))
            }
        }
        m.set(HTTPRequestMetrics.Name.inFlight, [], to: http.inFlight)
        let slots = queue.workerStatus
        for state in [WorkerSlotStatus.State.starting, .idle, .busy, .restarting, .stopped] {
            m.set(AtelierMetrics.Name.workerSlots, [("state", state.rawValue)], to: slots.filter { $0.state == state }.count)
        }
        for slot in slots {
            for (path, status) in slot.compiledPaths ?? [:] {
                for state in [WorkerPathStatus.State.building, .warming, .ready, .failed] {
                    m.set(AtelierMetrics.Name.compiledPathState, [("slot", String(slot.slot)), ("path", path), ("state", state.rawValue)],
                          to: status.state == state ? 1 : 0)
                }
            }
        }
    }
}
