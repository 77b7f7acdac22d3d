import AtelierCore
import AtelierEngine
import AtelierPersistence
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

extension AtelierNode {
    /// Runs the node until SIGTERM or SIGINT (exit status 0), or until it cannot go on (`NodeFailure`).
    ///
    /// On a shared database the pool comes first (it stops last), then the notification listener and the watcher
    /// that polls for what notifications missed. Once the database is migrated and the demo key made, the HTTP
    /// server, the workers and the webhook dispatcher start; the drain is last, so on SIGTERM it stops first:
    /// intake closes and running jobs finish (or are requeued) before the HTTP server and the workers stop.
    /// `forceStop`: what ends the process if a service still runs `Drain.stopDeadline` after the drain (the
    /// command line passes `exit(0)`: drained, the runs and their money are in the database; in-process users,
    /// such as tests, leave it empty).
    public func run(forceStop: @escaping @Sendable () -> Void = {}) async throws {
        let node = self
        let startup = Startup(logger: logger) {
            try await node.prepare()
            var drain = Drain(supervisor: node.supervisor, timeout: .seconds(node.settings.drainTimeoutSeconds), logger: node.logger)
            drain.forceStop = forceStop
            var listeners: [any Service] = [node.application]
            if node.settings.metricsEnabled, let (host, port) = node.settings.metricsAddress {
                listeners.append(Application(router: node.api.buildMetricsRouter(), configuration: .init(address: .hostname(host, port: port), serverName: "Atelier"),
                                             logger: node.logger))
            }
            return ServiceGroup(configuration: .init(services: listeners + [drain], logger: node.logger))
        }
        var services: [any Service] = []
        if let postgres, case .postgres(let pg) = settings.database {
            let supervisor = self.supervisor
            let watcher = RunWatcher(events: supervisor.events, store: store, wake: supervisor.wake, logger: logger)
            let listener = PostgresEventListener(
                settings: pg, nodeID: nodeID, logger: logger,
                onEvent: { event in await Self.apply(event, to: supervisor) },
                onSubscribed: { await watcher.pollOnce() }
            )
            services = [postgres, listener, watcher]
        }
        let group = ServiceGroup(configuration: .init(services: services + [startup], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let ran: Result<Void, any Error>
        do { try await group.run(); ran = .success(()) } catch { ran = .failure(error) }
        await images.close()
        do {
            try ran.get()
            logger.info("stopped")
        } catch let error as SupervisorError {
            logger.critical("\(error.description)")
            throw NodeFailure.workerCannotStart
        } catch let error as StartupFailure {
            logger.critical("\(error.message)")
            throw NodeFailure.startup
        }
    }

    /// What must hold before anything serves: the shared database reachable and migrated, the image store
    /// answering, and (demo profile, first start) a key to try it with.
    func prepare() async throws {
        if let postgres, case .postgres(let pg) = settings.database {
            do {
                try await PostgresStore.probe(pg, logger: logger)
                try await postgres.migrate()
            } catch {
                throw StartupFailure(message: "\(settings.databaseSetting): cannot use \(settings.database.summary): \(error)")
            }
        }
        do {
            try await images.probe()
        } catch {
            throw StartupFailure(message: "--storage: cannot use \(settings.storage.summary): \(error)")
        }
        // A worker node serves no API: no demo key.
        if role != .worker { firstKey.set(try await Self.firstStartKey(store: store, profile: settings.profile)) }
    }

    /// Another node's change to a run, told to this node's waiting requests, event streams and worker slots.
    static func apply(_ event: StoreEvent, to supervisor: WorkerSupervisor) async {
        switch event {
        case .queued: await supervisor.jobQueued()
        case .started(let id, let attempt): await supervisor.events.jobStarted(id, attempt: attempt)
        case .progress(let id, let step, let total): await supervisor.events.jobProgressed(id, step: step, total: total)
        case .requeued(let id): await supervisor.events.jobRequeued(id)
        case .finished(let id):
            await supervisor.events.jobFinished(id)
            // Canceled (or failed by a sweeper) elsewhere while this node's worker runs it: stop the worker.
            supervisor.cancel(id)
        }
    }

    /// Demo credit: 100.00 USD, so the demo runs thousands of (random-weight) images before a 402.
    static let demoCredit: Int64 = 10_000

    /// Demo profile: on first start (no keys at all) create a `demo` account with credit and a key, printed once.
    static func firstStartKey(store: any AccountsStore, profile: Profile) async throws -> APIKey? {
        guard profile == .demo, try await store.keyCount() == 0 else { return nil }
        let account = try await store.ensureAccount(named: "demo")
        _ = try await store.addCredit(accountID: account, amount: Self.demoCredit, kind: .credit,
                                      reason: "demo credit on first start", now: Date())
        let key = APIKey.generate()
        try await store.addKey(key, accountID: account)
        return key
    }
}
