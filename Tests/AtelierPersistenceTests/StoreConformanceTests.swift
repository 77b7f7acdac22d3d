import AtelierCore
import AtelierPersistence
import Foundation
import Testing

/// The store conformance suite, part 2, on every backend: keys, runs and claims.
@Suite struct StoreConformanceTests {
    static let request = RunRequest(
        modelID: "flux-cute-3d-kawaii", prompt: "p", aspectRatio: "1:1", megapixels: "1",
        size: .init(width: 1024, height: 1024), numOutputs: 1, numInferenceSteps: 28, guidance: 3, seed: 42,
        outputFormat: .webp, outputQuality: 80, loraScale: 1, goFast: true, promptStrength: 0.8, disableSafetyChecker: false
    )

    func job(_ id: Int64, account: Int64, at t: Double) -> Job {
        Job(id: id, accountID: account, request: Self.request, outputNames: ["\(id).webp"], createdAt: Date(timeIntervalSince1970: t))
    }

    @Test(arguments: Backend.allCases) func keysAreStoredByHashAndRevocable(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await store.ensureAccount(named: "alice")
        #expect(try await store.ensureAccount(named: "alice") == account)
        let key = APIKey.generate()
        try await store.addKey(key, accountID: account)
        let found = try #require(try await store.lookupKey(hash: key.hash))
        #expect(found.prefix == key.prefix && found.accountName == "alice" && found.revokedAt == nil)
        #expect(try await store.lookupKey(hash: APIKey.generate().hash) == nil)
        #expect(try await store.revokeKey(prefix: key.prefix))
        #expect(try await store.lookupKey(hash: key.hash)?.revokedAt != nil)
        #expect(try await !store.revokeKey(prefix: "atl_nosuchprefix"))
        let bytes = try await db.keptKeyBytes()
        #expect(bytes.range(of: Data(key.hash.utf8)) != nil)
        #expect(bytes.range(of: Data(key.plaintext.utf8)) == nil)
    }

