import AtelierCore
import Foundation

/// Accounts, keys, credit and the ledger's reads.
extension SQLiteStore {
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



    public func lookupKey(hash: String) async throws -> KeyRecord? {
        try db.query(StoredRecords.keySelect + " WHERE k.hash = ?", [.text(hash)]).first.map(StoredRecords.key)
    }

    public func listKeys() async throws -> [KeyRecord] {
        try db.query(StoredRecords.keySelect + " ORDER BY k.created_at").map(StoredRecords.key)
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
        try db.query("SELECT id, name, created_at FROM accounts WHERE name = ?", [.text(name)]).first.map(StoredRecords.account)
    }

    public func accounts() async throws -> [Account] {
        try db.query("SELECT id, name, created_at FROM accounts ORDER BY id").map(StoredRecords.account)
    }


    /// The account's balance and what it holds, by the one definition (`LedgerSQL`).
    static let balanceSQL = "SELECT \(LedgerSQL.balance) AS balance, \(LedgerSQL.held) AS held FROM ledger WHERE account_id = ?"

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

    static func setWebhookSecret(_ c: SQLiteDatabase.Connection, accountID: Int64) throws -> String {
        let secret = WebhookSignature.newSecret()
        try c.query("UPDATE accounts SET webhook_secret = ? WHERE id = ?", [.text(secret), .int(accountID)])
        guard c.changes == 1 else { throw JobStoreError.noSuchAccount(accountID) }
        return secret
    }

    public func keyCount() async throws -> Int {
        Int(try db.query("SELECT COUNT(*) AS n FROM api_keys").first?.int("n") ?? 0)
    }
}
