import AtelierCore
import AtelierPersistence
import Foundation
import Testing

/// One node downloads a LoRA URL at a time: a live lease keeps the others out and shows its progress, its holder
/// may claim it again (a retry), and a lease that lapsed (its node died) is taken over. On both stores, each on its
/// own clock (a lapsed lease is one claimed with a negative length: no test sleeps).
extension LedgerStoreTests {
    @Test(arguments: Backend.allCases) func oneNodeDownloadsALoRAURLAtATime(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let key = LoRAIndexKey.name("https://example.com/style.safetensors")
        #expect(try await store.claimLoRAFetch(key: key, node: "A", seconds: 30, now: Date()))
        #expect(try await !store.claimLoRAFetch(key: key, node: "B", seconds: 30, now: Date()))
        #expect(try await store.claimLoRAFetch(key: key, node: "A", seconds: 30, now: Date()))
        #expect(try await store.loraFetch(key: key, now: Date()) == LoRAFetchProgress(bytesDone: 0, bytesTotal: nil))
        let half = LoRAFetchProgress(bytesDone: 500, bytesTotal: 1000)
        #expect(try await store.renewLoRAFetch(key: key, node: "A", seconds: 30, progress: half, now: Date()))
        #expect(try await !store.renewLoRAFetch(key: key, node: "B", seconds: 30, progress: half, now: Date()))
        #expect(try await store.loraFetch(key: key, now: Date()) == half)
        try await store.releaseLoRAFetch(key: key, node: "B")  // not B's: nothing changes
        #expect(try await store.loraFetch(key: key, now: Date()) != nil)
        try await store.releaseLoRAFetch(key: key, node: "A")
        #expect(try await store.loraFetch(key: key, now: Date()) == nil)
        // B takes it, then its node dies: its lease lapses and A takes over.
        #expect(try await store.claimLoRAFetch(key: key, node: "B", seconds: -1, now: Date()))
        #expect(try await store.loraFetch(key: key, now: Date()) == nil)
        #expect(try await store.claimLoRAFetch(key: key, node: "A", seconds: 30, now: Date()))
        #expect(try await !store.renewLoRAFetch(key: key, node: "B", seconds: 30, progress: half, now: Date()))
    }
}
