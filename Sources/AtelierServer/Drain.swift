import AtelierEngine
import Logging
import ServiceLifecycle

/// The first service to hear SIGTERM: it turns the server away from new runs (/readyz 503, /run 503), waits for
/// running jobs to finish within the drain timeout (the supervisor requeues any still running then), and releases
/// every request still waiting on a run, so the HTTP server after it stops at once.
struct Drain: Service {
    let supervisor: WorkerSupervisor
    let timeout: Duration
    let logger: Logger

    func run() async throws {
        try await gracefulShutdown()
        supervisor.beginDrain()
        // The supervisor's own timer stops workers at `timeout`; a little more here lets it requeue their jobs.
        let limit = timeout + .seconds(10)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [supervisor] in await supervisor.waitForSlots { !$0.contains { $0.state == .busy } } }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
        await supervisor.events.releaseAll()
        logger.info("drained: no run in progress; stopping the HTTP server and the workers")
    }
}
