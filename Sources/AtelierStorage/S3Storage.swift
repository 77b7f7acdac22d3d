import AtelierCore
import AtelierS3
import Foundation
import Logging

/// Images in an S3-compatible bucket, under `PREFIX/outputs/` or `PREFIX/inputs/`, shared by every API node and
/// GPU worker node. The worker writes each image to a staging folder on its own disk; `publish` uploads it (the
/// run is recorded as succeeded only after that) and removes the staged file. Readers on a node without the image
/// (the worker, for a run's input) get a local copy in the staging folder.
public struct S3Storage: ImageStorage {
    public let client: S3Client
    /// `prefix/outputs`, `prefix/inputs` or `outputs` without a prefix.
    public let keyPrefix: String
    /// This node's staging folder for the kind (created, and emptied of a killed process's leftovers, at start).
    public let staging: URL
    /// The bucket's breaker and metrics, shared with the other kind's store on the same bucket.
    let guarded: StorageGuard
    let logger: Logger

    public init(client: S3Client, prefix: String, kind: String, staging: URL, guarded: StorageGuard, logger: Logger) throws {
        self.client = client
        self.guarded = guarded
        let trimmed = prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        keyPrefix = trimmed.isEmpty ? kind : "\(trimmed)/\(kind)"
        self.staging = staging.standardizedFileURL
        self.logger = logger
        let files = FileManager.default
        try? files.removeItem(at: self.staging)
        try files.createDirectory(at: self.staging, withIntermediateDirectories: true)
    }

    public func newName(format: OutputFormat) -> String { ImageName.random(format: format) }

    public func objectKey(for name: String) -> String? {
        ImageName.isValid(name) ? "\(keyPrefix)/\(name)" : nil
    }

    public func stagingPath(for name: String) -> String? {
        guard ImageName.isValid(name) else { return nil }
        return staging.appendingPathComponent(name).path
    }

    public func localPath(for name: String) -> String? { nil }

    public func publish(name: String) async throws {
        guard let path = stagingPath(for: name), let key = objectKey(for: name),
              let data = FileManager.default.contents(atPath: path) else { throw ImageMissing(name) }
        try await guarded.call("put") { try await client.put(key: key, bytes: Array(data), contentType: Self.contentType(of: name)) }
        try? FileManager.default.removeItem(atPath: path)
    }

    public func put(name: String, bytes: [UInt8]) async throws {
        guard let key = objectKey(for: name) else { throw ImageMissing(name) }
        try await guarded.call("put") { try await client.put(key: key, bytes: bytes, contentType: Self.contentType(of: name)) }
    }

    public func localCopy(of name: String) async throws -> String {
        guard let path = stagingPath(for: name), let key = objectKey(for: name) else { throw ImageMissing(name) }
        let object = try await guarded.call("get") { try await client.get(key: key) }
        guard let object else { throw ImageMissing(name) }
        var data = Data()
        do {
            for try await chunk in object.body { data.append(contentsOf: chunk.readableBytesView) }
        } catch {
            throw StorageUnavailable("reading \(key) was cut off: \(error)")
        }
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        return path
    }

    public func releaseLocalCopy(of name: String) {
        if let path = stagingPath(for: name) { try? FileManager.default.removeItem(atPath: path) }
    }

    public func read(name: String, range: ClosedRange<Int>?) async throws -> StoredImage? {
        guard let key = objectKey(for: name) else { return nil }
        guard let object = try await guarded.call("get", { try await client.get(key: key, range: range) }) else { return nil }
        let body = object.body
        let chunks = AsyncThrowingStream<[UInt8], any Error> { continuation in
            let task = Task {
                do {
                    for try await chunk in body { continuation.yield(Array(chunk.readableBytesView)) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: StorageUnavailable("reading \(key) was cut off: \(error)"))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        return StoredImage(contentLength: object.contentLength, contentRange: object.contentRange, chunks: chunks)
    }

    public func presignedURL(for name: String, expires: Int) -> String? {
        objectKey(for: name).map { client.presignedGetURL(key: $0, expires: expires) }
    }

    public func remove(name: String) async {
        do {
            try await delete(name: name)
        } catch {
            logger.warning("could not delete \(objectKey(for: name) ?? name) from the bucket: \(error)")
        }
    }

    public func probe() async throws {
        _ = try await guarded.call("head") { try await client.head(key: "\(keyPrefix)/.atelier-probe") }
    }

    public func delete(name: String) async throws {
        if let path = stagingPath(for: name) { try? FileManager.default.removeItem(atPath: path) }
        guard let key = objectKey(for: name) else { return }
        try await guarded.call("delete") { try await client.delete(key: key) }
    }

    static func contentType(of name: String) -> String {
        OutputFormat(rawValue: String(name.split(separator: ".").last ?? "")).map(\.contentType) ?? "application/octet-stream"
    }
}
