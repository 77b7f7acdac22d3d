import AtelierCore
import Foundation
import PostgresNIO

/// The PostgreSQL schema, versioned as SQLite's is: each migration runs once, in a transaction, under an advisory
/// lock so nodes starting together do not race. Columns mirror SQLite's one for one (times are epoch seconds as
/// `double precision`), so `atelier db copy` moves rows unchanged.
extension PostgresStore {
    /// One migration per entry; each is a list of statements (the extended protocol runs one at a time).
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE accounts (
                id BIGSERIAL PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                created_at DOUBLE PRECISION NOT NULL,
                webhook_secret TEXT
            )
            """,
            """
            CREATE TABLE api_keys (
                hash TEXT PRIMARY KEY,
                prefix TEXT NOT NULL UNIQUE,
                account_id BIGINT NOT NULL REFERENCES accounts(id),
                created_at DOUBLE PRECISION NOT NULL,
                revoked_at DOUBLE PRECISION
            )
            """,
            """
            CREATE TABLE jobs (
                id BIGINT PRIMARY KEY,
                account_id BIGINT NOT NULL REFERENCES accounts(id),
                model_id TEXT NOT NULL,
                parameters TEXT NOT NULL,
                seed BIGINT NOT NULL,
                output_names TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('queued','running','succeeded','failed','canceled')),
                attempts BIGINT NOT NULL DEFAULT 0,
                result TEXT,
                error_code TEXT,
                error_message TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                started_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION,
                price_per_image BIGINT NOT NULL DEFAULT 0,
                lease_expires_at DOUBLE PRECISION,
                webhook TEXT,
                batch_key TEXT,
                progress_step BIGINT,
                progress_total BIGINT
            )
            """,
            "CREATE INDEX jobs_queue ON jobs(created_at, id) WHERE status = 'queued'",
            "CREATE INDEX jobs_leases ON jobs(lease_expires_at) WHERE status = 'running'",
            "CREATE INDEX jobs_account ON jobs(account_id, status)",
            "CREATE INDEX jobs_batch ON jobs(batch_key, created_at, id) WHERE status = 'queued' AND batch_key IS NOT NULL",
            // Money: an append-only ledger; balances are derived from it. One hold, capture and release per run.
            """
            CREATE TABLE ledger (
                id BIGSERIAL PRIMARY KEY,
                account_id BIGINT NOT NULL REFERENCES accounts(id),
                job_id BIGINT REFERENCES jobs(id),
                kind TEXT NOT NULL CHECK (kind IN ('credit','adjustment','hold','capture','release')),
                amount BIGINT NOT NULL,
                reason TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                CHECK (kind = 'adjustment' OR amount >= 0),
                CHECK ((job_id IS NULL) = (kind IN ('credit','adjustment')))
            )
            """,
            "CREATE UNIQUE INDEX ledger_once_per_run ON ledger(job_id, kind) WHERE job_id IS NOT NULL",
            "CREATE INDEX ledger_account ON ledger(account_id)",
            """
            CREATE FUNCTION atelier_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$
            """,
            """
            CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
            FOR EACH ROW EXECUTE FUNCTION atelier_ledger_append_only()
            """,
            """
            CREATE TABLE idempotency (
                scope TEXT NOT NULL,
                key TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                job_id BIGINT NOT NULL REFERENCES jobs(id),
                created_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (scope, key)
            )
            """,
            "CREATE INDEX idempotency_age ON idempotency(created_at)",
            """
            CREATE TABLE webhook_deliveries (
                id TEXT PRIMARY KEY,
                job_id BIGINT NOT NULL REFERENCES jobs(id),
                event TEXT NOT NULL CHECK (event IN ('start', 'completed')),
                created_at DOUBLE PRECISION NOT NULL,
                attempts BIGINT NOT NULL DEFAULT 0,
                next_attempt_at DOUBLE PRECISION NOT NULL,
                delivered_at DOUBLE PRECISION,
                gave_up_at DOUBLE PRECISION,
                last_error TEXT,
                body TEXT,
                UNIQUE (job_id, event)
            )
            """,
            "CREATE INDEX webhook_due ON webhook_deliveries(next_attempt_at) WHERE delivered_at IS NULL AND gave_up_at IS NULL",
        ],
        // Accepting a run in one round trip. Every run of an account takes the account's row lock (that is what
        // makes the credit check hold across nodes), so the time the lock is held is the account's ceiling on runs
        // per second: as one statement it is held for a fraction of a millisecond instead of eight round trips.
        [
            """
            CREATE FUNCTION atelier_accept_run(
                p_id BIGINT, p_account BIGINT, p_model TEXT, p_parameters TEXT, p_seed BIGINT, p_names TEXT,
                p_created DOUBLE PRECISION, p_price BIGINT, p_webhook TEXT, p_batch_key TEXT, p_hold BIGINT,
                p_max_in_progress BIGINT, p_scope TEXT, p_key TEXT, p_fingerprint TEXT, p_idempotency_cutoff DOUBLE PRECISION,
                p_channel TEXT, p_payload TEXT,
                OUT outcome TEXT, OUT a BIGINT, OUT b BIGINT)
            LANGUAGE plpgsql AS $$
            DECLARE
                prior RECORD;
                busy BIGINT;
                available BIGINT;
            BEGIN
                a := 0; b := 0;
                PERFORM 1 FROM accounts WHERE id = p_account FOR UPDATE;
                IF NOT FOUND THEN outcome := 'no_account'; RETURN; END IF;
                IF p_scope IS NOT NULL THEN
                    DELETE FROM idempotency WHERE created_at < p_idempotency_cutoff;
                    SELECT job_id, fingerprint INTO prior FROM idempotency WHERE scope = p_scope AND key = p_key;
                    IF FOUND THEN
                        outcome := 'idempotency_used'; a := prior.job_id;
                        b := CASE WHEN prior.fingerprint = p_fingerprint THEN 1 ELSE 0 END;
                        RETURN;
                    END IF;
                END IF;
                IF p_max_in_progress IS NOT NULL THEN
                    SELECT COUNT(*) INTO busy FROM jobs WHERE account_id = p_account AND status IN ('queued', 'running');
                    IF busy >= p_max_in_progress THEN outcome := 'too_many'; a := busy; RETURN; END IF;
                END IF;
                -- available = balance - held, by the one definition (LedgerSQL).
                SELECT \(LedgerSQL.available) INTO available FROM ledger WHERE account_id = p_account;
                IF available < p_hold THEN outcome := 'insufficient'; a := p_hold; b := available; RETURN; END IF;
                BEGIN
                    INSERT INTO jobs(id, account_id, model_id, parameters, seed, output_names, status, attempts, created_at,
                                     price_per_image, webhook, batch_key)
                    VALUES (p_id, p_account, p_model, p_parameters, p_seed, p_names, 'queued', 0, p_created, p_price,
                            p_webhook, p_batch_key);
                EXCEPTION WHEN unique_violation THEN
                    outcome := 'duplicate_id'; RETURN;
                END;
                INSERT INTO ledger(account_id, job_id, kind, amount, created_at) VALUES (p_account, p_id, 'hold', p_hold, p_created);
                IF p_scope IS NOT NULL THEN
                    INSERT INTO idempotency(scope, key, fingerprint, job_id, created_at)
                    VALUES (p_scope, p_key, p_fingerprint, p_id, p_created);
                END IF;
                PERFORM pg_notify(p_channel, p_payload);
                outcome := 'ok';
            END $$
            """,
        ],
        // Output retention, as SQLite's migration 9: when the sweeper deleted a succeeded run's images.
        [
            "ALTER TABLE jobs ADD COLUMN outputs_expired_at DOUBLE PRECISION",
            "CREATE INDEX jobs_outputs ON jobs(finished_at) WHERE status = 'succeeded' AND outputs_expired_at IS NULL",
        ],
        // Attempts a drain stopped, as SQLite's migration 10: they do not count against the attempt limit.
        ["ALTER TABLE jobs ADD COLUMN spared_attempts BIGINT NOT NULL DEFAULT 0"],
        // Input retention, as SQLite's migration 11.
        [
            "ALTER TABLE jobs ADD COLUMN inputs_swept_at DOUBLE PRECISION",
            "UPDATE jobs SET inputs_swept_at = finished_at WHERE status IN ('succeeded', 'failed', 'canceled')",
            "CREATE INDEX jobs_inputs ON jobs(finished_at) WHERE inputs_swept_at IS NULL AND status IN ('succeeded', 'failed', 'canceled')",
        ],
        // LoRA downloads under way, as SQLite's migration 12.
        [
            """
            CREATE TABLE lora_fetches (key TEXT PRIMARY KEY, node TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
                                       bytes_done BIGINT NOT NULL DEFAULT 0, bytes_total BIGINT)
            """,
        ],
    ]

    /// Applies the migrations this database has not had; returns the schema version it is at now.
    @discardableResult
    public func migrate() async throws -> Int {
        let logger = self.logger
        return try await transaction { c in
            // One node migrates at a time; the others wait here, then find nothing left to do.
            try await c.query("SELECT pg_advisory_xact_lock(7215046361)", logger: logger)
            try await c.query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)", logger: logger)
            var current = 0
            for try await v in try await c.query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version", logger: logger).decode(Int64.self) {
                current = Int(v)
            }
            guard current <= Self.migrations.count else {
                throw StoreQueryError(sqlState: "", message: "the database is at schema version \(current), newer than this atelier (\(Self.migrations.count)); upgrade atelier")
            }
            for (i, statements) in Self.migrations.enumerated() where i + 1 > current {
                for sql in statements { try await c.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
                try await c.query("INSERT INTO schema_version(version) VALUES (\(i + 1))", logger: logger)
            }
            return Self.migrations.count
        }
    }
}
