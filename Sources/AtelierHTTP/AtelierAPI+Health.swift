import AtelierEngine
import Foundation
import Hummingbird

/// Liveness and readiness, for load balancers and operators.
extension AtelierAPI {
    // MARK: /healthz

    struct Health: Encodable, Sendable {
        var status: String
        var workers: [WorkerSlotStatus]
    }

    /// Ready for traffic: at least one worker ready and the database answering; 503 otherwise, so a load balancer
    /// sends requests elsewhere.
    func ready() async throws -> Response {
        // An API-only node (--workers 0 on a shared database) serves without workers of its own.
        let workerReady = !queue.runsWorkers || Self.anyWorkerReady(queue.workerStatus)
        let database = (try? await keys.keyCount()) != nil
        let draining = queue.isDraining
        let ok = workerReady && database && !draining
        struct Readiness: Encodable, Sendable {
            var ready: Bool
            var workers: Bool
            var database: Bool
            var draining: Bool
        }
        return JSONResponse.make(status: ok ? .ok : .serviceUnavailable,
                                 Readiness(ready: ok, workers: workerReady, database: database, draining: draining))
    }

    static func anyWorkerReady(_ workers: [WorkerSlotStatus]) -> Bool {
        workers.contains { $0.state == .idle || $0.state == .busy }
    }

    func health() -> Response {
        let workers = queue.workerStatus
        let ready = Self.anyWorkerReady(workers)
        return JSONResponse.make(status: .ok, Health(status: ready ? "ok" : "starting", workers: workers))
    }
}
