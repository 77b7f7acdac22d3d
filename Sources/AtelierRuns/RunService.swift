import AtelierCore
import AtelierEngine
import AtelierMetrics
import Foundation
import Logging

/// The one way a run is made, read, listed and canceled, whichever API the client speaks: `/api/v4/run`,
/// Replicate's predictions and OpenAI's images all come here, so validation (the catalog's decoder), image inputs,
/// the idempotency claim, the credit hold, the queue and the wait exist once. The routes around it only translate
/// their dialect's request into catalog parameters and the resulting `Job` back into their dialect's answer.
public struct RunService: Sendable {
    public let catalog: ModelCatalog
    let jobs: any JobStore
    let accounts: any AccountStore & LedgerStore
    let storage: any ImageStorage
    let queue: any RunQueue
    public let clock: any WallClock
    public let config: RunsConfiguration
    /// Where input images are kept while their run is queued or running; nil: image inputs are refused.
    public let inputs: InputImages?
    /// Where uploaded LoRA files go (the cluster's LoRA store); nil: LoRA uploads are refused.
    let loraUploads: LoRAUploads?
    /// Downloads of LoRAs under way in the cluster, for a running run's progress.
    let loraFetches: (any LoRAFetchLeases)?
    let metrics: AtelierMetrics

    public init(catalog: ModelCatalog, jobs: any JobStore, accounts: any AccountStore & LedgerStore, storage: any ImageStorage, queue: any RunQueue,
                clock: any WallClock = SystemWallClock(), config: RunsConfiguration = .init(), inputs: InputImages? = nil,
                loraStore: (any LoRAStore)? = nil, loraFetches: (any LoRAFetchLeases)? = nil, metrics: AtelierMetrics = AtelierMetrics()) {
        self.loraFetches = loraFetches
        loraUploads = loraStore.map { LoRAUploads(store: $0, limits: config.loraLimits) }
        self.catalog = catalog
        self.jobs = jobs
        self.accounts = accounts
        self.storage = storage
        self.queue = queue
        self.clock = clock
        self.config = config
        self.inputs = inputs
        self.metrics = metrics
    }

    /// True once shutdown began: no new runs are taken.
    public var isDraining: Bool { queue.isDraining }

    /// A run as a dialect hands it over.
    public struct Submission: Sendable {
        /// The catalog's parameters, `model_id` included, as the client sent them (typed by the decoder here).
        var parameters: [String: ParameterValue]
        var webhook: WebhookSubscription?
        /// The `Idempotency-Key` header, if sent; scoped to the API key.
        var idempotencyKey: String?
        /// How long to hold the answer for the run to end.
        var wait: Duration
        /// Which pixels of the mask are repainted (OpenAI's edits: the transparent ones).
        var maskConvention: InputImage.MaskConvention = .white

        public init(parameters: [String: ParameterValue], webhook: WebhookSubscription? = nil, idempotencyKey: String? = nil,
                    wait: Duration, maskConvention: InputImage.MaskConvention = .white) {
            self.parameters = parameters
            self.webhook = webhook
            self.idempotencyKey = idempotencyKey
            self.wait = wait
            self.maskConvention = maskConvention
        }
    }

    /// The run the submission made, or (a repeated Idempotency-Key with the same request) the first one's.
    public struct Submitted: Sendable {
        public var job: Job
        public var replayed: Bool
    }

    public func currency(of modelID: String) -> String { catalog[modelID]?.pricePerImage.currency ?? "USD" }

