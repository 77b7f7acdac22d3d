import AtelierCore
import AtelierMetrics
import Crypto
import Foundation
import Logging
import Synchronization

/// A run's LoRAs, brought to this worker node before its pipeline call: from the node's disk cache, else from the
/// cluster's shared store (by content hash; a URL through the store's URL index), else downloaded from the URL
/// (checked as safetensors, hashed, stored for the cluster and indexed). Runs that need the same new URL at once
/// share one download. A LoRA that cannot be fetched or used ends the run as failed with its code, costing nothing;
/// a shared store that is down leaves the run to be retried.
final class LoRAFiles: Sendable {
    /// One LoRA ready on this machine.
    struct Local: Sendable, Equatable {
        var lora: RequestedLoRA
        var path: String
        var sha256: String
        var bytes: Int
        var origin: LoRAOrigin
    }

    enum Problem: Error, Sendable {
        case file(LoRAFileProblem)
        case storeUnavailable(String)
        case missing(String)
    }

    typealias Found = (sha256: String, bytes: Int, origin: LoRAOrigin)

    /// The run's LoRAs ready, or what ends its attempt.
    enum Prepared: Sendable {
        case ready([Local])
        case ended(Outcome)
    }

    let store: any LoRAStore
    let downloader: any LoRADownloader
    let cache: LoRADiskCache
    let limits: LoRALimits
    let metrics: AtelierMetrics
    let logger: Logger
    /// The cluster's download leases (nil: this node downloads whatever it needs, e.g. in unit tests).
    let leases: (any LoRAFetchLeases)?
    let node: String
    let wallClock: any WallClock
    let sleeper: any Clock<Duration>
    private let flights = Mutex<[String: Task<Result<Found, Problem>, Never>]>([:])
    private let progress = Mutex<[String: LoRAFetchProgress]>([:])

    init(store: any LoRAStore, downloader: any LoRADownloader, cacheDirectory: URL, cacheBudget: Int, limits: LoRALimits,
         leases: (any LoRAFetchLeases)? = nil, node: String = "local", wallClock: any WallClock = SystemWallClock(),
         sleeper: any Clock<Duration> = ContinuousClock(), metrics: AtelierMetrics, logger: Logger) throws {
        self.leases = leases
        self.node = node
        self.wallClock = wallClock
        self.sleeper = sleeper
        self.store = store
        self.downloader = downloader
        cache = try LoRADiskCache(directory: cacheDirectory, budget: cacheBudget)
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
    }

    /// The run's LoRAs on this machine, pinned in the cache until `release`; or the outcome that ends the attempt.
    func localFiles(of job: Job) async -> Prepared {
        var out: [Local] = []
        for lora in job.request.loras ?? [] {
            switch await resolvePinned(lora) {
            case .success(let found):
                metrics.loraResolved(origin: found.origin.rawValue)
                out.append(Local(lora: lora, path: cache.path(found.sha256), sha256: found.sha256, bytes: found.bytes, origin: found.origin))
            case .failure(let problem):
                release(out)
                metrics.loraResolved(origin: "failed")
                switch problem {
                case .file(let p):
                    logger.warning("run \(job.id): \(lora.parameter) cannot be used: \(p.reason)")
                    return .ended(.refused(p.failure(parameter: lora.parameter)))
                case .storeUnavailable(let why): return .ended(.storageFailed("its LoRA \(lora.parameter) could not be read: \(why)"))
                case .missing(let why):
                    return .ended(.refused(JobFailure(code: .storageError, message: "\(lora.parameter): \(why)")))
                }
            }
        }
        trim()
        return .ready(out)
    }

    /// A LoRA resolved and pinned; resolved again if another run's trim evicted it before the pin.
    private func resolvePinned(_ lora: RequestedLoRA) async -> Result<Found, Problem> {
        var result = await resolve(lora)
        for _ in 0..<2 {
            guard case .success(let found) = result else { return result }
            cache.pin([found.sha256])
            if FileManager.default.fileExists(atPath: cache.path(found.sha256)) { return result }
            cache.unpin([found.sha256])
            result = await resolve(lora)
        }
        return .failure(.missing("the LoRA's file left this node's cache as it was read; the cache is too small (--lora-disk-cache-mb)"))
    }

    /// The run is done with its files: they may be evicted now.
    func release(_ files: [Local]) {
        guard !files.isEmpty else { return }
        cache.unpin(files.map(\.sha256))
        trim()
    }

