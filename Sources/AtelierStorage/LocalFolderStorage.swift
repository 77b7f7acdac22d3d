import AtelierCore
import Foundation

/// Images in one folder on this machine (or on a disk every node mounts), named by 128 random bits in hex. A name
/// is accepted only if it has exactly that shape, so `..`, encoded traversal, slashes and absolute paths never
/// reach the file system. The worker writes straight into the folder: staging is the stored file.
public struct LocalFolderStorage: ImageStorage {
    public let root: URL

    public init(root: URL) throws {
        self.root = root.standardizedFileURL
        try FileManager.default.createDirectory(at: self.root, withIntermediateDirectories: true)
    }

    public func newName(format: OutputFormat) -> String {
        ImageName.random(format: format)
    }

    public func localPath(for name: String) -> String? {
        guard ImageName.isValid(name) else { return nil }
        return root.appendingPathComponent(name).path
    }

    public func stagingPath(for name: String) -> String? { localPath(for: name) }

    public func publish(name: String) async throws {
        guard let path = localPath(for: name), FileManager.default.fileExists(atPath: path) else { throw ImageMissing(name) }
    }

    public func put(name: String, bytes: [UInt8]) async throws {
        guard let path = localPath(for: name) else { throw ImageMissing(name) }
        // Whole or not at all: a reader never sees half a file.
        try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public func localCopy(of name: String) async throws -> String {
        guard let path = localPath(for: name), FileManager.default.fileExists(atPath: path) else { throw ImageMissing(name) }
        return path
    }

    public func releaseLocalCopy(of name: String) {}

    public func read(name: String, range: ClosedRange<Int>?) async throws -> StoredImage? {
        guard let path = localPath(for: name), let handle = FileHandle(forReadingAtPath: path) else { return nil }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        var span = 0..<size
        if let range { span = min(range.lowerBound, size)..<min(range.upperBound + 1, size) }
        try handle.seek(toOffset: UInt64(span.lowerBound))
        let count = span.count
        let chunks = AsyncThrowingStream<[UInt8], any Error> { continuation in
            var left = count
            while left > 0, let data = try? handle.read(upToCount: min(left, 1 << 16)), !data.isEmpty {
                continuation.yield(Array(data))
                left -= data.count
            }
            try? handle.close()
            continuation.finish()
        }
        return StoredImage(contentLength: count, contentRange: range == nil ? nil : "bytes \(span.lowerBound)-\(span.upperBound - 1)/\(size)", chunks: chunks)
    }

    public func presignedURL(for name: String, expires: Int) -> String? { nil }

    public func objectKey(for name: String) -> String? { ImageName.isValid(name) ? name : nil }

    public func remove(name: String) async {
        try? await delete(name: name)
    }

    public func probe() async throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw StorageUnavailable("the folder \(root.path) is gone")
        }
    }

    public func delete(name: String) async throws {
        guard let path = localPath(for: name), FileManager.default.fileExists(atPath: path) else { return }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw StorageUnavailable("cannot delete \(name) from the folder: \(error.localizedDescription)")
        }
    }
}

/// The one shape of an image's name, in every store: 32 lowercase hex digits and a known format's extension.
public enum ImageName {
    public static func random(format: OutputFormat) -> String {
        var rng = SystemRandomNumberGenerator()
        let hex = (0..<2).map { _ in String(rng.next() as UInt64, radix: 16) }
            .map { String(repeating: "0", count: 16 - $0.count) + $0 }.joined()
        return "\(hex).\(format.fileExtension)"
    }

    public static func isValid(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 32, OutputFormat(rawValue: String(parts[1])) != nil else { return false }
        return parts[0].allSatisfy { $0.isHexDigit && ($0.isNumber || $0.isLowercase) }
    }
}
