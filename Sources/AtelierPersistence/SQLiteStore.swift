import AtelierCore
import Foundation

/// Accounts, keys and jobs in one SQLite file (the embedded default). The schema is versioned; each migration
/// runs once, in a transaction.
public final class SQLiteStore: AccountStore, KeyStore, LedgerStore, JobStore, WebhookStore, OutputRetentionStore, InputRetentionStore,
    LoRAFetchLeases, Sendable {
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
        // Progress stored with the run, so a request on another node sees it (PostgreSQL has the same columns).
        """
        ALTER TABLE jobs ADD COLUMN progress_step INTEGER;
        ALTER TABLE jobs ADD COLUMN progress_total INTEGER;
        """,
        // Output retention: when the sweeper deleted a succeeded run's images (NULL: still stored). The index
        // holds only the runs still to sweep, so a sweep reads the oldest of those, not every run ever made.
        """
        ALTER TABLE jobs ADD COLUMN outputs_expired_at REAL;
        CREATE INDEX jobs_outputs ON jobs(finished_at) WHERE status = 'succeeded' AND outputs_expired_at IS NULL;
        """,
        // Attempts a drain stopped: `attempts` stays the fencing token, and the limit counts attempts - spared.
        """
        ALTER TABLE jobs ADD COLUMN spared_attempts INTEGER NOT NULL DEFAULT 0;
        """,
        // Input retention (InputSweeper): when an ended run's inputs were recorded as deleted. Runs that ended before
        // this migration had theirs deleted when they ended; the index holds only the ended runs still to sweep.
        """
        ALTER TABLE jobs ADD COLUMN inputs_swept_at REAL;
        UPDATE jobs SET inputs_swept_at = finished_at WHERE status IN ('succeeded', 'failed', 'canceled');
        CREATE INDEX jobs_inputs ON jobs(finished_at) WHERE inputs_swept_at IS NULL AND status IN ('succeeded', 'failed', 'canceled');
        """,
        // LoRA downloads under way (LoRAFetchLeases): one row per URL (by its hash) while a node downloads it.
        """
        CREATE TABLE lora_fetches (key TEXT PRIMARY KEY, node TEXT NOT NULL, expires_at REAL NOT NULL,
                                   bytes_done INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER);
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
}
