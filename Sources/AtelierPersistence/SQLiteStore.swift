import AtelierCore
import Foundation

/// Accounts, keys and jobs in one SQLite file (the embedded default). The schema is versioned; each migration
/// runs once, in a transaction.
public final class SQLiteStore: KeyStore, JobStore, WebhookStore, Sendable {
    let db: SQLiteDatabase

    static let migrations: [String] = [
        """
        CREATE TABLE accounts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL
        );
        CREATE TABLE api_keys (
            hash TEXT PRIMARY KEY,
            prefix TEXT NOT NULL UNIQUE,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            model_id TEXT NOT NULL,
            parameters TEXT NOT NULL,
            seed INTEGER NOT NULL,
            output_names TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('queued','running','succeeded','failed','canceled')),
            attempts INTEGER NOT NULL DEFAULT 0,
            result TEXT,
            error_code TEXT,
            error_message TEXT,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        );
        CREATE INDEX jobs_queue ON jobs(status, created_at);
        """,
        // Money: an append-only ledger; balances are derived from it. One hold, capture and release per run at
        // most (the unique index), so no retry, crash or second worker can charge twice.
        """
        CREATE TABLE ledger (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            job_id INTEGER REFERENCES jobs(id),
            kind TEXT NOT NULL CHECK (kind IN ('credit','adjustment','hold','capture','release')),
            amount INTEGER NOT NULL,
            reason TEXT,
            created_at REAL NOT NULL,
            CHECK (kind = 'adjustment' OR amount >= 0),
            CHECK ((job_id IS NULL) = (kind IN ('credit','adjustment')))
        );
        CREATE UNIQUE INDEX ledger_once_per_run ON ledger(job_id, kind) WHERE job_id IS NOT NULL;
        CREATE INDEX ledger_account ON ledger(account_id);
        CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
        CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
        ALTER TABLE jobs ADD COLUMN price_per_image INTEGER NOT NULL DEFAULT 0;
        """,
        """
        CREATE TABLE idempotency (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            created_at REAL NOT NULL,
            PRIMARY KEY (scope, key)
        );
        CREATE INDEX idempotency_age ON idempotency(created_at);
        """,
        // Leases: a claimed job belongs to its claimer until lease_expires_at; `attempts` is the fencing token.
        """
        ALTER TABLE jobs ADD COLUMN lease_expires_at REAL;
        """,
        // The key each account's webhooks are signed with. Kept in the clear because signing needs it; it is
        // shown only by `atelier accounts show` and never logged.
        """
        ALTER TABLE accounts ADD COLUMN webhook_secret TEXT;
        """,
        // The webhook outbox: one row per run and event, written in the transaction of the change it reports.
        """
        ALTER TABLE jobs ADD COLUMN webhook TEXT;
        CREATE TABLE webhook_deliveries (
            id TEXT PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            event TEXT NOT NULL CHECK (event IN ('start', 'completed')),
            created_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            delivered_at REAL,
            gave_up_at REAL,
            last_error TEXT,
            body TEXT,
            UNIQUE (job_id, event)
        );
        CREATE INDEX webhook_due ON webhook_deliveries(next_attempt_at) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
        """,
        // Batching: runs with the same key (RunRequest.batchKey) can share a pipeline call. NULL: always alone
        // (and every run written before this migration).
        """
        ALTER TABLE jobs ADD COLUMN batch_key TEXT;
        CREATE INDEX jobs_batch ON jobs(batch_key, created_at, id) WHERE status = 'queued' AND batch_key IS NOT NULL;
        """,
    ]

    public init(path: String) throws {
        db = try SQLiteDatabase(path: path)
        try migrate()
    }

    func migrate() throws {
        try db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        try db.transaction { c in
            let current = try c.query("SELECT MAX(version) AS v FROM schema_version").first?.int("v") ?? 0
            for (i, sql) in Self.migrations.enumerated() where i + 1 > current {
                try c.execute(sql)
                try c.query("INSERT INTO schema_version(version) VALUES (?)", [.int(Int64(i + 1))])
            }
        }
    }

    // MARK: KeyStore