    private func trim() {
        let evicted = cache.trim()
        if !evicted.isEmpty {
            metrics.loraEvicted(evicted.count)
            logger.info("LoRA disk cache: \(evicted.count) file(s) evicted to stay within \(cache.budget) bytes")
        }
    }

    /// What the run's result says of its LoRAs: where each came from, memory if the worker had it loaded.
    static func applied(_ files: [Local], report: [WorkerResult.LoRAReport]?) -> [AppliedLoRA] {
        files.enumerated().map { i, f in
            let fromMemory = report.flatMap { i < $0.count ? $0[i] : nil }.map { $0.sha256 == f.sha256 && $0.fromMemory } ?? false
            return AppliedLoRA(parameter: f.lora.parameter, sha256: f.sha256, bytes: f.bytes, scale: f.lora.scale,
                               origin: fromMemory ? .memory : f.origin)
        }
    }

    /// One LoRA by its hash (an upload) or its URL; concurrent calls for the same one share the work.
    func resolve(_ lora: RequestedLoRA) async -> Result<Found, Problem> {
        if let sha = lora.sha256 {
            return await shared("sha:\(sha)") {
                switch await self.fromCluster(sha) {
                case .success(let found?): return .success(found)
                case .success(nil): return .failure(.missing("the uploaded LoRA \(sha) is not in the shared store (do the nodes share one?)"))
                case .failure(let p): return .failure(p)
                }
            }
        }
        guard let url = lora.url else { return .failure(.missing("the run names no LoRA file")) }
        return await shared("url:\(url)") {
            do {
                if let entry = try await self.store.indexEntry(url: url) {
                    switch await self.fromCluster(entry.sha256) {
                    case .success(let found?): return .success(found)
                    case .success(nil): break  // indexed but gone from the store: fetched again below
                    case .failure(let p): return .failure(p)
                    }
                }
            } catch {
                return .failure(.storeUnavailable("\(error)"))
            }
            return await self.download(url)
        }
    }

    /// The file from this node's disk, else a copy from the shared store; nil when the store lacks it.
    private func fromCluster(_ sha256: String) async -> Result<Found?, Problem> {
        let path = cache.path(sha256)
        if cache.hit(sha256) { return .success((sha256, Self.size(path), .nodeDisk)) }
        let scratch = cache.scratchPath()
        do {
            guard try await store.copy(sha256: sha256, to: scratch) else { return .success(nil) }
        } catch {
            try? FileManager.default.removeItem(atPath: scratch)
            return .failure(.storeUnavailable("\(error)"))
        }
        try? FileManager.default.removeItem(atPath: path)
        do { try FileManager.default.moveItem(atPath: scratch, toPath: path) } catch { return .failure(.missing("\(error)")) }
        return .success((sha256, Self.size(path), .clusterStore))
    }

    /// The first use in the cluster. With a shared database one node downloads a URL at a time (its lease, renewed
    /// with its progress); another that needs it meanwhile waits for the store's index to name the file, and takes
    /// over if the lease lapses without it (the holder died, or its download failed).
    private func download(_ url: String) async -> Result<Found, Problem> {
        guard let leases else { return await fetch(url) }
        let key = LoRAIndexKey.name(url)
        let deadline = ContinuousClock.now + .seconds(3600)
        while ContinuousClock.now < deadline {
            do {
                if try await leases.claimLoRAFetch(key: key, node: node, seconds: Self.leaseSeconds, now: wallClock.now()) {
                    let result = await withTaskGroup(of: Result<Found, Problem>?.self) { group in
                        group.addTask { await self.fetch(url) }
                        group.addTask { await self.keepLease(key); return nil }
                        let first = await group.next() ?? nil
                        group.cancelAll()
                        return first ?? .failure(.storeUnavailable("the download was stopped"))
                    }
                    try? await leases.releaseLoRAFetch(key: key, node: node)
                    return result
                }
                // Another node is downloading it.
                while try await leases.loraFetch(key: key, now: wallClock.now()) != nil {
                    try? await sleeper.sleep(for: .milliseconds(500))
                }
                if let entry = try await store.indexEntry(url: url) {
                    switch await fromCluster(entry.sha256) {
                    case .success(let found?): return .success(found)
                    case .success(nil): continue
                    case .failure(let p): return .failure(p)
                    }
                }
                // Its lease ended without the file: try it here (a bad file fails here too, with its reason).
            } catch {
                return .failure(.storeUnavailable("the database did not answer about the LoRA's download: \(error)"))
            }
        }
        return .failure(.file(.unavailable("another node's download of it did not finish within an hour")))
    }

