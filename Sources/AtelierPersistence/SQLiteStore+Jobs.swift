import AtelierCore
import Foundation

/// Runs: accepting one with its hold, settling its hold, reading them.
extension SQLiteStore {
    // MARK: JobStore

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    public func insert(_ job: Job, idempotency: IdempotencyClaim? = nil, maxInProgress: Int = .max) async throws {
        let parameters = try Self.json(job.request)
        let names = try Self.json(job.outputNames)
        let webhook = try job.webhook.map(Self.json)
        let hold = job.holdAmount
        try db.transaction { c in
            // IMMEDIATE: the idempotency lookup, the balance read and the writes are one step, so concurrent
            // requests can neither both spend the same credit nor both start a run for one idempotency key.
            if let claim = idempotency {
                let cutoff = job.createdAt.timeIntervalSince1970 - IdempotencyClaim.retention
                try c.query("DELETE FROM idempotency WHERE created_at < ?", [.double(cutoff)])
                if let prior = try c.query(
                    "SELECT fingerprint, job_id FROM idempotency WHERE scope = ? AND key = ?", [.text(claim.scope), .text(claim.key)]
                ).first, let priorJob = prior.int("job_id") {
                    throw JobStoreError.idempotencyKeyUsed(jobID: priorJob, sameRequest: prior.text("fingerprint") == claim.fingerprint)
                }
            }
            if maxInProgress < .max {
                let busy = Int(try c.query(
                    "SELECT COUNT(*) AS n FROM jobs WHERE account_id = ? AND status IN ('queued', 'running')", [.int(job.accountID)]
                ).first?.int("n") ?? 0)
                if busy >= maxInProgress { throw JobStoreError.tooManyRunsInProgress(busy) }
            }
            let available = try Self.balance(c, job.accountID).available
            guard available >= hold else { throw JobStoreError.insufficientCredit(needed: hold, available: available) }
            do {
                try c.query(
                    """
                    INSERT INTO jobs(id, account_id, model_id, parameters, seed, output_names, status, attempts, created_at, price_per_image, webhook, batch_key)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .int(job.id), .int(job.accountID), .text(job.request.modelID), .text(parameters),
                        .int(Int64(job.seed)), .text(names), .text(job.status.rawValue),
                        .int(Int64(job.attempts)), .double(job.createdAt.timeIntervalSince1970), .int(job.pricePerImage),
                        webhook.map(SQLiteValue.text) ?? .null, job.request.batchKey.map(SQLiteValue.text) ?? .null,
                    ]
                )
            } catch let error as SQLiteError where error.isConstraintViolation {
                throw JobStoreError.duplicateID(job.id)
            }
            try c.query(
                "INSERT INTO ledger(account_id, job_id, kind, amount, created_at) VALUES (?, ?, 'hold', ?, ?)",
                [.int(job.accountID), .int(job.id), .int(hold), .double(job.createdAt.timeIntervalSince1970)]
            )
            if let claim = idempotency {
                try c.query(
                    "INSERT INTO idempotency(scope, key, fingerprint, job_id, created_at) VALUES (?, ?, ?, ?, ?)",
                    [.text(claim.scope), .text(claim.key), .text(claim.fingerprint), .int(job.id),
                     .double(job.createdAt.timeIntervalSince1970)]
                )
            }
        }
    }

    /// Resolves a run's hold: capture for `delivered` images, release the rest. Called in the transaction that
    /// makes the run terminal, after its status guard passed, so it runs once per run; the unique index would
    /// refuse a second capture or release anyway.
    static func settle(_ c: SQLiteDatabase.Connection, jobID: Int64, delivered: Int, now: Date) throws {
        guard let hold = try c.query(
            "SELECT l.amount, l.account_id, j.price_per_image FROM ledger l JOIN jobs j ON j.id = l.job_id WHERE l.job_id = ? AND l.kind = 'hold'",
            [.int(jobID)]
        ).first, let amount = hold.int("amount"), let account = hold.int("account_id") else { return }
        let (capture, release) = LedgerRules.settle(hold: amount, pricePerImage: hold.int("price_per_image") ?? 0, delivered: delivered)
        if capture > 0 {
            try c.query(
                "INSERT INTO ledger(account_id, job_id, kind, amount, created_at) VALUES (?, ?, 'capture', ?, ?)",
                [.int(account), .int(jobID), .int(capture), .double(now.timeIntervalSince1970)]
            )
        }
        try c.query(
            "INSERT INTO ledger(account_id, job_id, kind, amount, created_at) VALUES (?, ?, 'release', ?, ?)",
            [.int(account), .int(jobID), .int(release), .double(now.timeIntervalSince1970)]
        )
    }

    public func jobs(accountID: Int64) async throws -> [Job] {
        try db.query("SELECT * FROM jobs WHERE account_id = ? ORDER BY created_at, id", [.int(accountID)]).map(StoredRecords.job)
    }


    public func job(id: Int64) async throws -> Job? {
        try db.query("SELECT * FROM jobs WHERE id = ?", [.int(id)]).first.map(StoredRecords.job)
    }

    public func runs(_ filter: RunFilter) async throws -> [Job] {
        let status: SQLiteValue = filter.status.map { .text($0.rawValue) } ?? .null
        let account: SQLiteValue = filter.accountID.map { .int($0) } ?? .null
        let since: SQLiteValue = filter.since.map { .double($0.timeIntervalSince1970) } ?? .null
        return try db.query("""
            SELECT * FROM jobs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR account_id = ?2)
              AND (?3 IS NULL OR created_at >= ?3) ORDER BY created_at DESC, id DESC LIMIT ?4
            """, [status, account, since, .int(Int64(filter.limit))]).map(StoredRecords.job)
    }

    // MARK: OutputRetentionStore, InputRetentionStore

    public func runsWithOutputs(finishedBefore: Date, limit: Int) async throws -> [Job] {
        try db.query("""
            SELECT * FROM jobs WHERE status = 'succeeded' AND outputs_expired_at IS NULL AND finished_at < ?
            ORDER BY finished_at LIMIT ?
            """, [.double(finishedBefore.timeIntervalSince1970), .int(Int64(limit))]).map(StoredRecords.job)
    }

    public func runsWithInputs(finishedBefore: Date, limit: Int) async throws -> [Job] {
        try db.query("""
            SELECT * FROM jobs WHERE status IN ('succeeded', 'failed', 'canceled') AND inputs_swept_at IS NULL AND finished_at < ?
            ORDER BY finished_at LIMIT ?
            """, [.double(finishedBefore.timeIntervalSince1970), .int(Int64(limit))]).map(StoredRecords.job)
    }

    public func markInputsSwept(ids: [Int64], now: Date) async throws {
        try db.transaction { c in
            for id in ids {
                try c.query("UPDATE jobs SET inputs_swept_at = ? WHERE id = ? AND status IN ('succeeded', 'failed', 'canceled')",
                            [.double(now.timeIntervalSince1970), .int(id)])
            }
        }
    }

    public func markOutputsExpired(id: Int64, now: Date) async throws -> Bool {
        try db.transaction { c in
            try c.query("UPDATE jobs SET outputs_expired_at = ? WHERE id = ? AND status = 'succeeded' AND outputs_expired_at IS NULL",
                        [.double(now.timeIntervalSince1970), .int(id)])
            return c.changes > 0
        }
    }
}
