import Foundation

public struct Account: Sendable, Equatable, Codable {
    public var id: Int64
    public var name: String
    public var createdAt: Date
    public init(id: Int64, name: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }
}

/// Accounts: who pays, and the secret their webhooks are signed with. Implementations: `SQLiteStore`,
/// `PostgresStore` (AtelierPersistence), which keep accounts, keys and the ledger in one database.
public protocol AccountStore: Sendable {
    /// Returns the account's id, creating the account if it does not exist.
    func ensureAccount(named name: String) async throws -> Int64
    func account(named name: String) async throws -> Account?
    func accounts() async throws -> [Account]
    /// The account's webhook signing secret (`whsec_…`), made on first use.
    func webhookSecret(accountID: Int64) async throws -> String
    /// Replaces the account's webhook secret; deliveries from now on are signed with the new one.
    func rotateWebhookSecret(accountID: Int64) async throws -> String
}

/// API keys, stored only as hashes (and a prefix to name them by).
public protocol KeyStore: Sendable {
    /// Stores a key (its hash and prefix only) for the account.
    func addKey(_ key: APIKey, accountID: Int64) async throws
    /// The key whose hash matches, revoked or not; nil if none.
    func lookupKey(hash: String) async throws -> KeyRecord?
    func listKeys() async throws -> [KeyRecord]
    /// Marks the key with this prefix revoked; false if no such key exists.
    func revokeKey(prefix: String) async throws -> Bool
    func keyCount() async throws -> Int
}

/// The accounts' money: an append-only ledger, the balance derived from it (`LedgerKind`'s effects, the one
/// definition), and what runs were charged. Holds, captures and releases are written by `JobStore`'s transitions.
public protocol LedgerStore: Sendable {
    /// Appends a credit (amount > 0) or an adjustment (any sign, not below a zero available balance) with its
    /// reason; returns the new balance.
    func addCredit(accountID: Int64, amount: Int64, kind: LedgerKind, reason: String, now: Date) async throws -> Balance
    func balance(accountID: Int64) async throws -> Balance
    func ledger(accountID: Int64) async throws -> [LedgerEntry]
    /// Charged runs, newest first, strictly older than `before` (a cursor from a previous page) when given.
    func usage(accountID: Int64, before: Int64?, limit: Int) async throws -> [UsageItem]
    /// Charges per model between two times.
    func spend(accountID: Int64, from: Date, to: Date) async throws -> [ModelSpend]
}

/// Accounts, their keys and their money, as one database holds them.
public typealias AccountsStore = AccountStore & KeyStore & LedgerStore
