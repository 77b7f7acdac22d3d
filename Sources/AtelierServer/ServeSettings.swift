import AtelierCore
import AtelierHTTP
import AtelierPersistence
import AtelierS3
import AtelierStorage
import Foundation

/// Which weights the server runs. `demo` uses the tiny random model built on first start; `production` uses the
/// catalog's real weights and refuses to start without them.
public enum Profile: String, CaseIterable, Sendable {
    case demo
    case production
}

public struct SettingError: Error, CustomStringConvertible {
    public let setting: String
    public let why: String
    public var description: String { "invalid setting \(setting): \(why)" }
}

/// The node cannot be set up as configured (a database that cannot be opened, models that cannot share a
/// worker); the command reports it as a usage error.
public struct SetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The one place that reads configuration: command-line flags first, then `ATELIER_…` environment variables, then
/// the embedded defaults. Every value is checked here, so a bad one stops start-up naming the setting.
public struct ServeSettings: Sendable {
    public init() {}

    public var host = "127.0.0.1"
    public var port = 8080
    public var dataDirectory = "data"
    public var profile = Profile.demo
    public var workers = 1
    public var python = ".venv/bin/python"
    public var workerDirectory = "worker"
    public var modelsDirectory = "models"
    public var webDirectory = "web"
    public var workerThreads = 1
    public var device = "auto"
    public var jobTimeoutSeconds = 300
    public var waitSeconds = 60
    public var publicURL: String?
    /// The owner of every model in the Replicate-compatible API (`owner/model_id`).
    public var replicateOwner = "atelier"
    public var logLevel = "info"
    public enum LogFormat: String, Sendable { case text, json }
    public var logFormat = LogFormat.text
    public var rateLimit = 600
    public var maxWaitSeconds = 600
    public var maxConcurrentRuns = 16
    public var drainTimeoutSeconds = 60
    public var maxAttempts = 3
    /// Seconds after a run ended before the input sweeper deletes inputs its end could not (InputSweeper).
    public var inputSweepGraceSeconds = 60
    /// Per-request LoRAs (`--max-loras`, `--lora-max-mb`, `--lora-disk-cache-mb`, `--lora-memory-mb`, tokens).
    public var loras = LoRASettings()
    /// Hosts webhooks and image URLs may reach although they resolve to internal addresses.
    public var outboundAllow: Set<String> = []
    /// Input images: largest file (MB) and pixel count (megapixels); seconds an image URL may take to download.
    public var inputMaxMegabytes = 20
    public var inputMaxMegapixels = 40
    public var fetchTimeoutSeconds = 20
    /// Loading FLUX.1-dev's 34 GB from a slow disk can take minutes; compiles come after ready and never count.
    public var workerReadyTimeoutSeconds = 1800
    /// `--metrics-address`: /metrics on a listener of its own; nil: on the API port (demo, or with a token) or off.
    public var metricsAddress: (host: String, port: Int)?
    /// `--metrics-token`: never logged.
    public var metricsToken: String?
    /// `--metrics off`: nothing recorded, no /metrics anywhere (and the baseline of bench/metrics_overhead.py).
    public var metricsEnabled = true
    /// Images per pipeline call from compatible queued runs; 1: no batching (SupervisorConfiguration.batchSize).
    public var batchSize = 1
    public var batchWindowMilliseconds = 0
    /// nil: the SQLite file in the data folder.
    public var databaseURL: DatabaseURL?
    /// How long a claim holds a run without renewal (SupervisorConfiguration.lease).
    public var leaseSeconds = 30
    /// nil: the folder `dataDirectory` (outputs/ and inputs/ in it).
    public var storageLocation: StorageLocation?
    /// The S3 endpoint; nil: AWS's for the region.
    public var s3Endpoint: URL?
    public var s3Region = "us-east-1"
    /// nil: path-style for a configured endpoint (every S3-compatible server), virtual-host for AWS.
    public var s3Addressing: S3Location.Addressing?
    /// From AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; only for an s3:// store.
    public var credentials: AWSCredentials?
    public var outputURLs = OutputURLMode.proxy
    /// Deadlines, retries and the circuit breaker of an s3:// store (`--storage-timeout` and the rest).
    public var storageLimits = StorageLimits()
    /// `--output-retention`: succeeded runs' images older than this are deleted (OutputSweeper); nil: kept.
    public var outputRetentionSeconds: Int?

