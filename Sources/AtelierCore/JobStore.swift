import Foundation

/// Runs: the durable queue. Every state change is a checked transition, so a late or repeated report cannot
/// change a finished job. Implementations: `SQLiteStore`, `PostgresStore`.
public protocol JobStore: Sendable {
    /// Persists a new queued job and its hold (price × num_outputs) in one transaction. Throws
    /// `JobStoreError.duplicateID` if the id is taken (the caller picks another) and
    /// `JobStoreError.insufficientCredit` if the account's available balance is short (nothing is written).
    func insert(_ job: Job, idempotency: IdempotencyClaim?, maxInProgress: Int) async throws
    func job(id: Int64) async throws -> Job?
    /// Atomically moves the oldest queued job to running, counts the attempt and gives the claimer a lease of
    /// `lease` seconds on the store's clock (the database's own on PostgreSQL, where nodes' clocks differ; `now`
    /// on SQLite, where one machine holds the file); nil when none is queued. The returned job's `attempts` is the claim's fencing token: every
    /// later write for this claim names it, and a write with a stale token changes nothing.
    func claimNext(now: Date, lease: TimeInterval) async throws -> Job?
    /// Claims, as `claimNext` does, the oldest queued jobs that may share `job`'s pipeline call (the same
    /// `RunRequest.batchKey`), in queue order, while their images fit in `maxImages`; stops at the first that
    /// does not fit. Empty when `job` has no key.
    func claimCompatible(with job: Job, maxImages: Int, now: Date, lease: TimeInterval) async throws -> [Job]
    /// Extends the lease of a running job's current attempt; false if the claim was lost (the job was canceled,
    /// finished, or taken over after the lease expired): the worker must stop, its result would be refused.
    func renewLease(id: Int64, attempt: Int, lease: TimeInterval, now: Date) async throws -> Bool
    /// Records a running attempt's progress so requests on any node can show it; false if the claim was lost.
    func recordProgress(id: Int64, attempt: Int, step: Int, total: Int) async throws -> Bool
    /// Records success and settles its hold (capture price × images delivered, release the rest) in one
    /// transaction; returns false (and changes nothing) if the job is not running this attempt any more.
    func complete(id: Int64, attempt: Int, result: JobResult, now: Date) async throws -> Bool
    /// Records failure and releases its whole hold; returns false if the job is terminal or, with `attempt`, if
    /// that attempt no longer holds the job.
    func fail(id: Int64, attempt: Int?, failure: JobFailure, now: Date) async throws -> Bool
    /// The attempt ended without an answer (its worker died): the job goes back to the head of the queue, keeping
    /// its hold, if fewer than `maxAttempts` of its attempts counted (`Job.countedAttempts`: a drained one does
    /// not); otherwise it fails with `failure` and its hold is released.
    func retryOrFail(id: Int64, attempt: Int, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RetryOutcome
    /// The server stopped the attempt (a drain past its timeout), not anything the run did: the job goes back to
    /// the head of the queue, keeping its hold, and the attempt is spared from the limit. False if the fence refuses.
    func requeueSpared(id: Int64, attempt: Int, now: Date) async throws -> Bool
    /// Cancels an account's run: a queued run never starts, a running one is marked canceled at once (its worker
    /// is told to stop, and whatever it reports later is refused); the hold is released either way.
    func cancel(id: Int64, accountID: Int64, now: Date) async throws -> CancelOutcome
    /// Running jobs in `scope` (their worker or server stopped renewing) are retried or failed as `retryOrFail`
    /// does. A lone server starts with `.all`: no lease from a previous process is still held. Nodes sharing a
    /// database (`sharedByNodes`) only ever take `.expired` ones: the others belong to live nodes.
    func recoverAbandoned(_ scope: LeaseScope, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RecoveryReport
    /// True when several server processes may use this store at once (PostgreSQL).
    var sharedByNodes: Bool { get }
    /// How many queued runs are ahead of this one (0: next); nil when it is not queued.
    func queuePosition(id: Int64) async throws -> Int?
    /// All jobs of an account (for audits and usage).
    func jobs(accountID: Int64) async throws -> [Job]
    /// How many runs are queued and running, per model (for /metrics, read at each scrape).
    func activeRuns() async throws -> [ActiveRunCount]
    /// Runs for operators (`atelier runs list`), newest first, at most `filter.limit`.
    func runs(_ filter: RunFilter) async throws -> [Job]
}

/// Which runs `atelier runs list` shows; nil fields do not filter.
public struct RunFilter: Sendable, Equatable {
    public var status: JobStatus?
    public var accountID: Int64?
    /// Created at or after.
    public var since: Date?
    public var limit: Int
    public init(status: JobStatus? = nil, accountID: Int64? = nil, since: Date? = nil, limit: Int = 50) {
        self.status = status
        self.accountID = accountID
        self.since = since
        self.limit = limit
    }
}

/// Runs of one model in one unfinished state, and the credit their holds keep (every unfinished run has one
/// open hold).
public struct ActiveRunCount: Sendable, Equatable {
    public var modelID: String
    public var status: JobStatus
    public var count: Int
    /// Minor units held for these runs.
    public var held: Int64
    public init(modelID: String, status: JobStatus, count: Int, held: Int64 = 0) {
        self.modelID = modelID
        self.status = status
        self.count = count
        self.held = held
    }
}

/// Which running jobs `recoverAbandoned` takes back.
public enum LeaseScope: Sendable, Equatable {
    /// Those whose lease lapsed on the store's clock.
    case expired
    /// All of them (start-up of the only process using the store).
    case all
}

/// The database cannot be reached (a restart, a failover, the network). Requests answer 503 with Retry-After;
/// a write in flight may or may not have been committed, which the idempotency key makes safe to retry.
public struct StoreUnavailable: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "the database is unavailable: \(reason)" }
}

