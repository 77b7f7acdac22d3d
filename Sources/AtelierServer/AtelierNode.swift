import AtelierCore
import AtelierEngine
import AtelierHTTP
import AtelierMetrics
import AtelierPersistence
import AtelierRuns
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// What a node runs: `serve` (the API, with workers unless --workers 0) or `worker` (a GPU node: workers only,
/// with /healthz and /readyz on its port).
public enum NodeRole: Sendable {
    case apiAndWorkers
    case worker
}

/// Why a node stopped on its own, with the exit status the command gives it.
public enum NodeFailure: Error {
    /// A worker cannot start and restarting cannot help (weights missing): exit status 3.
    case workerCannotStart
    /// The database or the image store could not be used at start-up: exit status 2.
    case startup
    public var exitCode: Int32 {
        switch self {
        case .workerCannotStart: 3
        case .startup: 2
        }
    }
}

/// A node assembled from its settings by `buildApplication`: the HTTP application with the services that make runs
/// happen, over its database and image store. `atelier serve` runs it whole (`run`); a test drives
/// `application` without a socket (`application.test(.router)`) on a temporary SQLite file.
public struct AtelierNode: Sendable {
    /// The router, and the services behind it: the workers, the webhook dispatcher and the input and output sweepers.
    public let application: Application<RouterResponder<AtelierRequestContext>>
    /// The node's database (accounts, keys, runs, the ledger).
    public let store: any AtelierStore
    let settings: ServeSettings
    let role: NodeRole
    let logger: Logger
    let supervisor: WorkerSupervisor
    let images: ImageStores
    let postgres: PostgresStore?
    let nodeID: String
    /// The API the routers are built from (the `--metrics-address` listener's too).
    let api: AtelierAPI
    /// The key made on the demo profile's first start, for the banner.
    let firstKey: FirstKey
}

/// Builds a node from its settings: the catalog, the database, the image store, the workers and the API. Nothing
/// runs until the node (or its application) does.
public func buildApplication(_ settings: ServeSettings, role: NodeRole = .apiAndWorkers, logger: Logger) async throws -> AtelierNode {
    let catalog = try CatalogLoader.load(directory: settings.modelsDirectory)
    // Every worker loads one base and serves every catalog model on it, swapping the models' LoRAs per request.
    let entries = catalog.ids.compactMap { catalog[$0] }
    try ServeSettings.checkOneBase(entries)
    try FileManager.default.createDirectory(atPath: settings.dataDirectory, withIntermediateDirectories: true)
    let nodeID = StoreOpener.newNodeID()
    let store: any AtelierStore
    var postgres: PostgresStore?
    switch settings.database {
    case .sqlite:
        store = try await StoreOpener.open(settings.database, nodeID: nodeID, logger: logger, setting: settings.databaseSetting).store
    case .postgres(let pg):
        // Its pool runs as the first service of the node (so it stops last); migrations wait for it (`run`).
        let shared = PostgresStore(settings: pg, nodeID: nodeID, logger: logger)
        store = shared
        postgres = shared
    }
    logger.info("database: \(settings.database.summary); node \(nodeID)")
    let launch = try settings.workerLaunch(for: entries, logger: logger)
    // Opened after everything else that may throw: its connection pool must be shut down (`run`) once made.
    let metrics = MetricsSetup.endpoint(settings, logger: logger)
    let images = try await ImageStores.open(settings, nodeID: nodeID, metrics: metrics.metrics, logger: logger)
    logger.info("images: \(settings.storage.summary)\(settings.s3Location.map { " at \($0.endpoint.absoluteString) (\($0.addressing.rawValue) addressing)" } ?? ""); output URLs: \(settings.outputURLs)")
    logger.info("\(settings.batchSize > 1 ? "batching: up to \(settings.batchSize) images per pipeline call, window \(settings.batchWindowMilliseconds) ms" : "batching: off (--batch-size 1)"); worker ready timeout \(settings.workerReadyTimeoutSeconds) s")

    let supervisor = WorkerSupervisor(launch: launch, config: settings.supervisorConfiguration, store: store, storage: images.outputs,
                                      inputs: images.inputs, storageBreaker: images.breaker, metrics: metrics.metrics,
                                      loras: settings.loraSources(images.loras, leases: store, node: nodeID, metrics: metrics.metrics),
                                      logger: logger)
    let webhooks = WebhookDispatcher(
        outbox: store, jobs: store, accounts: store, config: settings.webhookConfiguration,
        payloads: WebhookBodies(links: OutputLinks(mode: settings.outputURLs, storage: images.outputs), catalog: catalog,
                                replicateOwner: settings.replicateOwner),
        metrics: metrics.metrics, logger: logger)
    // API nodes sweep (each may; the deletes and marks are idempotent), worker nodes do not.
    let sweeper: OutputSweeper? = settings.outputRetentionSeconds.map {
        logger.info("output retention: images of succeeded runs are deleted \($0) s after they finished")
        return OutputSweeper(store: store, storage: images.outputs, retention: .seconds($0), metrics: metrics.metrics, logger: logger)
    }
    let inputSweeper = InputSweeper(store: store, inputs: images.inputs, grace: .seconds(settings.inputSweepGraceSeconds), logger: logger)
    let api = AtelierAPI(catalog: catalog, keys: store, jobs: store, storage: images.outputs, queue: supervisor,
                         config: settings.apiConfiguration, limiter: settings.rateLimiter, inputStorage: images.inputs, loraStore: images.loras, loraFetches: store,
                         playground: Playground(catalog: catalog, webDirectory: settings.webDirectory, samples: settings.samplesDirectory),
                         metrics: metrics)
    let firstKey = FirstKey()
    let modelID = catalog.ids.first ?? ""
    let application = Application(
        router: role == .worker ? api.buildHealthRouter() : api.buildRouter(),
        server: AtelierAPI.server(),
        configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "Atelier"),
        // A worker node serves no API: no webhooks (the API nodes deliver them from the outbox), no sweeping.
        services: role == .worker ? [supervisor] : [supervisor, webhooks, inputSweeper] + (sweeper.map { [$0] } ?? []),
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? settings.port
            if role == .worker {
                Banner.printWorker(host: settings.host, port: port, workers: settings.workers)
            } else {
                Banner.print(host: settings.host, port: port, profile: settings.profile, modelID: modelID, newKey: firstKey.key)
            }
        },
        logger: logger
    )
    return AtelierNode(application: application, store: store, settings: settings, role: role, logger: logger, supervisor: supervisor,
                       images: images, postgres: postgres, nodeID: nodeID, api: api, firstKey: firstKey)
}

/// The demo key made on first start, handed from start-up to the banner.
final class FirstKey: Sendable {
    private let value = Mutex<APIKey?>(nil)
    var key: APIKey? { value.withLock { $0 } }
    func set(_ key: APIKey?) { value.withLock { $0 = key } }
}

extension ServeSettings {
    /// The setting that named the database, for messages.
    var databaseSetting: String { databaseURL == nil ? "--data-dir" : "--database" }
}
