import AtelierCore
import AtelierServer
import ArgumentParser
import Foundation
import Logging

/// The settings `serve` and `worker` share, as flags; `ServeSettings.resolve` checks them with the environment.
struct NodeOptions: ParsableArguments {
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
    @Option(name: .customLong("log-format"), help: "text, or json: one JSON object per line with request_id on every line about a run (ATELIER_LOG_FORMAT; default text).") var logFormat: String?
    @Option(name: .customLong("log-level"), help: "trace … critical (ATELIER_LOG_LEVEL; default info).") var logLevel: String?
    @Option(name: .customLong("max-wait"), help: "Longest wait a request may ask for with wait or Prefer: wait=N (ATELIER_MAX_WAIT; default 600).") var maxWait: String?
    @Option(name: .customLong("rate-limit"), help: "Requests per minute per API key (ATELIER_RATE_LIMIT; default 600).") var rateLimit: String?
    @Option(name: .customLong("max-concurrent-runs"), help: "Runs an account may have queued or running (ATELIER_MAX_CONCURRENT_RUNS; default 16).") var maxConcurrentRuns: String?
    @Option(name: .customLong("drain-timeout"), help: "On SIGTERM, seconds running jobs get to finish before they are requeued for the next start (ATELIER_DRAIN_TIMEOUT; default 60).") var drainTimeout: String?
    @Option(name: .customLong("max-attempts"), help: "Attempts a run gets when its worker dies under it (ATELIER_MAX_ATTEMPTS; default 3).") var maxAttempts: String?
    @Option(name: .customLong("input-sweep-grace"), help: "Seconds after a run ended before its input images are deleted by the sweeper, if ending it could not (a bucket that was down) (ATELIER_INPUT_SWEEP_GRACE; default 60).") var inputSweepGrace: String?
    @Option(name: .customLong("max-loras"), help: "LoRAs one run may stack (lora_weights, extra_lora, loras), 0 to 16 (ATELIER_MAX_LORAS; default 3).") var maxLoras: String?
    @Option(name: .customLong("lora-max-mb"), help: "Largest LoRA file in MB; a larger one is cut off while downloading and its run fails with lora_invalid (ATELIER_LORA_MAX_MB; default 2000).") var loraMaxMB: String?
    @Option(name: .customLong("lora-disk-cache-mb"), help: "MB of LoRA files a worker node keeps on its disk, least recently used out (ATELIER_LORA_DISK_CACHE_MB; default 20000).") var loraDiskCacheMB: String?
    @Option(name: .customLong("lora-memory-mb"), help: "MB of LoRAs a worker keeps loaded in memory, least recently used out (ATELIER_LORA_MEMORY_MB; default 4000).") var loraMemoryMB: String?
    @Option(name: .customLong("outbound-allow"), help: "Comma-separated hosts webhooks and image URLs may reach although they resolve to internal addresses (ATELIER_OUTBOUND_ALLOW; default none).") var outboundAllow: String?
    @Option(name: .customLong("input-max-mb"), help: "Largest input image (image, mask) in MB, at most 25 (ATELIER_INPUT_MAX_MB; default 20).") var inputMaxMB: String?
    @Option(name: .customLong("input-max-megapixels"), help: "Largest input image in megapixels, read from its header before decoding (ATELIER_INPUT_MAX_MEGAPIXELS; default 40).") var inputMaxMegapixels: String?
    @Option(name: .customLong("web-dir"), help: "Folder of the web pages' assets, app.js and style.css (ATELIER_WEB_DIR; default ./web).") var webDir: String?
    @Option(name: .customLong("worker-ready-timeout"), help: "Seconds a worker may take to load its weights and run one eager step before it is restarted; compiled paths warm up after ready, in the background (ATELIER_WORKER_READY_TIMEOUT; default 1800).") var workerReadyTimeout: String?
    @Option(name: .customLong("batch-size"), help: "Most images one pipeline call makes from compatible queued runs (same model, size, steps, guidance, LoRA scale and go_fast); 1 turns batching off. Pays on CPUs and for small images, not at 1024² on an H100 (ATELIER_BATCH_SIZE; default 1).") var batchSize: String?
    @Option(name: .customLong("batch-window-ms"), help: "With --batch-size above 1, milliseconds a run that did not fill its batch waits for more compatible runs (ATELIER_BATCH_WINDOW_MS; default 0).") var batchWindowMs: String?
    @Option(help: "sqlite:PATH, or postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=…&pool_size=N] shared by several nodes (ATELIER_DATABASE; default sqlite:DATA_DIR/atelier.sqlite).") var database: String?
    @Option(help: "Seconds a worker's claim on a run holds without renewal; a run whose node died is retried after it (ATELIER_LEASE; default 30).") var lease: String?
    @Option(name: .customLong("storage"), help: "Where images (outputs and inputs) live: file:PATH or s3://BUCKET[/PREFIX], with credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (ATELIER_STORAGE; default file:DATA_DIR).") var storage: String?
    @Option(name: .customLong("s3-endpoint"), help: "The S3 server, such as http://127.0.0.1:9000 (ATELIER_S3_ENDPOINT; default AWS's endpoint for the region).") var s3Endpoint: String?
    @Option(name: .customLong("s3-region"), help: "The bucket's region (ATELIER_S3_REGION or AWS_REGION; default us-east-1).") var s3Region: String?
    @Option(name: .customLong("s3-addressing"), help: "path (https://endpoint/bucket/key) or virtual-host (https://bucket.endpoint/key) (ATELIER_S3_ADDRESSING; default path with --s3-endpoint, virtual-host on AWS).") var s3Addressing: String?
    @Option(name: .customLong("output-urls"), help: "proxy (this API streams each image), presigned (it redirects to a short-lived presigned URL of the bucket) or public (links point at --output-public-url) (ATELIER_OUTPUT_URLS; default proxy).") var outputURLs: String?
    @Option(name: .customLong("presign-expiry"), help: "Seconds a presigned image URL stays valid (ATELIER_PRESIGN_EXPIRY; default 900).") var presignExpiry: String?
    @Option(name: .customLong("output-public-url"), help: "With --output-urls public, the CDN or public bucket URL that serves the store's object keys (ATELIER_OUTPUT_PUBLIC_URL).") var outputPublicURL: String?
    @Option(name: .customLong("replicate-owner"), help: "The owner of every catalog model in the Replicate-compatible API: /v1/models/OWNER/MODEL_ID (ATELIER_REPLICATE_OWNER; default atelier).") var replicateOwner: String?
    @Option(name: .customLong("fetch-timeout"), help: "Seconds an image URL may take to download in full (ATELIER_FETCH_TIMEOUT; default 20).") var fetchTimeout: String?
    @Option(name: .customLong("output-retention"), help: "Delete succeeded runs' output images this long after they finished, such as 30d or 12h; /check then answers output_expired for the run (ATELIER_OUTPUT_RETENTION; default keep).") var outputRetention: String?
    @Option(name: .customLong("metrics"), help: "on or off: off records no metrics at all and serves no /metrics (ATELIER_METRICS; default on).") var metrics: String?
    @Option(name: .customLong("metrics-address"), help: "HOST:PORT of a listener serving GET /metrics alone, apart from the API port (ATELIER_METRICS_ADDRESS; default: /metrics on the API port in the demo profile, off in production).") var metricsAddress: String?
    @Option(name: .customLong("metrics-token"), help: "A token scrapes must send as Authorization: Bearer TOKEN; with it, production serves /metrics on the API port too (ATELIER_METRICS_TOKEN).") var metricsToken: String?

