import AtelierCore
import Foundation
import PostgresNIO

/// Accounts, keys, credit and the ledger's reads.
extension PostgresStore {
    public func ensureAccount(named name: String) async throws -> Int64 {
        let now = Date().timeIntervalSince1970
        // ON CONFLICT: two nodes creating the same account get the one row.
        _ = try await rows("INSERT INTO accounts(name, created_at) VALUES (\(name), \(now)) ON CONFLICT (name) DO NOTHING")
        guard let id = try await rows("SELECT id FROM accounts WHERE name = \(name)").first?.int("id") else {
            throw StoreQueryError(sqlState: "", message: "account \(name) vanished after it was created")
        }
        return id
    }

    public func addKey(_ key: APIKey, accountID: Int64) async throws {
        let now = Date().timeIntervalSince1970
        _ = try await rows("INSERT INTO api_keys(hash, prefix, account_id, created_at) VALUES (\(key.hash), \(key.prefix), \(accountID), \(now))")
    }



    public func lookupKey(hash: String) async throws -> KeyRecord? {
        try await rows(PostgresQuery(unsafeSQL: StoredRecords.keySelect + " WHERE k.hash = $1", binds: Self.binds(hash))).first.map(StoredRecords.key)
    }

    public func listKeys() async throws -> [KeyRecord] {
        try await rows(PostgresQuery(unsafeSQL: StoredRecords.keySelect + " ORDER BY k.created_at")).map(StoredRecords.key)
    }

    public func revokeKey(prefix: String) async throws -> Bool {
        let now = Date().timeIntervalSince1970
        // Revoking twice is not an error: true while the key exists.
        _ = try await rows("UPDATE api_keys SET revoked_at = \(now) WHERE prefix = \(prefix) AND revoked_at IS NULL")
        return try await !rows("SELECT 1 AS x FROM api_keys WHERE prefix = \(prefix)").isEmpty
    }

    public func account(named name: String) async throws -> Account? {
        try await rows("SELECT id, name, created_at FROM accounts WHERE name = \(name)").first.map(StoredRecords.account)
    }

    public func accounts() async throws -> [Account] {
        try await rows("SELECT id, name, created_at FROM accounts ORDER BY id").map(StoredRecords.account)
    }


    /// The account's balance and what it holds, by the one definition (`LedgerSQL`), as SQLite's.
    static func balance(_ c: PostgresConnection, _ accountID: Int64, logger: Logger) async throws -> Balance {
        let rows = try await c.query(
            "SELECT (\(unescaped: LedgerSQL.balance))::bigint AS balance, (\(unescaped: LedgerSQL.held))::bigint AS held FROM ledger WHERE account_id = \(accountID)",
            logger: logger)
        for try await (balance, held) in rows.decode((Int64, Int64).self) { return Balance(balance: balance, held: held) }
        return Balance(balance: 0, held: 0)
    }

    /// Locks the account's row for the rest of the transaction: every spend of one account's credit goes through
    /// here, so two nodes cannot both see the same available balance. False if there is no such account.
    static func lockAccount(_ c: PostgresConnection, _ accountID: Int64, logger: Logger) async throws -> Bool {
        for try await _ in try await c.query("SELECT id FROM accounts WHERE id = \(accountID) FOR UPDATE", logger: logger) { return true }
        return false
    }

    public func balance(accountID: Int64) async throws -> Balance {
        let logger = self.logger
        return try await transaction { c in try await Self.balance(c, accountID, logger: logger) }
    }

    public func addCredit(accountID: Int64, amount: Int64, kind: LedgerKind, reason: String, now: Date) async throws -> Balance {
        precondition(kind == .credit || kind == .adjustment, "only credits and adjustments are added by hand")
        let logger = self.logger
        let at = now.timeIntervalSince1970
        return try await transaction { c in
            guard try await Self.lockAccount(c, accountID, logger: logger) else { throw JobStoreError.noSuchAccount(accountID) }
            let before = try await Self.balance(c, accountID, logger: logger)
            if before.available + amount < 0 { throw JobStoreError.wouldGoNegative(available: before.available) }
            try await c.query(
                "INSERT INTO ledger(account_id, job_id, kind, amount, reason, created_at) VALUES (\(accountID), NULL, \(kind.rawValue), \(amount), \(reason), \(at))",
                logger: logger)
            return try await Self.balance(c, accountID, logger: logger)
        }
    }