    public func ensureAccount(named name: String) async throws -> Int64 {
        try db.transaction { c in
            if let id = try c.query("SELECT id FROM accounts WHERE name = ?", [.text(name)]).first?.int("id") {
                return id
            }
            try c.query("INSERT INTO accounts(name, created_at) VALUES (?, ?)", [.text(name), .double(Date().timeIntervalSince1970)])
            return try c.query("SELECT last_insert_rowid() AS id").first?.int("id") ?? 0
        }
    }

    public func addKey(_ key: APIKey, accountID: Int64) async throws {
        try db.query(
            "INSERT INTO api_keys(hash, prefix, account_id, created_at) VALUES (?, ?, ?, ?)",
            [.text(key.hash), .text(key.prefix), .int(accountID), .double(Date().timeIntervalSince1970)]
        )
    }

    private static let keySelect = """
        SELECT k.prefix, k.account_id, a.name, k.created_at, k.revoked_at
        FROM api_keys k JOIN accounts a ON a.id = k.account_id
        """

    private static func keyRecord(_ r: SQLiteRow) -> KeyRecord {
        KeyRecord(
            prefix: r.text("prefix") ?? "",
            accountID: r.int("account_id") ?? 0,
            accountName: r.text("name") ?? "",
            createdAt: Date(timeIntervalSince1970: r.double("created_at") ?? 0),
            revokedAt: r.double("revoked_at").map { Date(timeIntervalSince1970: $0) }
        )
    }

    public func lookupKey(hash: String) async throws -> KeyRecord? {
        try db.query(Self.keySelect + " WHERE k.hash = ?", [.text(hash)]).first.map(Self.keyRecord)
    }

    public func listKeys() async throws -> [KeyRecord] {
        try db.query(Self.keySelect + " ORDER BY k.created_at").map(Self.keyRecord)
    }

    public func revokeKey(prefix: String) async throws -> Bool {
        try db.transaction { c in
            try c.query(
                "UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL",
                [.double(Date().timeIntervalSince1970), .text(prefix)]
            )
            if c.changes > 0 { return true }
            return try !c.query("SELECT 1 AS x FROM api_keys WHERE prefix = ?", [.text(prefix)]).isEmpty
        }
    }

    public func account(named name: String) async throws -> Account? {
        try db.query("SELECT id, name, created_at FROM accounts WHERE name = ?", [.text(name)]).first.map(Self.accountRow)
    }

    public func accounts() async throws -> [Account] {
        try db.query("SELECT id, name, created_at FROM accounts ORDER BY id").map(Self.accountRow)
    }

    private static func accountRow(_ r: SQLiteRow) -> Account {
        Account(id: r.int("id") ?? 0, name: r.text("name") ?? "", createdAt: Date(timeIntervalSince1970: r.double("created_at") ?? 0))
    }

    /// balance = credits + adjustments − captures; held = holds − captures − releases (a run's capture and release
    /// are written together and add up to its hold, so a resolved hold drops out).
    static let balanceSQL = """
        SELECT
          COALESCE(SUM(CASE WHEN kind IN ('credit','adjustment') THEN amount WHEN kind = 'capture' THEN -amount ELSE 0 END), 0) AS balance,
          COALESCE(SUM(CASE WHEN kind = 'hold' THEN amount WHEN kind IN ('capture','release') THEN -amount ELSE 0 END), 0) AS held
        FROM ledger WHERE account_id = ?
        """

    static func balance(_ c: SQLiteDatabase.Connection, _ accountID: Int64) throws -> Balance {
        let row = try c.query(balanceSQL, [.int(accountID)]).first
        return Balance(balance: row?.int("balance") ?? 0, held: row?.int("held") ?? 0)
    }

    public func balance(accountID: Int64) async throws -> Balance {
        try db.transaction { c in try Self.balance(c, accountID) }
    }

    public func addCredit(accountID: Int64, amount: Int64, kind: LedgerKind, reason: String, now: Date) async throws -> Balance {
        precondition(kind == .credit || kind == .adjustment, "only credits and adjustments are added by hand")
        return try db.transaction { c in
            guard try !c.query("SELECT 1 AS x FROM accounts WHERE id = ?", [.int(accountID)]).isEmpty else {
                throw JobStoreError.noSuchAccount(accountID)
            }
            let before = try Self.balance(c, accountID)
            if before.available + amount < 0 { throw JobStoreError.wouldGoNegative(available: before.available) }
            try c.query(
                "INSERT INTO ledger(account_id, job_id, kind, amount, reason, created_at) VALUES (?, NULL, ?, ?, ?, ?)",
                [.int(accountID), .text(kind.rawValue), .int(amount), .text(reason), .double(now.timeIntervalSince1970)]
            )
            return try Self.balance(c, accountID)
        }
    }

