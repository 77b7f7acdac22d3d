import Foundation

/// Accounts and their API keys. Implementations: `SQLiteStore` (AtelierPersistence).
public protocol KeyStore: Sendable {
    /// Returns the account's id, creating the account if it does not exist.
    func ensureAccount(named name: String) async throws -> Int64
    /// Stores a key (its hash and prefix only) for the account.
    func addKey(_ key: APIKey, accountID: Int64) async throws
    /// The key whose hash matches, revoked or not; nil if none.
    func lookupKey(hash: String) async throws -> KeyRecord?
    func listKeys() async throws -> [KeyRecord]
    /// Marks the key with this prefix revoked; false if no such key exists.
    func revokeKey(prefix: String) async throws -> Bool
    func keyCount() async throws -> Int
}

/// Runs: the durable queue. Every state change is a checked transition, so a late or repeated report cannot
/// change a finished job. Implementations: `SQLiteStore`.
public protocol JobStore: Sendable {
    /// Persists a new queued job. Throws `JobStoreError.duplicateID` if the id is taken (the caller picks another).
    func insert(_ job: Job) async throws
    func job(id: Int64) async throws -> Job?
    /// Atomically moves the oldest queued job to running and returns it; nil when none is queued.
    func claimNext(now: Date) async throws -> Job?
    /// Records success; returns false (and changes nothing) if the job is not running any more.
    func complete(id: Int64, result: JobResult, now: Date) async throws -> Bool
    /// Records failure; returns false if the job is already terminal.
    func fail(id: Int64, failure: JobFailure, now: Date) async throws -> Bool
    /// Jobs left running by a process that died: failed (they may have been half-done) so none stays running.
    func failOrphanedRunning(failure: JobFailure, now: Date) async throws -> Int
}

public enum JobStoreError: Error, Sendable, Equatable {
    case duplicateID(Int64)
}

/// Wall-clock time, injected so tests control it.
public protocol WallClock: Sendable {
    func now() -> Date
}

public struct SystemWallClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// Where finished images live. The worker writes into `localPath(for:)`; the HTTP layer serves `/storage/outputs/`.
/// Implementations: `LocalFolderStorage` (AtelierStorage); an S3 bucket follows in a later issue.
public protocol OutputStorage: Sendable {
    /// A fresh, unguessable file name for an image of this format.
    func newName(format: OutputFormat) -> String
    /// The absolute path the worker writes the named file to; nil for a name that is not a valid output name.
    func localPath(for name: String) -> String?
}