    static let leaseSeconds = 30

    /// Renews this node's download lease with its progress every second, until cancelled.
    private func keepLease(_ key: String) async {
        guard let leases else { return }
        while !Task.isCancelled {
            try? await sleeper.sleep(for: .seconds(1))
            if Task.isCancelled { return }
            let now = progress.withLock { $0[key] } ?? LoRAFetchProgress(bytesDone: 0, bytesTotal: nil)
            _ = try? await leases.renewLoRAFetch(key: key, node: node, seconds: Self.leaseSeconds, progress: now, now: wallClock.now())
        }
    }

    /// Downloads, checks, hashes, keeps here and shares through the store.
    private func fetch(_ url: String) async -> Result<Found, Problem> {
        guard let address = URL(string: url) else { return .failure(.file(.unavailable("its URL is not valid"))) }
        let scratch = cache.scratchPath()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let started = ContinuousClock.now
        let sha: String
        let bytes: Int
        let track = LoRAIndexKey.name(url)
        defer { progress.withLock { $0[track] = nil } }
        do {
            bytes = try await downloader.download(address, maxBytes: limits.maxBytes, to: scratch) { [self] p in
                progress.withLock { $0[track] = p }
            }
            sha = try Self.check(scratch, size: bytes)
        } catch {
            return .failure(.file(error))
        }
        metrics.loraDownloaded(bytes: bytes, seconds: (ContinuousClock.now - started).timeInterval)
        let path = cache.path(sha)
        if !FileManager.default.fileExists(atPath: path) {
            do { try FileManager.default.moveItem(atPath: scratch, toPath: path) } catch { return .failure(.missing("\(error)")) }
        }
        do {
            try await store.store(sha256: sha, from: path)
            try await store.recordIndex(url: url, entry: LoRAIndexEntry(sha256: sha, bytes: bytes))
        } catch {
            // The run goes on with the file it has; the next node fetches it again.
            logger.warning("LoRA \(sha) could not be shared through the store (\(error)); this node keeps its copy")
        }
        logger.info("LoRA downloaded: \(bytes) bytes, sha256 \(sha), in \(Int((ContinuousClock.now - started).timeInterval * 1000)) ms")
        return .success((sha, bytes, .download))
    }

    /// Checks a downloaded file is safetensors whose header tells the truth, and returns its SHA-256.
    static func check(_ path: String, size: Int) throws(LoRAFileProblem) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .unavailable("the download could not be read back") }
        defer { try? handle.close() }
        let first = (try? handle.read(upToCount: 8)).map(Array.init) ?? []
        // The header only when its length is plausible; `parse` says what is wrong with anything else.
        let n = SafetensorsHeader.headerLength(first).flatMap { 8 + $0 <= size ? $0 : nil } ?? 0
        let rest = n > 0 ? (try? handle.read(upToCount: n)).map(Array.init) ?? [] : []
        _ = try SafetensorsHeader.parse(first + rest, fileSize: size)
        try? handle.seek(toOffset: 0)
        var hasher = SHA256()
        while let chunk = try? handle.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().hex
    }

    static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// Runs `work` once for concurrent callers with the same key; each gets its result.
    private func shared(_ key: String, _ work: @escaping @Sendable () async -> Result<Found, Problem>) async -> Result<Found, Problem> {
        let task = flights.withLock { running -> Task<Result<Found, Problem>, Never> in
            if let existing = running[key] { return existing }
            let task = Task { await work() }
            running[key] = task
            return task
        }
        let result = await task.value
        flights.withLock { if $0[key] == task { $0[key] = nil } }
        return result
    }
}

/// How a worker node gets per-request LoRAs: the cluster's store, the downloader, its disk cache and the limits.
public struct LoRASources: Sendable {
    public var store: any LoRAStore
    /// The database's download leases, and this node's name in them.
    public var leases: (any LoRAFetchLeases)?
    public var node: String
    public var downloader: any LoRADownloader
    public var cacheDirectory: URL
    /// Bytes the node's disk cache may hold (`--lora-disk-cache`).
    public var diskBudget: Int
    public var limits: LoRALimits
    public init(store: any LoRAStore, downloader: any LoRADownloader, cacheDirectory: URL, diskBudget: Int, limits: LoRALimits,
                leases: (any LoRAFetchLeases)? = nil, node: String = "local") {
        self.leases = leases
        self.node = node
        self.store = store
        self.downloader = downloader
        self.cacheDirectory = cacheDirectory
        self.diskBudget = diskBudget
        self.limits = limits
    }
}