    @Test(arguments: Backend.allCases) func jobsRoundTripAndClaimInOrder(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await store.ensureAccount(named: "a")
        try await store.insert(job(200_000_000_000_002, account: account, at: 2))
        try await store.insert(job(200_000_000_000_001, account: account, at: 1))
        await #expect(throws: JobStoreError.duplicateID(200_000_000_000_001)) {
            try await store.insert(job(200_000_000_000_001, account: account, at: 3))
        }
        let first = try #require(try await store.claimNext(now: Date(), lease: 60))
        #expect(first.id == 200_000_000_000_001 && first.status == .running && first.attempts == 1)
        #expect(first.request == Self.request)
        let second = try #require(try await store.claimNext(now: Date(), lease: 60))
        #expect(second.id == 200_000_000_000_002)
        #expect(try await store.claimNext(now: Date(), lease: 60) == nil)
    }

    /// What /metrics samples at each scrape: unfinished runs per model and state; ended ones are not counted.
    @Test(arguments: Backend.allCases) func activeRunsAreCountedPerModelAndState(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await store.ensureAccount(named: "a")
        #expect(try await store.activeRuns().isEmpty)
        _ = try await store.addCredit(accountID: account, amount: 1000, kind: .credit, reason: "test", now: Date())
        for (i, id) in (Int64(250_000_000_000_001)...250_000_000_000_004).enumerated() {
            var j = job(id, account: account, at: Double(i))
            j.pricePerImage = 10 * Int64(i + 1)
            try await store.insert(j)
        }
        var other = job(250_000_000_000_005, account: account, at: 9)
        other.pricePerImage = 7
        other.request.modelID = "second"
        try await store.insert(other)
        _ = try await store.claimNext(now: Date(), lease: 60)  // the oldest: running
        let ended = try #require(try await store.claimNext(now: Date(), lease: 60))
        _ = try await store.fail(id: ended.id, attempt: ended.attempts, failure: .init(code: .generationFailed, message: "y"), now: Date())
        let counts = try await store.activeRuns().sorted { ($0.modelID, $0.status.rawValue) < ($1.modelID, $1.status.rawValue) }
        #expect(counts == [
            // The first (10) runs, the second (20) failed and was released, the third and fourth (30 + 40) wait.
            ActiveRunCount(modelID: "flux-cute-3d-kawaii", status: .queued, count: 2, held: 70),
            ActiveRunCount(modelID: "flux-cute-3d-kawaii", status: .running, count: 1, held: 10),
            ActiveRunCount(modelID: "second", status: .queued, count: 1, held: 7),
        ])
    }

    /// `atelier runs list`: newest first, filtered by state, account and creation time, at most the limit.
    @Test(arguments: Backend.allCases) func runsAreListedNewestFirstWithFilters(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let a = try await store.ensureAccount(named: "a"), b = try await store.ensureAccount(named: "b")
        try await store.insert(job(260_000_000_000_001, account: a, at: 100))
        try await store.insert(job(260_000_000_000_002, account: b, at: 200))
        try await store.insert(job(260_000_000_000_003, account: a, at: 300))
        let claimed = try #require(try await store.claimNext(now: Date(), lease: 60))  // the oldest: running
        #expect(try await store.runs(RunFilter()).map(\.id) == [260_000_000_000_003, 260_000_000_000_002, 260_000_000_000_001])
        #expect(try await store.runs(RunFilter(accountID: a)).map(\.id) == [260_000_000_000_003, 260_000_000_000_001])
        #expect(try await store.runs(RunFilter(status: .running)).map(\.id) == [claimed.id])
        #expect(try await store.runs(RunFilter(since: Date(timeIntervalSince1970: 150))).map(\.id) == [260_000_000_000_003, 260_000_000_000_002])
        #expect(try await store.runs(RunFilter(status: .queued, accountID: a, limit: 1)).map(\.id) == [260_000_000_000_003])
    }

    /// Output retention: the succeeded runs finished before the cutoff whose images are still stored, oldest
    /// first; a run is marked once, and a failed or unfinished run is never due.
    @Test(arguments: Backend.allCases) func succeededRunsAreDueForOutputRetentionOnce(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await store.ensureAccount(named: "a")
        let result = JobResult(outputs: [.init(name: "x.webp", seed: 42, width: 8, height: 8, bytes: 1)], path: "standard",
                               pathReason: "r", inferenceMs: 1, encodeMs: 1)
        for (i, id) in (Int64(270_000_000_000_001)...270_000_000_000_004).enumerated() {
            try await store.insert(job(id, account: account, at: Double(i)))
            let claimed = try #require(try await store.claimNext(now: Date(), lease: 60))
            let finished = Date(timeIntervalSince1970: [300, 100, 200, 150][i])
            if i == 3 {
                _ = try await store.fail(id: id, attempt: claimed.attempts, failure: .init(code: .generationFailed, message: "y"), now: finished)
            } else {
                #expect(try await store.complete(id: id, attempt: claimed.attempts, result: result, now: finished))
            }
        }
        try await store.insert(job(270_000_000_000_005, account: account, at: 9))  // queued
        let cutoff = Date(timeIntervalSince1970: 250)
        #expect(try await store.runsWithOutputs(finishedBefore: cutoff, limit: 10).map(\.id) == [270_000_000_000_002, 270_000_000_000_003])
        #expect(try await store.runsWithOutputs(finishedBefore: cutoff, limit: 1).map(\.id) == [270_000_000_000_002])
        let now = Date(timeIntervalSince1970: 400)
        #expect(try await store.markOutputsExpired(id: 270_000_000_000_002, now: now))
        #expect(try await !store.markOutputsExpired(id: 270_000_000_000_002, now: now))
        #expect(try await !store.markOutputsExpired(id: 270_000_000_000_004, now: now))  // failed: no images
        #expect(try await store.runsWithOutputs(finishedBefore: cutoff, limit: 10).map(\.id) == [270_000_000_000_003])
        let expired = try #require(try await store.job(id: 270_000_000_000_002))
        #expect(expired.outputsExpiredAt == now && expired.status == .succeeded && expired.result == result)
        #expect(try await store.job(id: 270_000_000_000_003)?.outputsExpiredAt == nil)
    }

    @Test(arguments: Backend.allCases) func terminalStatesAreWrittenOnce(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await store.ensureAccount(named: "a")
        try await store.insert(job(300_000_000_000_001, account: account, at: 1))
        let result = JobResult(outputs: [.init(name: "x.webp", seed: 42, width: 8, height: 8, bytes: 1)], path: "standard",
                               pathReason: "r", inferenceMs: 1, encodeMs: 1)
        // Not running yet: a completion is refused.
        #expect(try await !store.complete(id: 300_000_000_000_001, attempt: 1, result: result, now: Date()))
        _ = try await store.claimNext(now: Date(), lease: 60)
        #expect(try await store.complete(id: 300_000_000_000_001, attempt: 1, result: result, now: Date()))
        #expect(try await !store.complete(id: 300_000_000_000_001, attempt: 1, result: result, now: Date()))
        #expect(try await !store.fail(id: 300_000_000_000_001, attempt: nil, failure: .init(code: .generationFailed, message: "y"), now: Date()))
        let done = try #require(try await store.job(id: 300_000_000_000_001))
        #expect(done.status == .succeeded && done.result == result && done.failure == nil)
    }

    @Test(arguments: Backend.allCases) func orphanedRunningJobsAreRequeuedOnRestart(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await store.ensureAccount(named: "a")
        try await store.insert(job(400_000_000_000_001, account: account, at: 1))
        try await store.insert(job(400_000_000_000_002, account: account, at: 2))
        _ = try await store.claimNext(now: Date(), lease: 60)
        let reopened = try await db.open()
        let report = try await reopened.recoverAbandoned(.all, maxAttempts: 3, failure: .init(code: .workerLost, message: "m"), now: Date())
        #expect(report == RecoveryReport(requeued: [400_000_000_000_001]))
        #expect(try await reopened.job(id: 400_000_000_000_001)?.status == .queued)
        #expect(try await reopened.job(id: 400_000_000_000_002)?.status == .queued)
        #expect(try await reopened.claimNext(now: Date(), lease: 60)?.id == 400_000_000_000_001)
    }

    /// Two stores (as two server processes would have) claiming at once: every job is claimed exactly once.
    @Test(arguments: Backend.allCases) func concurrentClaimsNeverShareAJob(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let a = try await db.open()
        let b = try await db.open()
        let account = try await a.ensureAccount(named: "a")
        let ids: [Int64] = (1...40).map { 500_000_000_000_000 + Int64($0) }
        for (i, id) in ids.enumerated() { try await a.insert(job(id, account: account, at: Double(i))) }
        let claimed = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for store in [a, b, a, b] {
                group.addTask {
                    var mine: [Int64] = []
                    while let j = try await store.claimNext(now: Date(), lease: 60) { mine.append(j.id) }
                    return mine
                }
            }
            return try await group.reduce(into: [Int64]()) { $0 += $1 }
        }
        #expect(claimed.sorted() == ids)
    }
}

extension StoreConformanceTests {
    @Test(arguments: Backend.allCases) func webhookSecretsAreMadeOnceAndRotated(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await store.ensureAccount(named: "hooks")
        let first = try await store.webhookSecret(accountID: account)
        #expect(first.hasPrefix("whsec_"))
        #expect(try await db.open().webhookSecret(accountID: account) == first)  // kept across restarts
        let rotated = try await store.rotateWebhookSecret(accountID: account)
        let current = try await store.webhookSecret(accountID: account)
        #expect(rotated != first && current == rotated)
        await #expect(throws: JobStoreError.noSuchAccount(999)) { try await store.rotateWebhookSecret(accountID: 999) }
    }
}
