import AtelierCore
import Foundation
import PostgresNIO

/// Runs: accepting one with its hold, settling its hold, reading them.
extension PostgresStore {
    public func insert(_ job: Job, idempotency: IdempotencyClaim? = nil, maxInProgress: Int = .max) async throws {
        let parameters = try SQLiteStore.json(job.request)
        let names = try SQLiteStore.json(job.outputNames)
        let webhook = try job.webhook.map(SQLiteStore.json)
        let limit: Int64? = maxInProgress < .max ? Int64(maxInProgress) : nil
        let payload = StoreEvent.queued(job.id).payload(node: nodeID)
        // One statement (migration 2's function): the account's row lock orders every spend of its credit, the
        // cap on runs in progress and the idempotency lookup (its scope is one of the account's keys) across all
        // nodes, and is held only while the function runs.
        guard let row = try await rows("""
            SELECT outcome, a, b FROM atelier_accept_run(
              \(job.id), \(job.accountID), \(job.request.modelID), \(parameters), \(Int64(job.seed)), \(names),
              \(job.createdAt.timeIntervalSince1970), \(job.pricePerImage), \(webhook), \(job.request.batchKey), \(job.holdAmount),
              \(limit), \(idempotency?.scope), \(idempotency?.key), \(idempotency?.fingerprint),
              \(job.createdAt.timeIntervalSince1970 - IdempotencyClaim.retention), \(Self.channel), \(payload))
            """).first else { throw StoreQueryError(sqlState: "", message: "atelier_accept_run returned no row") }
        let a = row.int("a") ?? 0
        let b = row.int("b") ?? 0
        switch row.text("outcome") ?? "" {
        case "ok": return
        case "no_account": throw JobStoreError.noSuchAccount(job.accountID)
        case "idempotency_used": throw JobStoreError.idempotencyKeyUsed(jobID: a, sameRequest: b == 1)
        case "too_many": throw JobStoreError.tooManyRunsInProgress(Int(a))
        case "insufficient": throw JobStoreError.insufficientCredit(needed: a, available: b)
        case "duplicate_id": throw JobStoreError.duplicateID(job.id)
        case let other: throw StoreQueryError(sqlState: "", message: "atelier_accept_run answered \(other)")
        }
    }

    /// As SQLite's `settle`: capture for `delivered` images, release the rest, in the transaction that made the run
    /// terminal; the unique index refuses a second capture or release anyway.
    static func settle(_ c: PostgresConnection, jobID: Int64, delivered: Int, now: Double, logger: Logger) async throws {
        let rows = try await c.query(
            """
            SELECT l.amount, l.account_id, j.price_per_image FROM ledger l JOIN jobs j ON j.id = l.job_id
            WHERE l.job_id = \(jobID) AND l.kind = 'hold'
            """, logger: logger)
        var hold: (amount: Int64, account: Int64, price: Int64)?
        for try await (amount, account, price) in rows.decode((Int64, Int64, Int64).self) { hold = (amount, account, price) }
        guard let hold else { return }
        let (capture, release) = LedgerRules.settle(hold: hold.amount, pricePerImage: hold.price, delivered: delivered)
        if capture > 0 {
            try await c.query(
                "INSERT INTO ledger(account_id, job_id, kind, amount, created_at) VALUES (\(hold.account), \(jobID), 'capture', \(capture), \(now))",
                logger: logger)
        }
        try await c.query(
            "INSERT INTO ledger(account_id, job_id, kind, amount, created_at) VALUES (\(hold.account), \(jobID), 'release', \(release), \(now))",
            logger: logger)
    }

    public func jobs(accountID: Int64) async throws -> [Job] {
        try await rows("SELECT * FROM jobs WHERE account_id = \(accountID) ORDER BY created_at, id").map(StoredRecords.job)
    }

    public func job(id: Int64) async throws -> Job? {
        try await rows("SELECT * FROM jobs WHERE id = \(id)").first.map(StoredRecords.job)
    }

    public func runs(_ filter: RunFilter) async throws -> [Job] {
        let status = filter.status?.rawValue, account = filter.accountID, since = filter.since?.timeIntervalSince1970
        return try await rows("""
            SELECT * FROM jobs WHERE (\(status)::text IS NULL OR status = \(status)) AND (\(account)::bigint IS NULL OR account_id = \(account))
              AND (\(since)::float8 IS NULL OR created_at >= \(since)) ORDER BY created_at DESC, id DESC LIMIT \(filter.limit)
            """).map(StoredRecords.job)
    }


    // MARK: OutputRetentionStore, InputRetentionStore

    public func runsWithOutputs(finishedBefore: Date, limit: Int) async throws -> [Job] {
        try await rows("""
            SELECT * FROM jobs WHERE status = 'succeeded' AND outputs_expired_at IS NULL
              AND finished_at < \(finishedBefore.timeIntervalSince1970) ORDER BY finished_at LIMIT \(limit)
            """).map(StoredRecords.job)
    }

    public func runsWithInputs(finishedBefore: Date, limit: Int) async throws -> [Job] {
        try await rows("""
            SELECT * FROM jobs WHERE status IN ('succeeded', 'failed', 'canceled') AND inputs_swept_at IS NULL
              AND finished_at < \(finishedBefore.timeIntervalSince1970) ORDER BY finished_at LIMIT \(limit)
            """).map(StoredRecords.job)
    }

    public func markInputsSwept(ids: [Int64], now: Date) async throws {
        _ = try await rows("""
            UPDATE jobs SET inputs_swept_at = \(now.timeIntervalSince1970)
            WHERE id = ANY(\(ids)) AND status IN ('succeeded', 'failed', 'canceled') RETURNING id
            """)
    }

    public func markOutputsExpired(id: Int64, now: Date) async throws -> Bool {
        try await !rows("""
            UPDATE jobs SET outputs_expired_at = \(now.timeIntervalSince1970)
            WHERE id = \(id) AND status = 'succeeded' AND outputs_expired_at IS NULL RETURNING id
            """).isEmpty
    }

    /// The statement's rows, decoded as jobs (for `RETURNING *`).
    static func jobRows(_ c: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws -> [Job] {
        var out: [Job] = []
        for try await row in try await c.query(query, logger: logger) { out.append(try StoredRecords.job(row.makeRandomAccess())) }
        return out
    }
}
