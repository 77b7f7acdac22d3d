import AtelierCore
import AtelierPersistence
import Foundation
import Testing

/// Batching's claim: compatible queued runs in queue order while their images fit, each its own claim (attempt,
/// lease, start event, hold), and never a run with an input image or another key.
extension LedgerStoreTests {
    func queued(_ store: any AtelierStore, _ account: Int64, _ id: Int64, images: Int = 1, steps: Int = 1, at offset: TimeInterval) async throws -> Job {
        var j = job(id, account: account, price: 10, images: images)
        j.request.numInferenceSteps = steps
        j.createdAt = Date(timeIntervalSince1970: 1_800_000_000 + offset)
        try await store.insert(j)
        return j
    }

    @Test(arguments: Backend.allCases) func compatibleRunsAreClaimedInQueueOrderWhileTheirImagesFit(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 10_000)
        let base: Int64 = 720_000_000_000_000
        _ = try await queued(store, account, base + 1, at: 1)
        _ = try await queued(store, account, base + 2, steps: 9, at: 2)  // another key: never in this batch
        _ = try await queued(store, account, base + 3, images: 2, at: 3)
        _ = try await queued(store, account, base + 4, images: 2, at: 4)  // does not fit after 1 + 2
        _ = try await queued(store, account, base + 5, at: 5)  // would fit, but may not overtake 4
        let now = Date()
        let first = try #require(try await store.claimNext(now: now, lease: 30))
        #expect(first.id == base + 1)
        let more = try await store.claimCompatible(with: first, maxImages: 3, now: now, lease: 30)
        #expect(more.map(\.id) == [base + 3])
        #expect(more[0].status == .running && more[0].attempts == 1)
        #expect(try await store.job(id: base + 4)?.status == .queued)
        #expect(try await store.job(id: base + 5)?.status == .queued)
        // Each claim is its own: its lease renews and it completes and is charged on its own.
        #expect(try await store.renewLease(id: base + 3, attempt: 1, lease: 60, now: now))
        #expect(try await store.complete(id: base + 3, attempt: 1, result: result(images: 2), now: now))
        #expect(try await store.fail(id: base + 1, attempt: 1, failure: .init(code: .canceled, message: "c"), now: now))
        #expect(try await store.balance(accountID: account) == Balance(balance: 10_000 - 20, held: 10 + 20 + 10))
        #expect(more[0].startedAt != nil)
        #expect(try await audit(store, account).isEmpty)
    }

    @Test(arguments: Backend.allCases) func aRunWithAnInputImageIsNeverBatched(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 10_000)
        let base: Int64 = 720_000_000_000_100
        var withImage = job(base + 1, account: account, price: 10)
        withImage.request.image = InputImage(file: "in.png", format: .png, width: 8, height: 8, bytes: 10, sha256: "x", origin: .upload)
        #expect(withImage.request.batchKey == nil)
        withImage.createdAt = Date(timeIntervalSince1970: 1_800_000_000)
        try await store.insert(withImage)
        _ = try await queued(store, account, base + 2, at: 1)
        let first = try #require(try await store.claimNext(now: Date(), lease: 30))
        #expect(first.id == base + 1)
        #expect(try await store.claimCompatible(with: first, maxImages: 8, now: Date(), lease: 30).isEmpty)
        // And a plain run does not pick up a queued one with an image.
        let second = try #require(try await store.claimNext(now: Date(), lease: 30))
        #expect(try await store.claimCompatible(with: second, maxImages: 8, now: Date(), lease: 30).isEmpty)
    }
}
