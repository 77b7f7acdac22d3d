import AtelierCore
@testable import AtelierEngine
import AtelierMetrics
import AtelierStorage
import AtelierTesting
import Foundation
import Logging
import Synchronization
import Testing

/// How a worker node brings a run's LoRAs: one download for concurrent runs that need the same new URL, the
/// cluster's store for a second node, the node's disk after that; a bad file ends the run naming its parameter and
/// is never stored; the disk cache keeps to its budget without evicting a file in use. The store is a real folder;
/// the downloader writes real files (the HTTP download itself is tested end to end in tests/e2e/test_loras.py).
@Suite struct LoRAFilesTests {
    /// Serves bytes for URLs, counting calls, after a pause so that concurrent callers overlap.
    final class Downloads: LoRADownloader {
        let files: [String: [UInt8]]
        let calls = Mutex<[String]>([])
        init(_ files: [String: [UInt8]]) { self.files = files }
        func download(_ url: URL, maxBytes: Int, to path: String,
                      progress: @escaping @Sendable (LoRAFetchProgress) -> Void) async throws(LoRAFileProblem) -> Int {
            calls.withLock { $0.append(url.absoluteString) }
            try? await Task.sleep(for: .milliseconds(200))
            guard let bytes = files[url.absoluteString] else { throw .unavailable("its URL answered HTTP 404, not 200 with the file") }
            guard bytes.count <= maxBytes else { throw .tooLarge(limit: maxBytes) }
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            return bytes.count
        }
    }

    /// A safetensors file of `count` float32 zeros.
    static func safetensors(_ count: Int) -> [UInt8] {
        let header = Array(#"{"w":{"dtype":"F32","shape":[\#(count)],"data_offsets":[0,\#(count * 4)]}}"#.utf8)
        var n = UInt64(header.count)
        let length = (0..<8).map { _ in defer { n >>= 8 }; return UInt8(n & 0xff) }
        return length + header + [UInt8](repeating: 0, count: count * 4)
    }

    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lora-files-\(UUID().uuidString)")

    func files(node: String, _ downloads: Downloads, budget: Int = 1_000_000) throws -> LoRAFiles {
        try LoRAFiles(store: FolderLoRAStore(root: dir.appendingPathComponent("store")), downloader: downloads,
                      cacheDirectory: dir.appendingPathComponent("\(node)-cache"), cacheBudget: budget, limits: LoRALimits(),
                      metrics: AtelierMetrics(), logger: Logger(label: "test"))
    }

    func job(_ urls: [String]) throws -> Job {
        let list = urls.map { #"{"path": "\#($0)"}"# }.joined(separator: ",")
        let request = try RunRequestDecoder(catalog: ModelCatalog([try RepositoryCatalog.entry("flux-dev-lora")])).decode([
            "model_id": .string("flux-dev-lora"), "prompt": .string("a fox"), "aspect_ratio": .string("1:1"),
            "loras": .string("[\(list)]"),
        ])
        return Job(id: Int64.random(in: Job.idRange), accountID: 1, request: request, outputNames: [], createdAt: Date())
    }

    func ready(_ prepared: LoRAFiles.Prepared) -> [LoRAFiles.Local] {
        if case .ready(let l) = prepared { return l }
        Issue.record("not ready: \(prepared)")
        return []
    }

    @Test func concurrentRunsDownloadOnceAndASecondNodeReadsTheStore() async throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = "https://example.com/style.safetensors"
        let downloads = Downloads([url: Self.safetensors(100)])
        let first = try files(node: "a", downloads)
        let jobs = try (0..<5).map { _ in try job([url]) }
        let results = await withTaskGroup(of: [LoRAFiles.Local].self) { group in
            for j in jobs { group.addTask { self.ready(await first.localFiles(of: j)) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(downloads.calls.withLock { $0 } == [url])
        #expect(Set(results.flatMap { $0.map(\.sha256) }).count == 1 && results.allSatisfy { $0.first?.origin == .download })
        for r in results { first.release(r) }

        let second = try files(node: "b", downloads)
        let fromStore = ready(await second.localFiles(of: try job([url])))
        #expect(fromStore.first?.origin == .clusterStore && downloads.calls.withLock { $0.count } == 1)
        #expect(ready(await second.localFiles(of: try job([url]))).first?.origin == .nodeDisk)
        #expect(FileManager.default.contents(atPath: fromStore[0].path).map(Array.init) == Self.safetensors(100))
    }

    @Test func aBadFileEndsTheRunNamingItsParameterAndIsNeverStored() async throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = "https://example.com/ok.safetensors", pickle = "https://example.com/model.ckpt"
        let downloads = Downloads([good: Self.safetensors(4), pickle: [0x80, 0x04, 0x95] + [UInt8](repeating: 1, count: 64)])
        let node = try files(node: "a", downloads)
        guard case .ended(.refused(let failure)) = await node.localFiles(of: try job([good, pickle])) else {
            Issue.record("a pickle was accepted")
            return
        }
        #expect(failure.code == .loraInvalid && failure.message.hasPrefix("loras[1].path:") && failure.message.contains("pickle"))
        guard case .ended(.refused(let missing)) = await node.localFiles(of: try job(["https://example.com/gone.safetensors"])) else {
            Issue.record("a 404 was accepted")
            return
        }
        #expect(missing.code == .loraUnavailable && missing.message.contains("404"))
        let stored = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("store").path).filter { $0.hasSuffix(".safetensors") }
        #expect(stored.count == 1)  // the good one only
    }

    @Test func theDiskCacheKeepsItsBudgetButNeverEvictsAFileInUse() async throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let urls = (0..<3).map { "https://example.com/\($0).safetensors" }
        let downloads = Downloads(Dictionary(uniqueKeysWithValues: urls.enumerated().map { ($1, Self.safetensors(1000 + $0)) }))
        let node = try files(node: "a", downloads, budget: 9_000)  // room for two files of about 4 KB
        let a = ready(await node.localFiles(of: try job([urls[0]])))
        node.release(a)
        try await Task.sleep(for: .milliseconds(20))
        let held = ready(await node.localFiles(of: try job([urls[1]])))  // kept pinned: a run is using it
        try await Task.sleep(for: .milliseconds(20))
        let c = ready(await node.localFiles(of: try job([urls[2]])))
        #expect(!FileManager.default.fileExists(atPath: a[0].path), "the least recently used file stays")
        #expect(FileManager.default.fileExists(atPath: held[0].path) && FileManager.default.fileExists(atPath: c[0].path))
        node.release(held + c)
        // Evicted here, it is still in the cluster's store: the next run reads it from there, not from its URL.
        #expect(ready(await node.localFiles(of: try job([urls[0]]))).first?.origin == .clusterStore)
        #expect(downloads.calls.withLock { $0.count } == 3)
    }
}