    public func ledger(accountID: Int64) async throws -> [LedgerEntry] {
        try await rows("SELECT * FROM ledger WHERE account_id = \(accountID) ORDER BY id").map { r in
            LedgerEntry(id: r.int("id") ?? 0, accountID: r.int("account_id") ?? 0, jobID: r.int("job_id"),
                        kind: LedgerKind(rawValue: r.text("kind") ?? "") ?? .adjustment, amount: r.int("amount") ?? 0,
                        reason: r.text("reason"), createdAt: r.date("created_at") ?? Date(timeIntervalSince1970: 0))
        }
    }

    public func usage(accountID: Int64, before: Int64?, limit: Int) async throws -> [UsageItem] {
        try await rows(
            """
            SELECT l.id, l.job_id, l.amount, l.created_at, j.model_id, j.price_per_image
            FROM ledger l JOIN jobs j ON j.id = l.job_id
            WHERE l.account_id = \(accountID) AND l.kind = 'capture' AND l.id < \(before ?? .max)
            ORDER BY l.id DESC LIMIT \(Int64(limit))
            """
        ).map { r in
            let amount = r.int("amount") ?? 0
            let price = r.int("price_per_image") ?? 0
            return UsageItem(cursor: r.int("id") ?? 0, requestID: r.int("job_id") ?? 0, modelID: r.text("model_id") ?? "",
                             images: price > 0 ? Int(amount / price) : 0, amount: amount,
                             chargedAt: r.date("created_at") ?? Date(timeIntervalSince1970: 0))
        }
    }

    public func spend(accountID: Int64, from: Date, to: Date) async throws -> [ModelSpend] {
        try await rows(
            """
            SELECT j.model_id, COUNT(*)::bigint AS runs, SUM(l.amount / GREATEST(j.price_per_image, 1))::bigint AS images,
                   SUM(l.amount)::bigint AS amount
            FROM ledger l JOIN jobs j ON j.id = l.job_id
            WHERE l.account_id = \(accountID) AND l.kind = 'capture'
              AND l.created_at >= \(from.timeIntervalSince1970) AND l.created_at < \(to.timeIntervalSince1970)
            GROUP BY j.model_id ORDER BY j.model_id
            """
        ).map { r in
            ModelSpend(modelID: r.text("model_id") ?? "", runs: Int(r.int("runs") ?? 0), images: Int(r.int("images") ?? 0),
                       amount: r.int("amount") ?? 0)
        }
    }

    public func webhookSecret(accountID: Int64) async throws -> String {
        let fresh = WebhookSignature.newSecret()
        // COALESCE: the first caller's secret wins; a racing second node gets the same one back.
        guard let row = try await rows(
            "UPDATE accounts SET webhook_secret = COALESCE(webhook_secret, \(fresh)) WHERE id = \(accountID) RETURNING webhook_secret"
        ).first, let secret = row.text("webhook_secret") else { throw JobStoreError.noSuchAccount(accountID) }
        return secret
    }

    public func rotateWebhookSecret(accountID: Int64) async throws -> String {
        let fresh = WebhookSignature.newSecret()
        guard try await !rows("UPDATE accounts SET webhook_secret = \(fresh) WHERE id = \(accountID) RETURNING id").isEmpty else {
            throw JobStoreError.noSuchAccount(accountID)
        }
        return fresh
    }

    public func keyCount() async throws -> Int {
        Int(try await rows("SELECT COUNT(*)::bigint AS n FROM api_keys").first?.int("n") ?? 0)
    }

    static func binds(_ values: String...) -> PostgresBindings {
        var b = PostgresBindings()
        for v in values { b.append(v) }
        return b
    }
}
