import AtelierCore
import Foundation

/// Accounts, keys and jobs in one SQLite file (the embedded default). The schema is versioned; each migration
/// runs once, in a transaction.
public final class SQLiteStore: KeyStore, JobStore, Sendable {
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
                for statement in sql.split(separator: ";") where !statement.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    try c.query(String(statement))
                }
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

    public func insert(_ job: Job) async throws {
        do {
            try db.query(
                """
                INSERT INTO jobs(id, account_id, model_id, parameters, seed, output_names, status, attempts, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .int(job.id), .int(job.accountID), .text(job.request.modelID), .text(try Self.json(job.request)),
                    .int(Int64(job.seed)), .text(try Self.json(job.outputNames)), .text(job.status.rawValue),
                    .int(Int64(job.attempts)), .double(job.createdAt.timeIntervalSince1970),
                ]
            )
        } catch let error as SQLiteError where error.isConstraintViolation {
            throw JobStoreError.duplicateID(job.id)
        }
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
            status: JobStatus(rawValue: r.text("status") ?? "") ?? .failed,
            attempts: Int(r.int("attempts") ?? 0),
            result: result,
            failure: failure,
            createdAt: Date(timeIntervalSince1970: r.double("created_at") ?? 0),
            startedAt: r.double("started_at").map { Date(timeIntervalSince1970: $0) },
            finishedAt: r.double("finished_at").map { Date(timeIntervalSince1970: $0) }
        )
    }

    public func job(id: Int64) async throws -> Job? {
        try db.query("SELECT * FROM jobs WHERE id = ?", [.int(id)]).first.map(Self.decodeJob)
    }

    public func claimNext(now: Date) async throws -> Job? {
        try db.transaction { c in
            // IMMEDIATE transaction: no other connection can claim between the SELECT and the UPDATE.
            guard let row = try c.query(
                "SELECT * FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1"
            ).first, let id = row.int("id") else { return nil }
            try c.query(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ? WHERE id = ? AND status = 'queued'",
                [.double(now.timeIntervalSince1970), .int(id)]
            )
            return try c.query("SELECT * FROM jobs WHERE id = ?", [.int(id)]).first.map(Self.decodeJob)
        }
    }

    public func complete(id: Int64, result: JobResult, now: Date) async throws -> Bool {
        let encoded = try Self.json(result)
        return try db.transaction { c in
            try c.query(
                "UPDATE jobs SET status = 'succeeded', result = ?, finished_at = ? WHERE id = ? AND status = 'running'",
                [.text(encoded), .double(now.timeIntervalSince1970), .int(id)]
            )
            return c.changes == 1
        }
    }

    public func fail(id: Int64, failure: JobFailure, now: Date) async throws -> Bool {
        try db.transaction { c in
            try c.query(
                """
                UPDATE jobs SET status = 'failed', error_code = ?, error_message = ?, finished_at = ?
                WHERE id = ? AND status IN ('queued', 'running')
                """,
                [.text(failure.code), .text(failure.message), .double(now.timeIntervalSince1970), .int(id)]
            )
            return c.changes == 1
        }
    }

    public func failOrphanedRunning(failure: JobFailure, now: Date) async throws -> Int {
        try db.transaction { c in
            try c.query(
                "UPDATE jobs SET status = 'failed', error_code = ?, error_message = ?, finished_at = ? WHERE status = 'running'",
                [.text(failure.code), .text(failure.message), .double(now.timeIntervalSince1970)]
            )
            return c.changes
        }
    }
}