    /// Validates, holds the credit, queues and waits (up to `wait`). Nothing is queued or held when it throws.
    public func submit(_ submission: Submission, account: KeyRecord, logger: Logger) async throws -> Submitted {
        // Draining for a restart: the run would only wait in the queue for the next process; say so now.
        guard !queue.isDraining else { throw AtelierError.shuttingDown }
        var (run, pending) = try RunRequestDecoder(catalog: catalog, maxLoRAs: config.loraLimits.maxPerRun).decodeWithInputs(submission.parameters)
        if !pending.loraUploads.isEmpty {
            guard let loraUploads else {
                throw AtelierError.invalid(pending.loraUploads.first.flatMap { run.loras?[$0.index].parameter } ?? "lora_weights", "unsupported_parameter",
                                           "LoRA uploads are not enabled on this server; send the LoRA's URL instead")
            }
            try await loraUploads.attach(pending.loraUploads, to: &run)
        }
        if pending.hasImages {
            guard let inputs else {
                throw AtelierError.invalid("image", "unsupported_parameter", "image inputs are not enabled on this server; send the request without image and mask")
            }
            try await inputs.attach(pending, to: &run)
            if submission.maskConvention != .white { run.mask?.convention = submission.maskConvention }
        }
        // Until the run is in the database its stored inputs belong to this request: any way out but queuing it
        // (an error, a replay of an idempotent request) deletes them.
        var queued = false
        defer { if !queued { inputs?.remove(run.inputImages) } }
        let claim = try Self.idempotencyClaim(submission.idempotencyKey, run: run, key: account)
        var rng = SystemRandomNumberGenerator()
        if run.seed == nil { run.seed = UInt64.random(in: 0...RunRequest.maxSeed, using: &rng) }
        let names = (0..<run.numOutputs).map { _ in storage.newName(format: run.outputFormat) }

        guard let entry = catalog[run.modelID] else { throw AtelierError.modelNotFound(run.modelID) }
        var job = Job(id: 0, accountID: account.accountID, request: run, outputNames: names,
                      pricePerImage: Int64(entry.pricePerImage.minorUnits), createdAt: clock.now(), webhook: submission.webhook)
        // Random 15-digit ids, like the hosted service's; a collision (1 in 10^14 per pair) just draws again.
        for attempt in 0..<5 {
            job.id = Int64.random(in: Job.idRange, using: &rng)
            await queue.events.subscribe(job.id)
            do {
                try await jobs.insert(job, idempotency: claim, maxInProgress: config.maxConcurrentRuns)
                queued = true
                metrics.runSubmitted(model: run.modelID)
                break
            } catch JobStoreError.idempotencyKeyUsed(let prior, let sameRequest) {
                guard sameRequest else {
                    throw AtelierError.idempotencyMismatch(
                        "this Idempotency-Key was already used with a different request (request_id \(prior)); use a new key for a new request"
                    )
                }
                guard let first = try await jobs.job(id: prior) else { throw AtelierError.internalError("idempotent run \(prior) is missing") }
                return Submitted(job: first, replayed: true)
            } catch JobStoreError.duplicateID where attempt < 4 {
                continue
            } catch JobStoreError.tooManyRunsInProgress(let count) {
                throw AtelierError.rateLimited(
                    message: "this account already has \(count) runs queued or running (at most \(config.maxConcurrentRuns)); wait for one to finish",
                    retryAfter: 5, limit: nil, remaining: nil, reset: nil
                )
            } catch JobStoreError.insufficientCredit(let needed, let available) {
                throw AtelierError.insufficientCredit(
                    needed: needed, available: available, pricePerImage: job.pricePerImage,
                    currency: entry.pricePerImage.currency, account: account.accountName
                )
            }
        }
        logger.info("run \(job.id) queued for account \(account.accountName): \(run.modelID) \(run.size) \(run.numInferenceSteps) steps")
        await queue.jobQueued()
        if let loras = run.loras { queue.prefetch(loras) }
        return Submitted(job: try await awaitEnd(job.id, timeout: submission.wait), replayed: false)
    }

    /// The run as stored once it ended or `timeout` passed, whichever is first.
    public func awaitEnd(_ id: Int64, timeout: Duration) async throws -> Job {
        if timeout > .zero {
            await queue.events.subscribe(id)
            if let job = try await jobs.job(id: id), job.status.isTerminal { return job }
            _ = await queue.events.wait(id, timeout: timeout)
        }
        guard let current = try await jobs.job(id: id) else {
            throw AtelierError.internalError("run \(id) vanished after it was queued")
        }
        return current
    }

