import AtelierCore
import AtelierS3
import Foundation

/// The cluster's LoRA files in the bucket every node shares: `PREFIX/loras/<sha256>.safetensors`, and the URL
/// index as `PREFIX/loras/index/<sha256 of the URL>.json`. Calls go through the bucket's guard (breaker, metrics).
public struct S3LoRAStore: LoRAStore {
    let client: S3Client
    let keyPrefix: String
    let guarded: StorageGuard

    public init(client: S3Client, prefix: String, guarded: StorageGuard) {
        self.client = client
        self.guarded = guarded
        let trimmed = prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        keyPrefix = trimmed.isEmpty ? "loras" : "\(trimmed)/loras"
    }

    public func copy(sha256: String, to path: String) async throws -> Bool {
        guard LoRAIndexEntry.isHash(sha256) else { return false }
        let key = "\(keyPrefix)/\(sha256).safetensors"
        guard let object = try await guarded.call("get", { try await client.get(key: key) }) else { return false }
        let partial = path + ".partial"
        FileManager.default.createFile(atPath: partial, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: partial) else { throw StorageUnavailable("cannot write \(partial)") }
        do {
            // Streamed to disk: a LoRA may be far larger than an image.
            for try await chunk in object.body { try handle.write(contentsOf: Array(chunk.readableBytesView)) }
            try handle.close()
            try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: partial, toPath: path)
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: partial)
            throw StorageUnavailable("reading \(key) was cut off: \(error)")
        }
        return true
    }

    public func store(sha256: String, from path: String) async throws {
        guard LoRAIndexEntry.isHash(sha256) else { return }
        let key = "\(keyPrefix)/\(sha256).safetensors"
        if try await guarded.call("head", { try await client.head(key: key) }) != nil { return }
        guard let data = FileManager.default.contents(atPath: path) else { throw StorageUnavailable("cannot read \(path)") }
        try await guarded.call("put") { try await client.put(key: key, bytes: Array(data), contentType: "application/octet-stream") }
    }

    public func indexEntry(url: String) async throws -> LoRAIndexEntry? {
        let key = "\(keyPrefix)/index/\(LoRAIndexKey.name(url)).json"
        guard let object = try await guarded.call("get", { try await client.get(key: key) }) else { return nil }
        var data = Data()
        do {
            for try await chunk in object.body { data.append(contentsOf: chunk.readableBytesView) }
        } catch {
            throw StorageUnavailable("reading \(key) was cut off: \(error)")
        }
        return try? JSONDecoder().decode(LoRAIndexEntry.self, from: data)
    }

    public func recordIndex(url: String, entry: LoRAIndexEntry) async throws {
        let key = "\(keyPrefix)/index/\(LoRAIndexKey.name(url)).json"
        let bytes = Array(try JSONEncoder().encode(entry))
        try await guarded.call("put") { try await client.put(key: key, bytes: bytes, contentType: "application/json") }
    }
}