    @Option(name: .customLong("storage-timeout"), help: "Seconds an s3:// store has to answer a call, and the longest silence while an image streams (ATELIER_STORAGE_TIMEOUT; default 5).") var storageTimeout: String?
    @Option(name: .customLong("storage-connect-timeout"), help: "Seconds to connect to the s3:// store (ATELIER_STORAGE_CONNECT_TIMEOUT; default 2).") var storageConnectTimeout: String?
    @Option(name: .customLong("storage-min-rate"), help: "Slowest upload to the s3:// store accepted, in kB/s: an upload may take --storage-timeout plus its size at this rate (ATELIER_STORAGE_MIN_RATE; default 1000).") var storageMinRate: String?
    @Option(name: .customLong("storage-attempts"), help: "Tries per storage call after a refused connection or a 5xx; a timeout is not retried at once (ATELIER_STORAGE_ATTEMPTS; default 3).") var storageAttempts: String?
    @Option(name: .customLong("storage-breaker-failures"), help: "Failed storage calls in a row after which calls are refused at once (503 storage_unavailable) for --storage-breaker-cooldown (ATELIER_STORAGE_BREAKER_FAILURES; default 3).") var storageBreakerFailures: String?
    @Option(name: .customLong("storage-breaker-cooldown"), help: "Seconds storage calls are refused once the breaker opened, before one trial call (ATELIER_STORAGE_BREAKER_COOLDOWN; default 5).") var storageBreakerCooldown: String?

