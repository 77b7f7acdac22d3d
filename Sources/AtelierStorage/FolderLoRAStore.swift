import AtelierCore
import Foundation

/// The cluster's LoRA files in a folder (`DATA/loras`): `<sha256>.safetensors`, and the URL index as one small JSON
/// file per URL under `index/`, named by the URL's own hash. Nodes sharing the data folder share it.
public struct FolderLoRAStore: LoRAStore {
    public let root: URL

    public init(root: URL) throws {
        self.root = root
        try FileManager.default.createDirectory(at: root.appendingPathComponent("index"), withIntermediateDirectories: true)
    }

    func file(_ sha256: String) -> URL? {
        LoRAIndexEntry.isHash(sha256) ? root.appendingPathComponent("\(sha256).safetensors") : nil
    }

    public func copy(sha256: String, to path: String) async throws -> Bool {
        guard let source = file(sha256), FileManager.default.fileExists(atPath: source.path) else { return false }
        let destination = URL(fileURLWithPath: path)
        try? FileManager.default.removeItem(at: destination)
        do {
            try FileManager.default.copyItem(at: source, to: destination)
        } catch {
            throw StorageUnavailable("cannot copy LoRA \(sha256) from the folder: \(error.localizedDescription)")
        }
        return true
    }

    public func store(sha256: String, from path: String) async throws {
        guard let target = file(sha256) else { return }
        if FileManager.default.fileExists(atPath: target.path) { return }
        // Copied beside it, then renamed: a reader never sees half a file. The name is the content's hash, so a
        // node that stored it first meanwhile stored the same bytes.
        let partial = root.appendingPathComponent(".\(sha256).\(UUID().uuidString).partial")
        do {
            try FileManager.default.copyItem(at: URL(fileURLWithPath: path), to: partial)
            try FileManager.default.moveItem(at: partial, to: target)
        } catch {
            try? FileManager.default.removeItem(at: partial)
            if FileManager.default.fileExists(atPath: target.path) { return }
            throw StorageUnavailable("cannot store LoRA \(sha256) in the folder: \(error.localizedDescription)")
        }
    }

    public func indexEntry(url: String) async throws -> LoRAIndexEntry? {
        guard let data = FileManager.default.contents(atPath: indexFile(url).path) else { return nil }
        return try? JSONDecoder().decode(LoRAIndexEntry.self, from: data)
    }

    public func recordIndex(url: String, entry: LoRAIndexEntry) async throws {
        do {
            try JSONEncoder().encode(entry).write(to: indexFile(url), options: .atomic)
        } catch {
            throw StorageUnavailable("cannot write the LoRA index: \(error.localizedDescription)")
        }
    }

    func indexFile(_ url: String) -> URL {
        root.appendingPathComponent("index").appendingPathComponent(LoRAIndexKey.name(url) + ".json")
    }
}