    public func ledger(accountID: Int64) async throws -> [LedgerEntry] {
        try db.query("SELECT * FROM ledger WHERE account_id = ? ORDER BY id", [.int(accountID)]).map { r in
            LedgerEntry(
                id: r.int("id") ?? 0, accountID: r.int("account_id") ?? 0, jobID: r.int("job_id"),
                kind: LedgerKind(rawValue: r.text("kind") ?? "") ?? .adjustment, amount: r.int("amount") ?? 0,
                reason: r.text("reason"), createdAt: Date(timeIntervalSince1970: r.double("created_at") ?? 0)
            )
        }
    }

    public func usage(accountID: Int64, before: Int64?, limit: Int) async throws -> [UsageItem] {
        try db.query(
            """
            SELECT l.id, l.job_id, l.amount, l.created_at, j.model_id, j.price_per_image
            FROM ledger l JOIN jobs j ON j.id = l.job_id
            WHERE l.account_id = ? AND l.kind = 'capture' AND l.id < ?
            ORDER BY l.id DESC LIMIT ?
            """,
            [.int(accountID), .int(before ?? .max), .int(Int64(limit))]
        ).map { r in
            let amount = r.int("amount") ?? 0
            let price = r.int("price_per_image") ?? 0
            return UsageItem(cursor: r.int("id") ?? 0, requestID: r.int("job_id") ?? 0, modelID: r.text("model_id") ?? "",
                             images: price > 0 ? Int(amount / price) : 0, amount: amount,
                             chargedAt: Date(timeIntervalSince1970: r.double("created_at") ?? 0))
        }
    }

    public func spend(accountID: Int64, from: Date, to: Date) async throws -> [ModelSpend] {
        try db.query(
            """
            SELECT j.model_id, COUNT(*) AS runs, SUM(l.amount / MAX(j.price_per_image, 1)) AS images, SUM(l.amount) AS amount
            FROM ledger l JOIN jobs j ON j.id = l.job_id
            WHERE l.account_id = ? AND l.kind = 'capture' AND l.created_at >= ? AND l.created_at < ?
            GROUP BY j.model_id ORDER BY j.model_id
            """,
            [.int(accountID), .double(from.timeIntervalSince1970), .double(to.timeIntervalSince1970)]
        ).map { r in
            ModelSpend(modelID: r.text("model_id") ?? "", runs: Int(r.int("runs") ?? 0), images: Int(r.int("images") ?? 0),
                       amount: r.int("amount") ?? 0)
        }
    }

    public func webhookSecret(accountID: Int64) async throws -> String {
        try db.transaction { c in
            if let existing = try c.query("SELECT webhook_secret FROM accounts WHERE id = ?", [.int(accountID)]).first?.text("webhook_secret") {
                return existing
            }
            return try Self.setWebhookSecret(c, accountID: accountID)
        }
    }

    public func rotateWebhookSecret(accountID: Int64) async throws -> String {
        try db.transaction { c in try Self.setWebhookSecret(c, accountID: accountID) }
    }

    private static func setWebhookSecret(_ c: SQLiteDatabase.Connection, accountID: Int64) throws -> String {
        let secret = WebhookSignature.newSecret()
        try c.query("UPDATE accounts SET webhook_secret = ? WHERE id = ?", [.text(secret), .int(accountID)])
        guard c.changes == 1 else { throw JobStoreError.noSuchAccount(accountID) }
        return secret
    }

    public func keyCount() async throws -> Int {
        Int(try db.query("SELECT COUNT(*) AS n FROM api_keys").first?.int("n") ?? 0)
    }

    // MARK: JobStore

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    private static func json<T: Encodable>(_ value: T) throws -> String {
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
        try db.query("SELECT * FROM jobs WHERE account_id = ? ORDER BY created_at, id", [.int(accountID)]).map(Self.decodeJob)
    }