public enum RetryOutcome: Sendable, Equatable {
    case requeued
    case failed
    /// The attempt no longer held the job (canceled, finished or taken over): nothing changed.
    case fenced
}

public enum CancelOutcome: Sendable, Equatable {
    /// Canceled now; `wasRunning` says a worker must be told to stop.
    case canceled(wasRunning: Bool)
    /// Already terminal: nothing changed.
    case alreadyFinished(JobStatus)
    case notFound
}

public struct RecoveryReport: Sendable, Equatable {
    public var requeued: [Int64] = []
    public var failed: [Int64] = []
    public init(requeued: [Int64] = [], failed: [Int64] = []) {
        self.requeued = requeued
        self.failed = failed
    }
    public var isEmpty: Bool { requeued.isEmpty && failed.isEmpty }
}

/// One webhook event of one run, queued in the same transaction as the state change it reports, so neither a
/// crash nor a restart loses it. Its `id` is the `webhook-id` of every attempt.
public struct WebhookDelivery: Sendable, Equatable {
    public var id: String
    public var jobID: Int64
    public var event: WebhookEvent
    public var attempts: Int
    public var createdAt: Date
    /// The payload, fixed at the first attempt so every retry sends the same bytes.
    public var body: String?
    public var deliveredAt: Date?
    public var gaveUpAt: Date?
    public var lastError: String?
    public init(id: String, jobID: Int64, event: WebhookEvent, attempts: Int, createdAt: Date, body: String?,
                deliveredAt: Date? = nil, gaveUpAt: Date? = nil, lastError: String? = nil) {
        self.id = id
        self.jobID = jobID
        self.event = event
        self.attempts = attempts
        self.createdAt = createdAt
        self.body = body
        self.deliveredAt = deliveredAt
        self.gaveUpAt = gaveUpAt
        self.lastError = lastError
    }
}

/// How one delivery attempt ended.
public enum WebhookAttemptOutcome: Sendable, Equatable {
    case delivered
    case retry(at: Date, error: String)
    case gaveUp(error: String)
}

/// The webhook outbox. Implementations: `SQLiteStore`, `PostgresStore`.
public protocol WebhookStore: Sendable {
    /// Deliveries due now, claimed for `claimFor` seconds (a dispatcher that dies mid-attempt retries after it).
    func claimDueWebhooks(now: Date, limit: Int, claimFor: TimeInterval) async throws -> [WebhookDelivery]
    /// Records an attempt; `body` is stored on the first one.
    func recordWebhookAttempt(id: String, body: String, outcome: WebhookAttemptOutcome, now: Date) async throws
    func webhookDeliveries(jobID: Int64) async throws -> [WebhookDelivery]
}

/// A client's `Idempotency-Key`, scoped to the API key that sent it, with a fingerprint of what it asked for.
public struct IdempotencyClaim: Sendable, Equatable {
    public var scope: String
    public var key: String
    public var fingerprint: String
    public init(scope: String, key: String, fingerprint: String) {
        self.scope = scope
        self.key = key
        self.fingerprint = fingerprint
    }
    /// Keys are kept at least this long (the issue asks 24 h; twice that, for clients retrying across a day).
    public static let retention: TimeInterval = 48 * 3600
}

public enum JobStoreError: Error, Sendable, Equatable {
    case duplicateID(Int64)
    /// The idempotency key was used before: by the run `jobID`, with the same request or not.
    case idempotencyKeyUsed(jobID: Int64, sameRequest: Bool)
    case insufficientCredit(needed: Int64, available: Int64)
    case noSuchAccount(Int64)
    /// The account already has this many runs queued or running, the most allowed.
    case tooManyRunsInProgress(Int)
    /// An adjustment would leave less than zero available.
    case wouldGoNegative(available: Int64)
}

/// Wall-clock time, injected so tests control it.
public protocol WallClock: Sendable {
    func now() -> Date
}

public struct SystemWallClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// Output retention (`--output-retention`): which succeeded runs' images are due for deletion, and the record that
/// they were deleted. Implementations: `SQLiteStore`, `PostgresStore`.
public protocol OutputRetentionStore: Sendable {
    /// Succeeded runs that finished before `finishedBefore` and whose images are not recorded as deleted, oldest
    /// first, at most `limit`.
    func runsWithOutputs(finishedBefore: Date, limit: Int) async throws -> [Job]
    /// Records that the run's images are gone; false (and nothing changes) if it was recorded already or the run
    /// is not a succeeded one.
    func markOutputsExpired(id: Int64, now: Date) async throws -> Bool
}

/// The backstop for a run's input images: the attempt that ends a run deletes them at once, but a bucket that
/// is down then would keep them for ever, so `InputSweeper` deletes the inputs of every run ended for longer than a
/// grace period and records it on the run.
public protocol InputRetentionStore: Sendable {
    /// Ended runs whose inputs are not recorded as deleted, that ended before `finishedBefore`, oldest first.
    func runsWithInputs(finishedBefore: Date, limit: Int) async throws -> [Job]
    /// Records that these ended runs' inputs are gone.
    func markInputsSwept(ids: [Int64], now: Date) async throws
}

/// Everything a server keeps in its database: one value of this type is what `--database` opens.
public typealias AtelierStore = AccountStore & KeyStore & LedgerStore & JobStore & WebhookStore & OutputRetentionStore & InputRetentionStore
    & LoRAFetchLeases

extension JobStore {
    /// A run with no idempotency key and no cap on the account's runs in progress.
    public func insert(_ job: Job, idempotency: IdempotencyClaim? = nil) async throws {
        try await insert(job, idempotency: idempotency, maxInProgress: .max)
    }
}