    public struct Flags {
        public init() {}
        public var host: String?
        public var port: String?
        public var dataDir: String?
        public var profile: String?
        public var workers: String?
        public var python: String?
        public var workerDir: String?
        public var modelsDir: String?
        public var workerThreads: String?
        public var device: String?
        public var jobTimeout: String?
        public var wait: String?
        public var publicURL: String?
        public var logLevel: String?
        public var rateLimit: String?
        public var maxWait: String?
        public var maxConcurrentRuns: String?
        public var drainTimeout: String? = nil
        public var maxAttempts: String? = nil
        public var inputSweepGrace: String? = nil
        public var outboundAllow: String? = nil
        public var inputMaxMB: String? = nil
        public var inputMaxMegapixels: String? = nil
        public var fetchTimeout: String? = nil
        public var webDir: String? = nil
        public var workerReadyTimeout: String? = nil
        public var batchSize: String? = nil
        public var batchWindowMs: String? = nil
        public var database: String? = nil
        public var lease: String? = nil
        public var storage: String? = nil
        public var s3Endpoint: String? = nil
        public var s3Region: String? = nil
        public var s3Addressing: String? = nil
        public var outputURLs: String? = nil
        public var presignExpiry: String? = nil
        public var outputPublicURL: String? = nil
        public var replicateOwner: String? = nil
        public var metrics: String? = nil
        public var metricsAddress: String? = nil
        public var metricsToken: String? = nil
        public var logFormat: String? = nil
        public var outputRetention: String? = nil
        public var storageTimeout: String? = nil
        public var storageConnectTimeout: String? = nil
        public var storageMinRate: String? = nil
        public var storageAttempts: String? = nil
        public var storageBreakerFailures: String? = nil
        public var storageBreakerCooldown: String? = nil
        public var maxLoras: String? = nil
        public var loraMaxMB: String? = nil
        public var loraDiskCacheMB: String? = nil
        public var loraMemoryMB: String? = nil
    }

    public static func resolve(flags: Flags, environment: [String: String]) throws(SettingError) -> ServeSettings {
        let source = SettingSource(environment: environment)
        var s = ServeSettings()
        try s.resolveNode(flags, source)
        try s.resolveLimits(flags, source)
        try s.resolveOutputs(flags, source)
        try s.resolveStorage(flags: flags, environment: environment, pick: source.pick, int: source.int)
        try s.resolveLogsAndMetrics(flags, source)
        s.loras = try LoRASettings.resolve(flags, source)
        return s
    }

    /// Where the node listens, keeps its data and runs its workers, and what database it shares.
    mutating func resolveNode(_ flags: Flags, _ source: SettingSource) throws(SettingError) {
        if let (v, name) = source.pick(flags.host, "HOST") {
            guard !v.isEmpty, !v.contains(" ") else { throw SettingError(setting: name, why: "must be a host name or address; got \"\(v)\"") }
            host = v
        }
        port = try source.int(flags.port, "PORT", 0...65535, port)
        if let (v, _) = source.pick(flags.dataDir, "DATA_DIR") { dataDirectory = v }
        if let (v, name) = source.pick(flags.profile, "PROFILE") {
            guard let p = Profile(rawValue: v) else {
                throw SettingError(setting: name, why: "must be demo or production; got \"\(v)\"")
            }
            profile = p
        }
        workers = try source.int(flags.workers, "WORKERS", 0...64, workers)
        if let (v, name) = source.pick(flags.database, "DATABASE") {
            do { databaseURL = try DatabaseURL.parse(v) } catch { throw SettingError(setting: name, why: error.why) }
        }
        if workers == 0, database.isSQLite {
            throw SettingError(setting: "--workers", why: "0 (an API-only node) needs a shared PostgreSQL --database whose other nodes run workers; with SQLite nothing would run the queue")
        }
        leaseSeconds = try source.int(flags.lease, "LEASE", 2...3_600, leaseSeconds)
        if let (v, _) = source.pick(flags.python, "PYTHON") { python = v }
        if let (v, _) = source.pick(flags.workerDir, "WORKER_DIR") { workerDirectory = v }
        if let (v, _) = source.pick(flags.modelsDir, "MODELS_DIR") { modelsDirectory = v }
        if let (v, _) = source.pick(flags.webDir, "WEB_DIR") { webDirectory = v }
        workerThreads = try source.int(flags.workerThreads, "WORKER_THREADS", 1...256, workerThreads)
        if let (v, name) = source.pick(flags.device, "DEVICE") {
            guard v == "auto" || v == "cpu" || v == "cuda" || v.hasPrefix("cuda:") else {
                throw SettingError(setting: name, why: "must be auto, cpu, cuda or cuda:N; got \"\(v)\"")
            }
            device = v
        }
    }