    func settings() throws -> ServeSettings {
        var flags = ServeSettings.Flags()
        flags.host = host
        flags.port = port
        flags.dataDir = dataDir
        flags.profile = profile
        flags.workers = workers
        flags.python = python
        flags.workerDir = workerDir
        flags.modelsDir = modelsDir
        flags.workerThreads = workerThreads
        flags.device = device
        flags.jobTimeout = jobTimeout
        flags.wait = wait
        flags.publicURL = publicURL
        flags.logLevel = logLevel
        flags.rateLimit = rateLimit
        flags.maxWait = maxWait
        flags.maxConcurrentRuns = maxConcurrentRuns
        flags.drainTimeout = drainTimeout
        flags.maxAttempts = maxAttempts
        flags.inputSweepGrace = inputSweepGrace
        flags.maxLoras = maxLoras
        flags.loraMaxMB = loraMaxMB
        flags.loraDiskCacheMB = loraDiskCacheMB
        flags.loraMemoryMB = loraMemoryMB
        flags.outboundAllow = outboundAllow
        flags.inputMaxMB = inputMaxMB
        flags.inputMaxMegapixels = inputMaxMegapixels
        flags.fetchTimeout = fetchTimeout
        flags.webDir = webDir
        flags.workerReadyTimeout = workerReadyTimeout
        flags.batchSize = batchSize
        flags.batchWindowMs = batchWindowMs
        flags.database = database
        flags.lease = lease
        flags.storage = storage
        flags.s3Endpoint = s3Endpoint
        flags.s3Region = s3Region
        flags.s3Addressing = s3Addressing
        flags.outputURLs = outputURLs
        flags.presignExpiry = presignExpiry
        flags.outputPublicURL = outputPublicURL
        flags.replicateOwner = replicateOwner
        flags.metrics = metrics
        flags.metricsAddress = metricsAddress
        flags.metricsToken = metricsToken
        flags.logFormat = logFormat
        flags.outputRetention = outputRetention
        flags.storageTimeout = storageTimeout
        flags.storageConnectTimeout = storageConnectTimeout
        flags.storageMinRate = storageMinRate
        flags.storageAttempts = storageAttempts
        flags.storageBreakerFailures = storageBreakerFailures
        flags.storageBreakerCooldown = storageBreakerCooldown
        do {
            return try ServeSettings.resolve(flags: flags, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// Builds the node and runs it until it stops; a configuration it cannot use is a usage error, and a node that
    /// stopped on its own exits with its status.
    static func run(_ settings: ServeSettings, role: NodeRole) async throws {
        let logger = bootstrapLogging(settings)
        let node: AtelierNode
        do {
            node = try await buildApplication(settings, role: role, logger: logger)
        } catch let error as SettingError {
            throw ValidationError(error.description)
        } catch let error as SetupError {
            throw ValidationError(error.description)
        }
        do {
            // Drained, nothing is lost by exiting: a service that will not stop does not hold the process.
            try await node.run(forceStop: { Foundation.exit(0) })
        } catch let failure as NodeFailure {
            throw ExitCode(failure.exitCode)
        }
    }

    /// Logs to standard error at the configured level; SIGPIPE ignored, so writing to a worker that just died
    /// fails with EPIPE instead of killing the server.
    static func bootstrapLogging(_ settings: ServeSettings) -> Logger {
        signal(SIGPIPE, SIG_IGN)
        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        if settings.logFormat == .json {
            let sink = JSONLineSink()
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label, sink: sink)
                handler.logLevel = level
                return handler
            }
        } else {
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
        return Logger(label: "atelier")
    }
}