    private static func decodeJob(_ r: SQLiteRow) throws -> Job {
        let decoder = JSONDecoder()
        let request = try decoder.decode(RunRequest.self, from: Data((r.text("parameters") ?? "{}").utf8))
        let names = try decoder.decode([String].self, from: Data((r.text("output_names") ?? "[]").utf8))
        let result = try r.text("result").map { try decoder.decode(JobResult.self, from: Data($0.utf8)) }
        let failure = r.text("error_code").map { JobFailure(code: $0, message: r.text("error_message") ?? "") }
        return Job(
            id: r.int("id") ?? 0,
            accountID: r.int("account_id") ?? 0,
            request: request,
            outputNames: names,
            pricePerImage: r.int("price_per_image") ?? 0,
            status: JobStatus(rawValue: r.text("status") ?? "") ?? .failed,
            attempts: Int(r.int("attempts") ?? 0),
            result: result,
            failure: failure,
            createdAt: Date(timeIntervalSince1970: r.double("created_at") ?? 0),
            startedAt: r.double("started_at").map { Date(timeIntervalSince1970: $0) },
            finishedAt: r.double("finished_at").map { Date(timeIntervalSince1970: $0) },
            webhook: try r.text("webhook").map { try decoder.decode(WebhookSubscription.self, from: Data($0.utf8)) }
        )
    }

    public func job(id: Int64) async throws -> Job? {
        try db.query("SELECT * FROM jobs WHERE id = ?", [.int(id)]).first.map(Self.decodeJob)
    }

    public func claimNext(now: Date, lease: TimeInterval) async throws -> Job? {
        try db.transaction { c in
            // IMMEDIATE transaction: no other connection can claim between the SELECT and the UPDATE.
            guard let row = try c.query(
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1"
            ).first, let id = row.int("id") else { return nil }
            try c.query(
                """
                UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, lease_expires_at = ?
                WHERE id = ? AND status = 'queued'
                """,
                [.double(now.timeIntervalSince1970), .double(now.timeIntervalSince1970 + lease), .int(id)]
            )
            let job = try c.query("SELECT * FROM jobs WHERE id = ?", [.int(id)]).first.map(Self.decodeJob)
            if job?.attempts == 1 { try Self.enqueueWebhook(c, jobID: id, event: .start, now: now) }
            return job
        }
    }

    public func claimCompatible(with job: Job, maxImages: Int, now: Date, lease: TimeInterval) async throws -> [Job] {
        guard let key = job.request.batchKey, maxImages > 0 else { return [] }
        return try db.transaction { c in
            var room = maxImages
            var claimed: [Job] = []
            // Queue order, as claimNext: a batch never lets a later run overtake an earlier compatible one.
            let rows = try c.query(
                "SELECT * FROM jobs WHERE status = 'queued' AND batch_key = ? ORDER BY created_at, id LIMIT ?",
                [.text(key), .int(Int64(maxImages))]
            )
            for row in rows {
                let queued = try Self.decodeJob(row)
                guard queued.request.numOutputs <= room else { break }
                try c.query(
                    """
                    UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, lease_expires_at = ?
                    WHERE id = ? AND status = 'queued'
                    """,
                    [.double(now.timeIntervalSince1970), .double(now.timeIntervalSince1970 + lease), .int(queued.id)]
                )
                guard c.changes == 1,
                      let job = try c.query("SELECT * FROM jobs WHERE id = ?", [.int(queued.id)]).first.map(Self.decodeJob)
                else { continue }
                if job.attempts == 1 { try Self.enqueueWebhook(c, jobID: job.id, event: .start, now: now) }
                claimed.append(job)
                room -= job.request.numOutputs
                if room == 0 { break }
            }
            return claimed
        }
    }

    public func renewLease(id: Int64, attempt: Int, until: Date) async throws -> Bool {
        try db.transaction { c in
            try c.query(
                "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND status = 'running' AND attempts = ?",
                [.double(until.timeIntervalSince1970), .int(id), .int(Int64(attempt))]
            )
            return c.changes == 1
        }
    }

    public func complete(id: Int64, attempt: Int, result: JobResult, now: Date) async throws -> Bool {
        let encoded = try Self.json(result)
        return try db.transaction { c in
            try c.query(
                """
                UPDATE jobs SET status = 'succeeded', result = ?, finished_at = ?, lease_expires_at = NULL
                WHERE id = ? AND status = 'running' AND attempts = ?
                """,
                [.text(encoded), .double(now.timeIntervalSince1970), .int(id), .int(Int64(attempt))]
            )
            guard c.changes == 1 else { return false }
            try Self.settle(c, jobID: id, delivered: result.outputs.count, now: now)
            try Self.enqueueWebhook(c, jobID: id, event: .completed, now: now)
            return true
        }
    }