    /// Time limits, waits, rates, and the bounds on what clients send and make.
    mutating func resolveLimits(_ flags: Flags, _ source: SettingSource) throws(SettingError) {
        let whole: [(WritableKeyPath<ServeSettings, Int>, String?, String, ClosedRange<Int>)] = [
            (\.jobTimeoutSeconds, flags.jobTimeout, "JOB_TIMEOUT", 1...86_400),
            (\.waitSeconds, flags.wait, "WAIT", 0...3_600),
            (\.maxWaitSeconds, flags.maxWait, "MAX_WAIT", 0...600),
            (\.rateLimit, flags.rateLimit, "RATE_LIMIT", 1...10_000_000),
            (\.maxConcurrentRuns, flags.maxConcurrentRuns, "MAX_CONCURRENT_RUNS", 1...1_000_000),
            (\.drainTimeoutSeconds, flags.drainTimeout, "DRAIN_TIMEOUT", 0...86_400),
            (\.maxAttempts, flags.maxAttempts, "MAX_ATTEMPTS", 1...100),
            (\.inputSweepGraceSeconds, flags.inputSweepGrace, "INPUT_SWEEP_GRACE", 1...86_400),
            (\.inputMaxMegabytes, flags.inputMaxMB, "INPUT_MAX_MB", 1...25),
            (\.inputMaxMegapixels, flags.inputMaxMegapixels, "INPUT_MAX_MEGAPIXELS", 1...400),
            (\.fetchTimeoutSeconds, flags.fetchTimeout, "FETCH_TIMEOUT", 1...600),
            (\.batchSize, flags.batchSize, "BATCH_SIZE", 1...64),
            (\.batchWindowMilliseconds, flags.batchWindowMs, "BATCH_WINDOW_MS", 0...10_000),
            (\.workerReadyTimeoutSeconds, flags.workerReadyTimeout, "WORKER_READY_TIMEOUT", 10...86_400),
        ]
        for (setting, flag, env, range) in whole {
            self[keyPath: setting] = try source.int(flag, env, range, self[keyPath: setting])
        }
        if let (v, _) = source.pick(flags.outboundAllow, "OUTBOUND_ALLOW") {
            outboundAllow = Set(v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty })
        }
    }

    /// How answers name the server and its models, and how long images are kept.
    mutating func resolveOutputs(_ flags: Flags, _ source: SettingSource) throws(SettingError) {
        if let (v, name) = source.pick(flags.outputRetention, "OUTPUT_RETENTION"), v != "keep" {
            guard let seconds = DurationText.seconds(v), seconds >= 1, seconds <= 3650 * 86_400 else {
                throw SettingError(setting: name, why: "must be keep, or a time such as 30d, 12h, 90m or 45s (at least 1s); got \"\(v)\"")
            }
            outputRetentionSeconds = Int(seconds.rounded())
        }
        if let (v, name) = source.pick(flags.publicURL, "PUBLIC_URL") {
            guard let url = URL(string: v), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                throw SettingError(setting: name, why: "must be an http(s) URL such as https://images.example.com; got \"\(v)\"")
            }
            publicURL = v.hasSuffix("/") ? String(v.dropLast()) : v
        }
        if let (v, name) = source.pick(flags.replicateOwner, "REPLICATE_OWNER") {
            // Replicate's owner names: letters, digits, - and _ (they are a path segment of /v1/models/{owner}/…).
            guard !v.isEmpty, v.count <= 64, v.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                throw SettingError(setting: name, why: "must be 1 to 64 letters, digits, - or _, such as atelier; got \"\(v)\"")
            }
            replicateOwner = v
        }
    }

    /// What the node logs, and where /metrics is served.
    mutating func resolveLogsAndMetrics(_ flags: Flags, _ source: SettingSource) throws(SettingError) {
        if let (v, name) = source.pick(flags.logFormat, "LOG_FORMAT") {
            guard let format = LogFormat(rawValue: v) else { throw SettingError(setting: name, why: "must be text or json; got \"\(v)\"") }
            logFormat = format
        }
        if let (v, name) = source.pick(flags.logLevel, "LOG_LEVEL") {
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(v) else {
                throw SettingError(setting: name, why: "must be one of trace, debug, info, notice, warning, error, critical; got \"\(v)\"")
            }
            logLevel = v
        }
        if let (v, name) = source.pick(flags.metrics, "METRICS") {
            guard v == "on" || v == "off" else { throw SettingError(setting: name, why: "must be on or off; got \"\(v)\"") }
            metricsEnabled = v == "on"
        }
        if let (v, name) = source.pick(flags.metricsAddress, "METRICS_ADDRESS") {
            let parts = v.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (0...65535).contains(port) else {
                throw SettingError(setting: name, why: "must be HOST:PORT, such as 127.0.0.1:9464; got \"\(v)\"")
            }
            metricsAddress = (String(parts[0]), port)
        }
        if let (v, name) = source.pick(flags.metricsToken, "METRICS_TOKEN") {
            guard v.count >= 16 else { throw SettingError(setting: name, why: "must be at least 16 characters (a random string); the value is not shown") }
            metricsToken = v
        }
    }

    /// `--database`, else the SQLite file in the data folder (`sqlite:./data/atelier.sqlite` by default).
    public var database: DatabaseURL {
        databaseURL ?? .sqlite(path: URL(fileURLWithPath: dataDirectory).appendingPathComponent("atelier.sqlite").path)
    }
    public var storage: StorageLocation { storageLocation ?? .folder(path: dataDirectory) }
    public var outputsDirectory: URL {
        if case .folder(let path) = storage { return URL(fileURLWithPath: path).appendingPathComponent("outputs") }
        return URL(fileURLWithPath: dataDirectory).appendingPathComponent("outputs")
    }
    /// A bucket's images pass through here on this node (worker output before upload, inputs the worker reads).
    public var stagingDirectory: URL { URL(fileURLWithPath: dataDirectory).appendingPathComponent("staging") }
    public var samplesDirectory: URL { URL(fileURLWithPath: dataDirectory).appendingPathComponent("samples") }
    public var inputsDirectory: URL {
        if case .folder(let path) = storage { return URL(fileURLWithPath: path).appendingPathComponent("inputs") }
        return URL(fileURLWithPath: dataDirectory).appendingPathComponent("inputs")
    }
    public var tinyModelDirectory: URL { URL(fileURLWithPath: dataDirectory).appendingPathComponent("tiny") }
}

/// Where a setting's value comes from: its flag, else its `ATELIER_…` environment variable (empty counts as unset).
struct SettingSource {
    let environment: [String: String]

    /// The value and the name to blame it on (`--max-wait` or `ATELIER_MAX_WAIT`).
    func pick(_ flag: String?, _ env: String) -> (value: String, name: String)? {
        if let flag { return (flag, "--\(env.lowercased().replacingOccurrences(of: "_", with: "-"))") }
        if let v = environment["ATELIER_\(env)"], !v.isEmpty { return (v, "ATELIER_\(env)") }
        return nil
    }

    /// A whole number in `range`, else `current`.
    func int(_ flag: String?, _ env: String, _ range: ClosedRange<Int>, _ current: Int) throws(SettingError) -> Int {
        guard let (text, name) = pick(flag, env) else { return current }
        guard let n = Int(text), range.contains(n) else {
            throw SettingError(setting: name, why: "must be an integer from \(range.lowerBound) to \(range.upperBound); got \"\(text)\"")
        }
        return n
    }
}
