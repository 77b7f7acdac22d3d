import Foundation

/// Where images live: a run's outputs, and the input images a client sent until the run ends. One value serves one
/// kind (outputs or inputs). Implementations: `LocalFolderStorage` (a folder on this machine or a shared disk) and
/// `S3Storage` (a bucket shared by API nodes and GPU worker nodes), both in AtelierStorage.
///
/// Producers never write the store directly: the worker writes an image to `stagingPath(for:)` on its own disk, and
/// `publish(name:)` makes it the stored image (for a folder the staged file already is; a bucket uploads it). So a
/// run is recorded as succeeded, and charged, only once every image is stored.
public protocol ImageStorage: Sendable {
    /// A fresh, unguessable name for an image of this format.
    func newName(format: OutputFormat) -> String
    /// The file on this machine a producer writes the named image to before `publish`; nil for a name that is not
    /// a valid image name.
    func stagingPath(for name: String) -> String?
    /// Stores the staged file under its name. Throws `StorageUnavailable` when the store cannot be reached.
    func publish(name: String) async throws
    /// Stores bytes a client sent (an input image). Throws `StorageUnavailable`.
    func put(name: String, bytes: [UInt8]) async throws
    /// A file on this machine holding the named image, for a reader such as the worker; `releaseLocalCopy` when
    /// done. Throws `StorageUnavailable`, or `ImageMissing`.
    func localCopy(of name: String) async throws -> String
    func releaseLocalCopy(of name: String)
    /// The stored file itself when images live on this machine's disk (served straight from disk); nil for a bucket.
    func localPath(for name: String) -> String?
    /// The image's bytes, streamed; nil when there is no such image. Throws `StorageUnavailable`.
    func read(name: String, range: ClosedRange<Int>?) async throws -> StoredImage?
    /// A URL that fetches the image without credentials until `expires` seconds from now; nil when the store has
    /// no such URLs (a folder).
    func presignedURL(for name: String, expires: Int) -> String?
    /// The stored object's address under the store's root (`outputs/NAME` or `prefix/outputs/NAME`), for a CDN.
    func objectKey(for name: String) -> String?
    /// Deletes the named image if it exists; best effort (a failure is logged, never thrown).
    func remove(name: String) async
    /// Checks that the store answers (a bucket: a HEAD of a key that need not exist). Throws `StorageUnavailable`.
    func probe() async throws
    /// Deletes the named image; an image that is not there is not an error. Throws `StorageUnavailable` when the
    /// store cannot be reached, so a caller that must know (the retention sweeper) tries again later.
    func delete(name: String) async throws
}

/// An image as a store streams it.
public struct StoredImage: Sendable {
    /// Bytes in this answer; nil when the store did not say.
    public var contentLength: Int?
    /// `bytes A-B/TOTAL` when a range was read.
    public var contentRange: String?
    public var chunks: AsyncThrowingStream<[UInt8], any Error>

    public init(contentLength: Int?, contentRange: String?, chunks: AsyncThrowingStream<[UInt8], any Error>) {
        self.contentLength = contentLength
        self.contentRange = contentRange
        self.chunks = chunks
    }
}

/// The image store cannot be reached (the bucket's server is down or refuses our credentials). Reads answer 503
/// with Retry-After; a run whose images cannot be stored is retried or failed, never succeeded without them.
public struct StorageUnavailable: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "the image store is unavailable: \(reason)" }
}

/// The named image is not in the store.
public struct ImageMissing: Error, Sendable, CustomStringConvertible {
    public var name: String
    public init(_ name: String) { self.name = name }
    public var description: String { "image \(name) is not in the store" }
}