    public func fail(id: Int64, attempt: Int?, failure: JobFailure, now: Date) async throws -> Bool {
        try db.transaction { c in try Self.fail(c, id: id, attempt: attempt, failure: failure, now: now) }
    }

    static func fail(_ c: SQLiteDatabase.Connection, id: Int64, attempt: Int?, failure: JobFailure, now: Date) throws -> Bool {
        let fence = attempt.map { "AND status = 'running' AND attempts = \($0)" } ?? "AND status IN ('queued', 'running')"
        try c.query(
            """
            UPDATE jobs SET status = 'failed', error_code = ?, error_message = ?, finished_at = ?, lease_expires_at = NULL
            WHERE id = ? \(fence)
            """,
            [.text(failure.code), .text(failure.message), .double(now.timeIntervalSince1970), .int(id)]
        )
        guard c.changes == 1 else { return false }
        try settle(c, jobID: id, delivered: 0, now: now)
        try enqueueWebhook(c, jobID: id, event: .completed, now: now)
        return true
    }

    public func retryOrFail(id: Int64, attempt: Int, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RetryOutcome {
        try db.transaction { c in try Self.retryOrFail(c, id: id, attempt: attempt, maxAttempts: maxAttempts, failure: failure, now: now) }
    }

    static func retryOrFail(
        _ c: SQLiteDatabase.Connection, id: Int64, attempt: Int, maxAttempts: Int, failure: JobFailure, now: Date
    ) throws -> RetryOutcome {
        if attempt < maxAttempts {
            // Back to the head of the queue (created_at is kept), hold kept: the run is still owed an image.
            try c.query(
                """
                UPDATE jobs SET status = 'queued', started_at = NULL, lease_expires_at = NULL
                WHERE id = ? AND status = 'running' AND attempts = ?
                """,
                [.int(id), .int(Int64(attempt))]
            )
            return c.changes == 1 ? .requeued : .fenced
        }
        return try fail(c, id: id, attempt: attempt, failure: failure, now: now) ? .failed : .fenced
    }

    public func cancel(id: Int64, accountID: Int64, now: Date) async throws -> CancelOutcome {
        try db.transaction { c in
            guard let row = try c.query("SELECT status FROM jobs WHERE id = ? AND account_id = ?", [.int(id), .int(accountID)]).first,
                  let status = JobStatus(rawValue: row.text("status") ?? "")
            else { return .notFound }
            guard !status.isTerminal else { return .alreadyFinished(status) }
            try c.query(
                """
                UPDATE jobs SET status = 'canceled', error_code = 'canceled', error_message = ?, finished_at = ?, lease_expires_at = NULL
                WHERE id = ? AND status IN ('queued', 'running')
                """,
                [.text("canceled by the client; nothing was charged"), .double(now.timeIntervalSince1970), .int(id)]
            )
            try Self.settle(c, jobID: id, delivered: 0, now: now)
            try Self.enqueueWebhook(c, jobID: id, event: .completed, now: now)
            return .canceled(wasRunning: status == .running)
        }
    }

    public func recoverAbandoned(expiredBefore: Date, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RecoveryReport {
        try db.transaction { c in
            let rows = try c.query(
                "SELECT id, attempts FROM jobs WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < ?)",
                [.double(min(expiredBefore.timeIntervalSince1970, Double(Int64.max)))]
            )
            var report = RecoveryReport()
            for row in rows {
                guard let id = row.int("id"), let attempt = row.int("attempts") else { continue }
                switch try Self.retryOrFail(c, id: id, attempt: Int(attempt), maxAttempts: maxAttempts, failure: failure, now: now) {
                case .requeued: report.requeued.append(id)
                case .failed: report.failed.append(id)
                case .fenced: break
                }
            }
            return report
        }
    }

    public func queuePosition(id: Int64) async throws -> Int? {
        try db.transaction { c in
            guard let row = try c.query("SELECT created_at FROM jobs WHERE id = ? AND status = 'queued'", [.int(id)]).first,
                  let created = row.double("created_at") else { return nil }
            let ahead = try c.query(
                "SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued' AND (created_at < ? OR (created_at = ? AND id < ?))",
                [.double(created), .double(created), .int(id)]
            ).first?.int("n") ?? 0
            return Int(ahead)
        }
    }

    // MARK: webhook outbox

    /// Queues the run's `event` if it has a webhook that asked for it; at most once per run and event.
    static func enqueueWebhook(_ c: SQLiteDatabase.Connection, jobID: Int64, event: WebhookEvent, now: Date) throws {
        guard let text = try c.query("SELECT webhook FROM jobs WHERE id = ?", [.int(jobID)]).first?.text("webhook"),
              let hook = try? JSONDecoder().decode(WebhookSubscription.self, from: Data(text.utf8)),
              hook.events.contains(event) else { return }
        try c.query(
            "INSERT OR IGNORE INTO webhook_deliveries(id, job_id, event, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)",
            [.text(Self.messageID()), .int(jobID), .text(event.rawValue), .double(now.timeIntervalSince1970), .double(now.timeIntervalSince1970)]
        )
    }

    /// `msg_` and 24 random base62 characters, like the Standard Webhooks examples.
    static func messageID() -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var rng = SystemRandomNumberGenerator()
        return "msg_" + String((0..<24).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] })
    }

    private static func delivery(_ r: SQLiteRow) -> WebhookDelivery {
        WebhookDelivery(
            id: r.text("id") ?? "", jobID: r.int("job_id") ?? 0, event: WebhookEvent(rawValue: r.text("event") ?? "") ?? .completed,
            attempts: Int(r.int("attempts") ?? 0), createdAt: Date(timeIntervalSince1970: r.double("created_at") ?? 0),
            body: r.text("body"), deliveredAt: r.double("delivered_at").map { Date(timeIntervalSince1970: $0) },
            gaveUpAt: r.double("gave_up_at").map { Date(timeIntervalSince1970: $0) }, lastError: r.text("last_error")
        )
    }

    public func claimDueWebhooks(now: Date, limit: Int, claimFor: TimeInterval) async throws -> [WebhookDelivery] {
        try db.transaction { c in
            let rows = try c.query(
                """
                SELECT * FROM webhook_deliveries d
                WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL AND d.next_attempt_at <= ?
                  -- A run's events go out in order: its completed waits while its start is still pending.
                  AND NOT (d.event = 'completed' AND EXISTS (
                    SELECT 1 FROM webhook_deliveries e WHERE e.job_id = d.job_id AND e.event = 'start'
                      AND e.delivered_at IS NULL AND e.gave_up_at IS NULL))
                ORDER BY d.next_attempt_at, d.created_at LIMIT ?
                """,
                [.double(now.timeIntervalSince1970), .int(Int64(limit))]
            )
            for row in rows {
                try c.query("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?",
                            [.double(now.timeIntervalSince1970 + claimFor), .text(row.text("id") ?? "")])
            }
            return rows.map(Self.delivery)
        }
    }

    public func recordWebhookAttempt(id: String, body: String, outcome: WebhookAttemptOutcome, now: Date) async throws {
        try db.transaction { c in
            try c.query("UPDATE webhook_deliveries SET attempts = attempts + 1, body = COALESCE(body, ?) WHERE id = ?", [.text(body), .text(id)])
            switch outcome {
            case .delivered:
                try c.query("UPDATE webhook_deliveries SET delivered_at = ?, last_error = NULL WHERE id = ?", [.double(now.timeIntervalSince1970), .text(id)])
            case .retry(let at, let error):
                try c.query("UPDATE webhook_deliveries SET next_attempt_at = ?, last_error = ? WHERE id = ?",
                            [.double(at.timeIntervalSince1970), .text(error), .text(id)])
            case .gaveUp(let error):
                try c.query("UPDATE webhook_deliveries SET gave_up_at = ?, last_error = ? WHERE id = ?",
                            [.double(now.timeIntervalSince1970), .text(error), .text(id)])
            }
        }
    }

    public func webhookDeliveries(jobID: Int64) async throws -> [WebhookDelivery] {
        try db.query("SELECT * FROM webhook_deliveries WHERE job_id = ? ORDER BY created_at, event DESC", [.int(jobID)]).map(Self.delivery)
    }
}
