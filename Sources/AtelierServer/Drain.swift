import AtelierEngine
import Logging
import ServiceLifecycle

/// The first service to hear SIGTERM: it turns the server away from new runs (/readyz 503, /run 503), waits for
/// running jobs to finish within the drain timeout (the supervisor requeues any still running then), and releases
/// every request still waiting on a run, so the HTTP server after it stops at once.
///
/// Once drained, everything a run needs is in the database and the store: the rest of the stop (closing
/// listeners, workers, the connection pool) must not hold the process. A service that does not stop within
/// `stopDeadline` after the drain (seen after database outages: a pooled connection whose statement never
/// answered) is cut short by `forceStop`, with an error in the log, so a supervisor's restart is never stuck.
struct Drain: Service {
    let supervisor: WorkerSupervisor
    let timeout: Duration
    let logger: Logger
    var stopDeadline: Duration = .seconds(20)
    var forceStop: @Sendable () -> Void = {}

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
        let (deadline, logger, forceStop) = (stopDeadline, logger, forceStop)
        Task.detached {
            try? await Task.sleep(for: deadline)
            logger.error("the node was drained \(deadline) ago but a service has not stopped (most likely a database connection that never answered); exiting without it")
            forceStop()
        }
    }
}
