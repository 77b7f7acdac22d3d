import AtelierCore
import AtelierEngine
import AtelierHTTP
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

    @Option(help: "Address to listen on (ATELIER_HOST; default 127.0.0.1).") var host: String?
    @Option(help: "Port to listen on; 0 picks a free one (ATELIER_PORT; default 8080).") var port: String?
    @Option(name: .customLong("data-dir"), help: "Folder for the SQLite file, outputs and the demo model (ATELIER_DATA_DIR; default ./data).") var dataDir: String?
    @Option(help: "demo (tiny random model) or production (the catalog's real weights) (ATELIER_PROFILE; default demo).") var profile: String?
    @Option(help: "Number of worker processes; 0 for an API-only node on a shared PostgreSQL database (ATELIER_WORKERS; default 1).") var workers: String?
    @Option(help: "Python interpreter with the worker's packages (ATELIER_PYTHON; default .venv/bin/python).") var python: String?
    @Option(name: .customLong("worker-dir"), help: "Folder holding the atelier_worker package (ATELIER_WORKER_DIR; default ./worker).") var workerDir: String?
    @Option(name: .customLong("models-dir"), help: "Folder of model catalog files (ATELIER_MODELS_DIR; default ./models).") var modelsDir: String?
    @Option(name: .customLong("worker-threads"), help: "Torch threads per CPU worker (ATELIER_WORKER_THREADS; default 1).") var workerThreads: String?
    @Option(help: "auto, cpu, cuda or cuda:N (ATELIER_DEVICE; default auto).") var device: String?
    @Option(name: .customLong("job-timeout"), help: "Seconds a run may take on a worker (ATELIER_JOB_TIMEOUT; default 300).") var jobTimeout: String?
    @Option(help: "Seconds /api/v4/run waits before answering with the request_id only (ATELIER_WAIT; default 60).") var wait: String?
    @Option(name: .customLong("public-url"), help: "Base URL for output links (ATELIER_PUBLIC_URL; default: from the request's Host).") var publicURL: String?
    @Option(name: .customLong("log-level"), help: "trace … critical (ATELIER_LOG_LEVEL; default info).") var logLevel: String?
    @Option(name: .customLong("max-wait"), help: "Longest wait a request may ask for with wait or Prefer: wait=N (ATELIER_MAX_WAIT; default 600).") var maxWait: String?
    @Option(name: .customLong("rate-limit"), help: "Requests per minute per API key (ATELIER_RATE_LIMIT; default 600).") var rateLimit: String?
    @Option(name: .customLong("max-concurrent-runs"), help: "Runs an account may have queued or running (ATELIER_MAX_CONCURRENT_RUNS; default 16).") var maxConcurrentRuns: String?
    @Option(name: .customLong("drain-timeout"), help: "On SIGTERM, seconds running jobs get to finish before they are requeued for the next start (ATELIER_DRAIN_TIMEOUT; default 60).") var drainTimeout: String?
    @Option(name: .customLong("max-attempts"), help: "Attempts a run gets when its worker dies under it (ATELIER_MAX_ATTEMPTS; default 3).") var maxAttempts: String?
    @Option(name: .customLong("outbound-allow"), help: "Comma-separated hosts webhooks and image URLs may reach although they resolve to internal addresses (ATELIER_OUTBOUND_ALLOW; default none).") var outboundAllow: String?
    @Option(name: .customLong("input-max-mb"), help: "Largest input image (image, mask) in MB, at most 25 (ATELIER_INPUT_MAX_MB; default 20).") var inputMaxMB: String?
    @Option(name: .customLong("input-max-megapixels"), help: "Largest input image in megapixels, read from its header before decoding (ATELIER_INPUT_MAX_MEGAPIXELS; default 40).") var inputMaxMegapixels: String?
    @Option(name: .customLong("web-dir"), help: "Folder of the web pages' assets, app.js and style.css (ATELIER_WEB_DIR; default ./web).") var webDir: String?
    @Option(name: .customLong("worker-ready-timeout"), help: "Seconds a worker may take to load its model and warm up before it is restarted; on a GPU the go_fast compile takes minutes (ATELIER_WORKER_READY_TIMEOUT; default 1800).") var workerReadyTimeout: String?
    @Option(name: .customLong("batch-size"), help: "Most images one pipeline call makes from compatible queued runs (same model, size, steps, guidance, LoRA scale and go_fast); 1 turns batching off. Pays on CPUs and for small images, not at 1024² on an H100 (ATELIER_BATCH_SIZE; default 1).") var batchSize: String?
    @Option(name: .customLong("batch-window-ms"), help: "With --batch-size above 1, milliseconds a run that did not fill its batch waits for more compatible runs (ATELIER_BATCH_WINDOW_MS; default 0).") var batchWindowMs: String?
    @Option(help: "sqlite:PATH, or postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=…&pool_size=N] shared by several nodes (ATELIER_DATABASE; default sqlite:DATA_DIR/atelier.sqlite).") var database: String?
    @Option(help: "Seconds a worker's claim on a run holds without renewal; a run whose node died is retried after it (ATELIER_LEASE; default 30).") var lease: String?
    @Option(name: .customLong("fetch-timeout"), help: "Seconds an image URL may take to download in full (ATELIER_FETCH_TIMEOUT; default 20).") var fetchTimeout: String?

    func run() async throws {
        let settings: ServeSettings
        do {
            settings = try ServeSettings.resolve(
                flags: .init(host: host, port: port, dataDir: dataDir, profile: profile, workers: workers, python: python,
                             workerDir: workerDir, modelsDir: modelsDir, workerThreads: workerThreads, device: device,
                             jobTimeout: jobTimeout, wait: wait, publicURL: publicURL, logLevel: logLevel,
                             rateLimit: rateLimit, maxWait: maxWait, maxConcurrentRuns: maxConcurrentRuns,
                             drainTimeout: drainTimeout, maxAttempts: maxAttempts, outboundAllow: outboundAllow,
                             inputMaxMB: inputMaxMB, inputMaxMegapixels: inputMaxMegapixels, fetchTimeout: fetchTimeout,
                             webDir: webDir, workerReadyTimeout: workerReadyTimeout, batchSize: batchSize, batchWindowMs: batchWindowMs,
                             database: database, lease: lease),
                environment: ProcessInfo.processInfo.environment
            )
        } catch {
            throw ValidationError(error.description)
        }
        // Writing to a worker that just died must fail with EPIPE, not kill the server.
        signal(SIGPIPE, SIG_IGN)
        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "atelier")
        try await Server(settings: settings, logger: logger).run()
    }
}

