import AtelierCore
import Foundation
import Synchronization

/// A worker node's own copies of LoRA files (`DATA/lora-cache/<sha256>.safetensors`), within a byte budget: the
/// least recently used go first, never one a run is using. A hit costs no download from the shared store.
final class LoRADiskCache: Sendable {
    let directory: URL
    let budget: Int
    /// Files runs are using now (by hash, with a count): never evicted.
    private let pinned = Mutex<[String: Int]>([:])

    init(directory: URL, budget: Int) throws {
        self.directory = directory
        self.budget = budget
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func path(_ sha256: String) -> String { directory.appendingPathComponent("\(sha256).safetensors").path }

    /// A partial file's path for a download or copy in progress (renamed into place when complete).
    func scratchPath() -> String { directory.appendingPathComponent(".\(UUID().uuidString).partial").path }

    /// True when the file is here; marks it used now.
    func hit(_ sha256: String) -> Bool {
        let p = path(sha256)
        guard FileManager.default.fileExists(atPath: p) else { return false }
        try? FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: p)
        return true
    }

    func pin(_ hashes: [String]) { pinned.withLock { for h in hashes { $0[h, default: 0] += 1 } } }

    func unpin(_ hashes: [String]) {
        pinned.withLock { for h in hashes { $0[h] = ($0[h] ?? 1) > 1 ? $0[h]! - 1 : nil } }
    }

    /// Deletes the least recently used files, unpinned ones only, until the cache fits its budget.
    func trim() -> [String] {
        let keys: [URLResourceKey] = [.contentModificationDateKey, .fileSizeKey]
        let entries = ((try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: keys)) ?? [])
            .filter { $0.pathExtension == "safetensors" }
            .map { url -> (URL, Date, Int) in
                let values = try? url.resourceValues(forKeys: Set(keys))
                return (url, values?.contentModificationDate ?? .distantPast, values?.fileSize ?? 0)
            }
            .sorted { $0.1 < $1.1 }
        var total = entries.reduce(0) { $0 + $1.2 }
        var evicted: [String] = []
        let inUse = pinned.withLock { Set($0.keys) }
        for (url, _, size) in entries where total > budget {
            let hash = url.deletingPathExtension().lastPathComponent
            if inUse.contains(hash) { continue }
            try? FileManager.default.removeItem(at: url)
            total -= size
            evicted.append(hash)
        }
        return evicted
    }
}
