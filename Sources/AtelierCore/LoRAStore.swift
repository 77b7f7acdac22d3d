import Crypto
import Foundation

/// The cluster's LoRA files: content-addressed by SHA-256 in the shared store (the data folder, or the S3 bucket
/// every node uses), with an index from each URL fetched to its file's hash, so a LoRA is downloaded from its URL
/// once per cluster and a repeated URL costs no download. Implementations: `FolderLoRAStore` and `S3LoRAStore`
/// (AtelierStorage). Every method throws `StorageUnavailable` when the store cannot be reached.
public protocol LoRAStore: Sendable {
    /// Copies the file with this hash to `path` on this machine; false when the store has no such file.
    func copy(sha256: String, to path: String) async throws -> Bool
    /// Stores the file at `path` under its hash (a second store of the same hash is harmless).
    func store(sha256: String, from path: String) async throws
    /// What `url` was found to hold when it was first fetched; nil when it never was.
    func indexEntry(url: String) async throws -> LoRAIndexEntry?
    func recordIndex(url: String, entry: LoRAIndexEntry) async throws
}

/// What a LoRA URL held when the cluster fetched it: later runs naming the URL use this file (a URL whose content
/// changes later keeps serving the first; a new URL, e.g. with another `?v=`, fetches again).
public struct LoRAIndexEntry: Sendable, Equatable, Codable {
    public var sha256: String
    public var bytes: Int
    public init(sha256: String, bytes: Int) {
        self.sha256 = sha256
        self.bytes = bytes
    }

    /// A content hash as stored: 64 lowercase hex digits (anything else is never used as a file name).
    public static func isHash(_ text: String) -> Bool {
        text.count == 64 && text.allSatisfy { $0.isHexDigit && ($0.isNumber || $0.isLowercase) }
    }
}

/// An index entry's name: the URL's SHA-256 (a URL may hold any character; a hash is a safe file name and key).
public enum LoRAIndexKey {
    public static func name(_ url: String) -> String {
        SHA256.hash(data: Data(url.utf8)).hex
    }
}

/// Fetches a LoRA's URL to a file on this machine through the server's outbound policy (every hop checked), with
/// the operator's token for the hosts it belongs to. Implementation: `OutboundLoRADownloader` (AtelierRuns).
public protocol LoRADownloader: Sendable {
    /// Writes the body to `path` and returns its length, telling `progress` how far it got as the body streams;
    /// throws `.unavailable` (refused, unanswered, not 200) or `.tooLarge` (cut off past `maxBytes`).
    func download(_ url: URL, maxBytes: Int, to path: String,
                  progress: @escaping @Sendable (LoRAFetchProgress) -> Void) async throws(LoRAFileProblem) -> Int
}

/// Who is downloading a LoRA URL now, kept in the database every node shares, so that the cluster downloads each
/// URL once even when runs on several nodes need it at the same moment: one node holds the lease (renewing it with
/// its progress, which `/check` shows), the others wait for the store's index to name the file. A lease whose
/// holder died lapses. Implementations: `SQLiteStore`, `PostgresStore` (on the database's clock).
public protocol LoRAFetchLeases: Sendable {
    /// Takes the download of `key` (`LoRAIndexKey.name(url)`) for `seconds`, unless another node holds a live lease;
    /// true when this node holds it now.
    func claimLoRAFetch(key: String, node: String, seconds: Int, now: Date) async throws -> Bool
    /// Extends this node's lease and records its progress; false when it no longer holds it.
    func renewLoRAFetch(key: String, node: String, seconds: Int, progress: LoRAFetchProgress, now: Date) async throws -> Bool
    func releaseLoRAFetch(key: String, node: String) async throws
    /// The live download of `key`, if one is under way.
    func loraFetch(key: String, now: Date) async throws -> LoRAFetchProgress?
}

/// How far a LoRA's download has come.
public struct LoRAFetchProgress: Sendable, Equatable {
    public var bytesDone: Int
    /// From the answer's Content-Length; nil when the server did not say.
    public var bytesTotal: Int?
    public init(bytesDone: Int, bytesTotal: Int?) {
        self.bytesDone = bytesDone
        self.bytesTotal = bytesTotal
    }
}