    /// `Idempotency-Key: <1–255 visible ASCII characters>`, scoped to the API key; the fingerprint is the
    /// validated request (before a random seed is picked), so the same parameters in another encoding, or another
    /// dialect, match.
    public static func idempotencyClaim(_ value: String?, run: RunRequest, key: KeyRecord) throws -> IdempotencyClaim? {
        guard let value else { return nil }
        guard (1...255).contains(value.count), value.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0.asciiValue! >= 0x21 }) else {
            throw AtelierError.invalid("Idempotency-Key", "invalid_idempotency_key",
                                       "the Idempotency-Key header must be 1 to 255 visible ASCII characters, e.g. a UUID")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Inputs are compared by content: their stored file names are fresh for every request.
        var run = run
        run.image?.file = ""
        run.mask?.file = ""
        let canonical = String(decoding: (try? encoder.encode(run)) ?? Data(), as: UTF8.self)
        return IdempotencyClaim(scope: key.prefix, key: value, fingerprint: APIKey.hash(canonical))
    }

    /// The run, if it belongs to the key's account; another account's run is 404 exactly like a missing one, so
    /// ids cannot be probed.
    public func ownedJob(_ id: Int64, account: KeyRecord) async throws -> Job {
        guard let job = try await jobs.job(id: id), job.accountID == account.accountID else {
            throw AtelierError.notFound("no run with id \(id) for this API key's account")
        }
        return job
    }

    /// The account's runs, newest first, `limit` of them made before the run `before` (a page's cursor).
    public func list(account: KeyRecord, before: Int64?, limit: Int) async throws -> (page: [Job], more: Bool) {
        var all = try await jobs.jobs(accountID: account.accountID).sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
        if let before, let at = all.firstIndex(where: { $0.id == before }) { all = Array(all[(at + 1)...]) }
        return (Array(all.prefix(limit)), all.count > limit)
    }

    /// Cancels a run: queued, it never starts; running, its worker stops at the next step. Either way its hold is
    /// released and nothing is charged. Canceling a canceled run again answers the same; a finished run is a 409.
    public func cancel(_ id: Int64, account: KeyRecord, logger: Logger) async throws -> Job {
        var queuedInputsToRemove = false
        var canceledNow = false
        switch try await jobs.cancel(id: id, accountID: account.accountID, now: clock.now()) {
        case .notFound:
            throw AtelierError.notFound("no run with id \(id) for this API key's account")
        case .alreadyFinished(let status) where status != .canceled:
            throw AtelierError.conflict(code: "already_finished",
                                        message: "run \(id) already \(status.rawValue); there is nothing to cancel")
        case .canceled(let wasRunning):
            // Running: the supervisor deletes the inputs once the worker has let go of them.
            if wasRunning { queue.cancel(id) } else { queuedInputsToRemove = true }
            canceledNow = true
            await queue.events.jobFinished(id)
            logger.info("run \(id) canceled by its account (\(wasRunning ? "was running" : "was queued"))")
        case .alreadyFinished:
            break
        }
        let job = try await ownedJob(id, account: account)
        if queuedInputsToRemove { inputs?.remove(job.request.inputImages) }
        if canceledNow { metrics.runCanceled(model: job.request.modelID) }
        return job
    }

    /// The steps done so far of a running run: this node's worker's last report, else (a worker on another node)
    /// the progress as stored.
    public func progress(of job: Job) async -> JobEvents.Progress? {
        guard job.status == .running else { return nil }
        return await queue.events.currentProgress(job.id) ?? job.progress
    }

    /// The first of a running run's LoRAs that some node is downloading now, with how far it got.
    public func loraDownload(of job: Job) async -> RunSnapshot.LoRADownload? {
        guard let loraFetches else { return nil }
        for lora in job.request.loras ?? [] {
            guard let url = lora.url else { continue }
            if let p = try? await loraFetches.loraFetch(key: LoRAIndexKey.name(url), now: clock.now()) {
                return RunSnapshot.LoRADownload(parameter: lora.parameter, progress: p)
            }
        }
        return nil
    }

    /// A run as it is now: outcome, progress while it runs, place in the queue while it waits.
    public func snapshot(of job: Job) async throws -> RunSnapshot {
        let position = job.status == .queued ? try await jobs.queuePosition(id: job.id) : nil
        var snapshot = RunSnapshot(job: job, currency: currency(of: job.request.modelID), progress: await progress(of: job), queuePosition: position)
        if job.status == .running, snapshot.progress == nil { snapshot.loraDownload = await loraDownload(of: job) }
        return snapshot
    }

    /// The run's webhook, if asked for: a well-formed http(s) URL whose host resolves only to public addresses
    /// (or is on the operator's allow-list). Checked again before every delivery.
    public func webhook(url: ParameterValue?, filter: ParameterValue?, baseURL: String) async throws -> WebhookSubscription? {
        guard let hook = try WebhookSubscription.parse(url: url, filter: filter, baseURL: baseURL) else { return nil }
        let host = URL(string: hook.url)?.host ?? ""
        if case .failure(let refusal) = await HostResolver.checked(host: host, policy: config.outboundPolicy) {
            throw AtelierError.invalid("webhook", "unsafe_url", "webhook: \(refusal.reason)")
        }
        return hook
    }

    /// The secret the account's webhook deliveries are signed with.
    public func webhookSecret(account: KeyRecord) async throws -> String {
        try await accounts.webhookSecret(accountID: account.accountID)
    }

    /// The run as stored now, whoever owns it (for a stream that already checked the owner).
    public func job(id: Int64) async throws -> Job? {
        try await jobs.job(id: id)
    }

    /// What the run costs, with the account's available credit: for the answer to the request that made it.
    public func cost(of job: Job, account: KeyRecord) async throws -> RunCost {
        var cost = RunCost(job: job, currency: currency(of: job.request.modelID))
        cost.availableBalance = try await accounts.balance(accountID: account.accountID).available
        return cost
    }

    /// The run's images, read back from the image store, when together they are at most `limit` bytes (answers
    /// that carry the images themselves: Replicate's sync mode, OpenAI's b64_json); nil when larger.
    public func outputBytes(of job: Job, limit: Int) async throws -> [[UInt8]]? {
        guard let outputs = job.result?.outputs, outputs.reduce(0, { $0 + $1.bytes }) <= limit else { return nil }
        var images: [[UInt8]] = []
        for output in outputs {
            guard let stored = try await storage.read(name: output.name, range: nil) else {
                throw AtelierError.notFound("the image \(output.name) of run \(job.id) is no longer stored")
            }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(stored.contentLength ?? output.bytes)
            for try await chunk in stored.chunks { bytes += chunk }
            images.append(bytes)
        }
        return images
    }
}