/// Wires the parts together for `atelier serve`.
struct Server {
    let settings: ServeSettings
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
        let storage = try LocalFolderStorage(root: settings.outputsDirectory)
        let inputs = try LocalFolderStorage(root: settings.inputsDirectory)
        let launch = try workerLaunch(for: entries)

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
        let supervisor = WorkerSupervisor(launch: launch, config: supervisorConfig, store: store, storage: storage, inputs: inputs,
                                          logger: logger)

        var apiConfig = APIConfiguration()
        apiConfig.publicBaseURL = settings.publicURL
        apiConfig.waitWindow = .seconds(settings.waitSeconds)
        apiConfig.maxConcurrentRuns = settings.maxConcurrentRuns
        apiConfig.maxWait = .seconds(settings.maxWaitSeconds)
        apiConfig.outboundPolicy = OutboundAddressPolicy(allowedHosts: settings.outboundAllow)
        apiConfig.imageLimits = ImageLimits(maxBytes: settings.inputMaxMegabytes * 1_000_000, maxPixels: settings.inputMaxMegapixels * 1_000_000)
        apiConfig.fetchLimits.totalTimeout = .seconds(settings.fetchTimeoutSeconds)
        var webhookConfig = WebhookConfiguration()
        webhookConfig.policy = apiConfig.outboundPolicy
        let webhooks = WebhookDispatcher(outbox: store, jobs: store, keys: store, config: webhookConfig, logger: logger)
        var limits = RateLimiter.Configuration()
        limits.requestsPerMinute = settings.rateLimit
        let api = AtelierAPI(catalog: catalog, keys: store, jobs: store, storage: storage, queue: supervisor, config: apiConfig,
                             limiter: RateLimiter(config: limits), inputStorage: inputs,
                             playground: Playground(catalog: catalog, webDirectory: settings.webDirectory, samples: settings.samplesDirectory))

        let settings = self.settings
        let logger = self.logger
        let databaseSetting = self.databaseSetting
        let shared = postgres
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
            let demoKey = try await Self.firstStartKey(store: store, profile: settings.profile)
            let app = Application(
                router: api.buildRouter(),
                server: AtelierAPI.server(),
                configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "Atelier"),
                services: [supervisor, webhooks],
                onServerRunning: { channel in
                    let port = channel.localAddress?.port ?? settings.port
                    Banner.print(host: settings.host, port: port, profile: settings.profile, modelID: modelID, newKey: demoKey)
                },
                logger: logger
            )
            let drain = Drain(supervisor: supervisor, timeout: .seconds(settings.drainTimeoutSeconds), logger: logger)
            return ServiceGroup(configuration: .init(services: [app, drain], logger: logger))
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
        do {
            try await group.run()
            logger.info("stopped")
        } catch let error as SupervisorError {
            logger.critical("\(error.description)")
            throw ExitCode(3)
        } catch let error as StartupFailure {
            logger.critical("\(error.message)")
            throw ExitCode(2)
        }
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
        // On a GPU with fp8 the worker compiles its go_fast transformer and runs it once at each of these before
        // it reports ready (minutes on FLUX.1-dev: --worker-ready-timeout allows for it); elsewhere it ignores them.
        args += ["--warmup-sizes", SizeTable.allSizes.map { "\($0.width)x\($0.height)" }.joined(separator: ",")]
        return WorkerLaunch(python: settings.python, workerDirectory: settings.workerDirectory, arguments: args,
                            environment: ["OMP_NUM_THREADS": String(settings.workerThreads)])
    }
}

enum Banner {
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
