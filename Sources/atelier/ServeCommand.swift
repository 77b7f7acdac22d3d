import AtelierCore
import AtelierEngine
import AtelierHTTP
import AtelierMetrics
import Metrics
import AtelierPersistence
import AtelierStorage
import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the API server and its local workers (SQLite and a local output folder by default)."
    )

    @OptionGroup var options: NodeOptions

    func run() async throws {
        let settings = try options.settings()
        try await Server(settings: settings, role: .apiAndWorkers, logger: NodeOptions.bootstrapLogging(settings)).run()
    }
}

/// What a node runs: `serve` (the API, with workers unless --workers 0) or `worker` (a GPU node: workers only,
/// with /healthz and /readyz on its port).
enum NodeRole {
    case apiAndWorkers
    case worker
}

/// Wires the parts together for `atelier serve` and `atelier worker`.
struct Server {
    let settings: ServeSettings
    let role: NodeRole
    let logger: Logger

    func run() async throws {
        let catalog: ModelCatalog
        do {
            catalog = try CatalogLoader.load(directory: settings.modelsDirectory)
        } catch let error as SettingError {
            throw ValidationError(error.description)
        }
        // Every worker loads one base and serves every catalog model on it, swapping the models' LoRAs per request.
        guard let modelID = catalog.ids.first, catalog[modelID] != nil else { throw ValidationError("empty catalog") }
        let entries = catalog.ids.compactMap { catalog[$0] }
        try Self.checkOneBase(entries)
        try FileManager.default.createDirectory(atPath: settings.dataDirectory, withIntermediateDirectories: true)
        let nodeID = StoreOpener.newNodeID()
        let store: any AtelierStore
        var postgres: PostgresStore?
        switch settings.database {
        case .sqlite:
            store = try await StoreOpener.open(settings.database, nodeID: nodeID, logger: logger, setting: databaseSetting).store
        case .postgres(let pg):
            // Its pool runs as the first service of the group (so it stops last); migrations wait for it below.
            let shared = PostgresStore(settings: pg, nodeID: nodeID, logger: logger)
            store = shared
            postgres = shared
        }
        logger.info("database: \(settings.database.summary); node \(nodeID)")
        let launch = try workerLaunch(for: entries)
        // Opened after everything else that may throw: its connection pool must be shut down (below) once made.
        let images = try await ImageStores.open(settings, nodeID: nodeID, logger: logger)
        let (storage, inputs) = (images.outputs, images.inputs)
        logger.info("images: \(settings.storage.summary)\(settings.s3Location.map { " at \($0.endpoint.absoluteString) (\($0.addressing.rawValue) addressing)" } ?? ""); output URLs: \(settings.outputURLs)")

        var supervisorConfig = SupervisorConfiguration()
        supervisorConfig.workerCount = settings.workers
        supervisorConfig.jobTimeout = .seconds(settings.jobTimeoutSeconds)
        supervisorConfig.drainTimeout = .seconds(settings.drainTimeoutSeconds)
        supervisorConfig.maxAttempts = settings.maxAttempts
        supervisorConfig.readyTimeout = .seconds(settings.workerReadyTimeoutSeconds)
        supervisorConfig.batchSize = settings.batchSize
        supervisorConfig.batchWindow = .milliseconds(settings.batchWindowMilliseconds)
        supervisorConfig.lease = .seconds(settings.leaseSeconds)
        logger.info("\(settings.batchSize > 1 ? "batching: up to \(settings.batchSize) images per pipeline call, window \(settings.batchWindowMilliseconds) ms" : "batching: off (--batch-size 1)"); worker ready timeout \(settings.workerReadyTimeoutSeconds) s")
        let metrics = Self.metricsEndpoint(settings, logger: logger)
        let supervisor = WorkerSupervisor(launch: launch, config: supervisorConfig, store: store, storage: storage, inputs: inputs,
                                          metrics: metrics.metrics, logger: logger)

        var apiConfig = APIConfiguration()
        apiConfig.publicBaseURL = settings.publicURL
        apiConfig.waitWindow = .seconds(settings.waitSeconds)
        apiConfig.maxConcurrentRuns = settings.maxConcurrentRuns
        apiConfig.maxWait = .seconds(settings.maxWaitSeconds)
        apiConfig.outboundPolicy = OutboundAddressPolicy(allowedHosts: settings.outboundAllow)
        apiConfig.imageLimits = ImageLimits(maxBytes: settings.inputMaxMegabytes * 1_000_000, maxPixels: settings.inputMaxMegapixels * 1_000_000)
        apiConfig.fetchLimits.totalTimeout = .seconds(settings.fetchTimeoutSeconds)
        apiConfig.outputURLs = settings.outputURLs
        apiConfig.outputRetention = settings.outputRetentionSeconds.map { .seconds($0) }
        var webhookConfig = WebhookConfiguration()
        webhookConfig.policy = apiConfig.outboundPolicy
        webhookConfig.links = OutputLinks(mode: settings.outputURLs, storage: storage)
        webhookConfig.catalog = catalog
        apiConfig.dialects.replicateOwner = settings.replicateOwner
        webhookConfig.replicateOwner = settings.replicateOwner
        let webhooks = WebhookDispatcher(outbox: store, jobs: store, keys: store, config: webhookConfig, metrics: metrics.metrics, logger: logger)
        // API nodes sweep (each may; the deletes and marks are idempotent), worker nodes do not.
        let sweeper: OutputSweeper? = settings.outputRetentionSeconds.map { [logger = self.logger] in
            OutputSweeper(store: store, storage: storage, retention: .seconds($0), metrics: metrics.metrics, logger: logger)
        }
        if let retention = settings.outputRetentionSeconds {
            self.logger.info("output retention: images of succeeded runs are deleted \(retention) s after they finished")
        }
        var limits = RateLimiter.Configuration()
        limits.requestsPerMinute = settings.rateLimit
        let api = AtelierAPI(catalog: catalog, keys: store, jobs: store, storage: storage, queue: supervisor, config: apiConfig,
                             limiter: RateLimiter(config: limits), inputStorage: inputs,
                             playground: Playground(catalog: catalog, webDirectory: settings.webDirectory, samples: settings.samplesDirectory),
                             metrics: metrics)

        let settings = self.settings
        let logger = self.logger
        let databaseSetting = self.databaseSetting
        let shared = postgres
        let role = self.role
        // Started once the database is migrated and the demo key made: then the HTTP server, the workers and the
        // webhook dispatcher. The drain service is last, so on SIGTERM it stops first: intake closes and running
        // jobs finish (or are requeued) before the HTTP server and the workers stop. Exit status 0.
        let server = Startup(logger: logger) {
            if let shared, case .postgres(let pg) = settings.database {
                do {
                    try await PostgresStore.probe(pg, logger: logger)
                    try await shared.migrate()
                } catch {
                    throw StartupFailure(message: "\(databaseSetting): cannot use \(settings.database.summary): \(error)")
                }
            }
            do {
                try await images.probe()
            } catch {
                throw StartupFailure(message: "--storage: cannot use \(settings.storage.summary): \(error)")
            }
            // A worker node serves no API: no demo key, no webhooks (the API nodes deliver them from the outbox).
            let demoKey = role == .worker ? nil : try await Self.firstStartKey(store: store, profile: settings.profile)
            let app = Application(
                router: role == .worker ? api.buildHealthRouter() : api.buildRouter(),
                server: AtelierAPI.server(),
                configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "Atelier"),
                services: role == .worker ? [supervisor] : [supervisor, webhooks] + (sweeper.map { [$0] } ?? []),
                onServerRunning: { channel in
                    let port = channel.localAddress?.port ?? settings.port
                    if role == .worker {
                        Banner.printWorker(host: settings.host, port: port, workers: settings.workers)
                    } else {
                        Banner.print(host: settings.host, port: port, profile: settings.profile, modelID: modelID, newKey: demoKey)
                    }
                },
                logger: logger
            )
            let drain = Drain(supervisor: supervisor, timeout: .seconds(settings.drainTimeoutSeconds), logger: logger)
            var listeners: [any Service] = [app]
            if let (host, port) = settings.metricsAddress, settings.metricsEnabled {
                listeners.append(Application(router: api.buildMetricsRouter(),
                                             configuration: .init(address: .hostname(host, port: port), serverName: "Atelier"),
                                             logger: logger))
            }
            return ServiceGroup(configuration: .init(services: listeners + [drain], logger: logger))
        }
        // On a shared database the pool comes first (it stops last), then the notification listener and the
        // watcher that polls for what notifications missed.
        var services: [any Service] = []
        if let postgres, case .postgres(let pg) = settings.database {
            let watcher = RunWatcher(events: supervisor.events, store: store, wake: supervisor.wake, logger: logger)
            let listener = PostgresEventListener(
                settings: pg, nodeID: nodeID, logger: logger,
                onEvent: { event in await Self.apply(event, to: supervisor) },
                onSubscribed: { await watcher.pollOnce() }
            )
            services = [postgres, listener, watcher]
        }
        let group = ServiceGroup(configuration: .init(services: services + [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let ran: Result<Void, any Error>
        do { try await group.run(); ran = .success(()) } catch { ran = .failure(error) }
        await images.close()
        do {
            try ran.get()
            logger.info("stopped")
        } catch let error as SupervisorError {
            logger.critical("\(error.description)")
            throw ExitCode(3)
        } catch let error as StartupFailure {
            logger.critical("\(error.message)")
            throw ExitCode(2)
        }
    }

    /// Where /metrics is served; swift-metrics' global system (which libraries record through) is bootstrapped
    /// here, once per process, with the same registry as Atelier's own metrics.
    static func metricsEndpoint(_ settings: ServeSettings, logger: Logger) -> MetricsEndpoint {
        let exporter = PrometheusExporter()
        guard settings.metricsEnabled else {
            logger.info("metrics: off (--metrics off)")
            return MetricsEndpoint(exporter: exporter, placement: .off, token: nil, recording: false)
        }
        MetricsSystem.bootstrap(exporter.factory)
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

    private var databaseSetting: String {
        settings.databaseURL == nil ? "--data-dir" : "--database"
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
    static func firstStartKey(store: any KeyStore, profile: Profile) async throws -> APIKey? {
        guard profile == .demo, try await store.keyCount() == 0 else { return nil }
        let account = try await store.ensureAccount(named: "demo")
        _ = try await store.addCredit(accountID: account, amount: Self.demoCredit, kind: .credit,
                                      reason: "demo credit on first start", now: Date())
        let key = APIKey.generate()
        try await store.addKey(key, accountID: account)
        return key
    }

    /// The models a worker pool serves share its base and safety checker; anything else is a configuration error
    /// found at start-up, not at the first request.
    static func checkOneBase(_ entries: [ModelEntry]) throws {
        guard let first = entries.first else { return }
        for e in entries.dropFirst() {
            if e.base != first.base {
                throw ValidationError("models \(first.id) and \(e.id) name different base weights; one server serves one base (its models differ by LoRA). Serve the other base from a second server with its own --models-dir")
            }
            if e.safetyChecker != first.safetyChecker {
                throw ValidationError("models \(first.id) and \(e.id) name different safety checkers; models on one base share one")
            }
        }
    }

    func workerLaunch(for entries: [ModelEntry]) throws -> WorkerLaunch {
        var args = ["serve", "--device", settings.device, "--threads", String(settings.workerThreads)]
        let first = entries[0]
        switch settings.profile {
        case .demo:
            // Each model with a LoRA gets a tiny one of its own (the first keeps tiny-lora.safetensors).
            let extra = entries.dropFirst().filter { $0.lora != nil }.map(\.id)
            let tiny = try TinyModel.ensure(at: settings.tinyModelDirectory, extraLoRAs: extra, python: settings.python,
                                            workerDirectory: settings.workerDirectory, logger: logger)
            logger.warning("DEMO PROFILE: \(entries.map(\.id).joined(separator: ", ")) run on a tiny model with RANDOM weights at \(tiny.path); every image is noise. Use --profile production with real weights for real images.")
            args += ["--base", tiny.appendingPathComponent("pipeline").path, "--allow-random-weights"]
            for (i, e) in entries.enumerated() {
                guard e.lora != nil else { args += ["--model", e.id]; continue }
                let file = i == 0 ? TinyModel.loraFile(tiny) : TinyModel.extraLoRAFile(tiny, modelID: e.id)
                args += ["--model", "\(e.id)=\(file.path)"]
            }
        case .production:
            guard let base = first.base.reference else {
                throw ValidationError("model \(first.id) names no base weights (base.folder or base.repo)")
            }
            args += ["--base", base]
            for e in entries {
                if let file = e.lora?.file {
                    args += ["--model", "\(e.id)=\(file)"]
                } else if let repo = e.lora?.repo {
                    args += ["--model", "\(e.id)=\(repo)" + (e.lora?.weightName.map { "#\($0)" } ?? "")]
                } else {
                    args += ["--model", e.id]
                }
            }
        }
        if let checker = first.safetyChecker { args += ["--safety-checker", checker] }
        // On a GPU the worker compiles its paths (go_fast's fp8 transformer, the standard one's compiled twin) after
        // it reports ready, and warms each at these sizes in the background; a size not warm yet runs eager. Its
        // compile artifacts stay in the data folder, so a restart here warms in seconds. A CPU compiles nothing.
        args += ["--warmup-sizes", SizeTable.allSizes.map { "\($0.width)x\($0.height)" }.joined(separator: ",")]
        args += ["--compile-cache", URL(fileURLWithPath: settings.dataDirectory).appendingPathComponent("compile-cache").path]
        return WorkerLaunch(python: settings.python, workerDirectory: settings.workerDirectory, arguments: args,
                            environment: ["OMP_NUM_THREADS": String(settings.workerThreads)])
    }
}

enum Banner {
    static func printWorker(host: String, port: Int, workers: Int) {
        let text = "\nAtelier worker node: \(workers) worker(s) on the shared queue; health on http://\(host):\(port)/healthz and /readyz\n"
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func print(host: String, port: Int, profile: Profile, modelID: String, newKey: APIKey?) {
        var lines = ["", "Atelier is listening on http://\(host):\(port) (profile: \(profile.rawValue))"]
        if profile == .demo {
            lines.append("DEMO PROFILE: the model's weights are RANDOM; images are noise. See README.md for real weights.")
        }
        let key = newKey?.plaintext ?? "<your API key>"
        if newKey != nil {
            lines += ["", "Created account \"demo\" with \(MoneyText.format(Server.demoCredit, "USD")) of credit and API key (shown once, keep it):", "    \(key)"]
        } else {
            lines += ["", "Create an API key with: atelier keys create --account NAME"]
        }
        lines += [
            "", "Try it:",
            "    curl -s http://\(host):\(port)/api/v4/run \\",
            "      -H 'Authorization: Bearer \(key)' \\",
            "      -H 'Content-Type: application/json' \\",
            "      -d '{\"model_id\": \"\(modelID)\", \"prompt\": \"Cute 3d Kawaii, a small cat in a teacup\", \"aspect_ratio\": \"1:1\"}'",
            "",
        ]
        // stdout, not the log: the key is shown to the person who started the server and never logged.
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }
}
