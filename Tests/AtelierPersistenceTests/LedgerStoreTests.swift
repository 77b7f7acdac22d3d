import AtelierCore
import AtelierPersistence
import Foundation
import Testing

/// The store conformance suite, part 1, on every backend (a real SQLite file, a real PostgreSQL server): money.
/// Holds, captures, releases, refusals and the ledger's invariants.
@Suite struct LedgerStoreTests {
    func job(_ id: Int64, account: Int64, price: Int64, images: Int = 1) -> Job {
        let request = RunRequest(
            modelID: "m", prompt: "p", aspectRatio: "1:1", megapixels: "1", size: .init(width: 8, height: 8),
            numOutputs: images, numInferenceSteps: 1, guidance: 3, seed: 1, outputFormat: .webp, outputQuality: 80,
            loraScale: 1, goFast: false, promptStrength: 0.8, disableSafetyChecker: false
        )
        return Job(id: id, accountID: account, request: request, outputNames: (0..<images).map { "\(id)-\($0).webp" },
                   pricePerImage: price, createdAt: Date())
    }

    func result(images: Int) -> JobResult {
        JobResult(outputs: (0..<images).map { JobOutput(name: "\($0).webp", seed: UInt64($0), width: 8, height: 8, bytes: 1) },
                  path: "standard", pathReason: "", inferenceMs: 1, encodeMs: 1)
    }

    func audit(_ store: any AtelierStore, _ account: Int64) async throws -> [String] {
        LedgerRules.audit(entries: try await store.ledger(accountID: account), jobs: try await store.jobs(accountID: account))
    }

    func funded(_ store: any AtelierStore, _ minor: Int64) async throws -> Int64 {
        let account = try await store.ensureAccount(named: "acct-\(UUID().uuidString.prefix(6))")
        _ = try await store.addCredit(accountID: account, amount: minor, kind: .credit, reason: "test", now: Date())
        return account
    }

    @Test(arguments: Backend.allCases) func aRunHoldsThenCapturesPerDeliveredImageAndReleasesTheRest(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 1000)
        try await store.insert(job(700_000_000_000_001, account: account, price: 75, images: 4))
        #expect(try await store.balance(accountID: account) == Balance(balance: 1000, held: 300))
        _ = try await store.claimNext(now: Date(), lease: 60)
        // The safety checker dropped one image: three delivered, three charged.
        #expect(try await store.complete(id: 700_000_000_000_001, attempt: 1, result: result(images: 3), now: Date()))
        #expect(try await store.balance(accountID: account) == Balance(balance: 775, held: 0))
        // A repeated completion (a retry, a second worker) changes nothing.
        #expect(try await !store.complete(id: 700_000_000_000_001, attempt: 1, result: result(images: 3), now: Date()))
        #expect(try await !store.fail(id: 700_000_000_000_001, attempt: nil, failure: .init(code: .generationFailed, message: "y"), now: Date()))
        #expect(try await store.balance(accountID: account) == Balance(balance: 775, held: 0))
        #expect(try await audit(store, account).isEmpty)
    }

    @Test(arguments: Backend.allCases) func aFailedRunCostsNothing(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 500)
        try await store.insert(job(700_000_000_000_002, account: account, price: 75, images: 2))
        _ = try await store.claimNext(now: Date(), lease: 60)
        #expect(try await store.fail(id: 700_000_000_000_002, attempt: nil, failure: .init(code: .workerCrashed, message: "m"), now: Date()))
        #expect(try await store.balance(accountID: account) == Balance(balance: 500, held: 0))
        #expect(try await audit(store, account).isEmpty)
    }

    @Test(arguments: Backend.allCases) func aShortBalanceIsRefusedAndNothingIsWritten(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 100)
        await #expect(throws: JobStoreError.insufficientCredit(needed: 150, available: 100)) {
            try await store.insert(job(700_000_000_000_003, account: account, price: 75, images: 2))
        }
        #expect(try await store.job(id: 700_000_000_000_003) == nil)
        #expect(try await store.ledger(accountID: account).map(\.kind) == [.credit])
    }

    @Test(arguments: Backend.allCases) func runsLeftRunningByADeadServerAreReleased(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 500)
        try await store.insert(job(700_000_000_000_004, account: account, price: 75))
        _ = try await store.claimNext(now: Date(), lease: 60)
        let restarted = try await db.open()
        let report = try await restarted.recoverAbandoned(.all, maxAttempts: 1, failure: .init(code: .workerLost, message: "m"), now: Date())
        #expect(report == RecoveryReport(requeued: [], failed: [700_000_000_000_004]))
        #expect(try await restarted.balance(accountID: account) == Balance(balance: 500, held: 0))
        #expect(try await audit(restarted, account).isEmpty)
    }

    @Test(arguments: Backend.allCases) func theLedgerIsAppendOnly(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        _ = try await funded(store, 500)
        await #expect(throws: (any Error).self) { try await db.executeRaw("UPDATE ledger SET amount = 1") }
        await #expect(throws: (any Error).self) { try await db.executeRaw("DELETE FROM ledger") }
        #expect(try await store.ledger(accountID: try #require(try await store.accounts().first).id).map(\.amount) == [500])
    }

    @Test(arguments: Backend.allCases) func adjustmentsCannotTakeAnAccountBelowZero(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 500)
        try await store.insert(job(700_000_000_000_005, account: account, price: 300))
        await #expect(throws: JobStoreError.wouldGoNegative(available: 200)) {
            _ = try await store.addCredit(accountID: account, amount: -201, kind: .adjustment, reason: "r", now: Date())
        }
        let b = try await store.addCredit(accountID: account, amount: -200, kind: .adjustment, reason: "refund", now: Date())
        #expect(b == Balance(balance: 300, held: 300) && b.available == 0)
    }

    /// Twenty runs priced 75 against 500, from two stores at once (as two server processes would): exactly
    /// six are accepted, and the balance never goes below zero.
    @Test(arguments: Backend.allCases) func concurrentRunsNeverSpendTheSameCreditTwice(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let a = try await db.open()
        let b = try await db.open()
        let account = try await funded(a, 500)
        let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<20 {
                let store = i % 2 == 0 ? a : b
                let j = job(710_000_000_000_000 + Int64(i), account: account, price: 75)
                group.addTask {
                    do {
                        try await store.insert(j)
                        return true
                    } catch JobStoreError.insufficientCredit {
                        return false
                    }
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 6)
        #expect(try await a.balance(accountID: account) == Balance(balance: 500, held: 450))
        #expect(try await audit(a, account).isEmpty)
    }

    /// One idempotency key from two connections at once: one run, one hold; the rest learn which run it was.
    @Test(arguments: Backend.allCases) func oneIdempotencyKeyMakesOneRun(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let a = try await db.open()
        let b = try await db.open()
        let account = try await funded(a, 10_000)
        let claim = IdempotencyClaim(scope: "atl_k", key: "k-1", fingerprint: "f")
        let outcomes = try await withThrowingTaskGroup(of: Int64?.self) { group in
            for i in 0..<30 {
                let store = i % 2 == 0 ? a : b
                let j = job(730_000_000_000_000 + Int64(i), account: account, price: 75)
                group.addTask {
                    do {
                        try await store.insert(j, idempotency: claim)
                        return j.id
                    } catch JobStoreError.idempotencyKeyUsed(let prior, true) {
                        return -prior
                    }
                }
            }
            return try await group.reduce(into: [Int64]()) { $0.append($1!) }
        }
        let created = outcomes.filter { $0 > 0 }
        #expect(created.count == 1)
        #expect(Set(outcomes.filter { $0 < 0 }.map { -$0 }) == Set(created))
        #expect(try await a.balance(accountID: account) == Balance(balance: 10_000, held: 75))
        await #expect(throws: JobStoreError.idempotencyKeyUsed(jobID: created[0], sameRequest: false)) {
            try await a.insert(job(731_000_000_000_000, account: account, price: 75),
                               idempotency: IdempotencyClaim(scope: "atl_k", key: "k-1", fingerprint: "other"))
        }
        // Another API key's scope is another namespace.
        try await a.insert(job(732_000_000_000_000, account: account, price: 75),
                           idempotency: IdempotencyClaim(scope: "atl_other", key: "k-1", fingerprint: "f"))
    }

    /// Random sequences of top-ups, runs, successes with some images dropped, failures, repeated completions and
    /// restarts, from a fixed seed: after every step the ledger audit is clean, the balance matches the model, and
    /// the store's balance is the one `LedgerRules` derives from its entries.
    @Test(arguments: Backend.allCases, [1, 2, 3, 4, 5] as [UInt64])
    func randomSequencesKeepTheInvariants(_ backend: Backend, seed: UInt64) async throws {
        let db = try await TestDatabase.make(backend)
        var rng = SplitMix64(seed: seed)
        var store = try await db.open()
        let account = try await funded(store, 0)
        var expectedBalance: Int64 = 0
        var nextID: Int64 = 720_000_000_000_000
        var running: [(id: Int64, images: Int, price: Int64)] = []
        for _ in 0..<120 {
            switch rng.next() % 6 {
            case 0:
                let amount = Int64(rng.next() % 500)
                if amount > 0 {
                    _ = try await store.addCredit(accountID: account, amount: amount, kind: .credit, reason: "top-up", now: Date())
                    expectedBalance += amount
                }
            case 1, 2:
                let images = Int(rng.next() % 4) + 1
                let price = Int64(rng.next() % 100)
                nextID += 1
                do {
                    try await store.insert(job(nextID, account: account, price: price, images: images))
                    _ = try await store.claimNext(now: Date(), lease: 60)
                    running.append((nextID, images, price))
                } catch JobStoreError.insufficientCredit {}
            case 3:
                if let r = running.popLast() {
                    let delivered = Int(rng.next() % UInt64(r.images + 1))
                    if delivered == 0 {
                        #expect(try await store.fail(id: r.id, attempt: nil, failure: .init(code: .safetyFlagged, message: "m"), now: Date()))
                    } else {
                        #expect(try await store.complete(id: r.id, attempt: 1, result: result(images: delivered), now: Date()))
                        expectedBalance -= r.price * Int64(delivered)
                    }
                    // A retry of the same report never charges again.
                    #expect(try await !store.complete(id: r.id, attempt: 1, result: result(images: r.images), now: Date()))
                }
            case 4:
                if let r = running.popLast() {
                    #expect(try await store.fail(id: r.id, attempt: nil, failure: .init(code: .workerCrashed, message: "m"), now: Date()))
                }
            default:
                // A restart: runs left running fail and are released.
                store = try await db.open()
                _ = try await store.recoverAbandoned(.all, maxAttempts: 1, failure: .init(code: .workerLost, message: "m"), now: Date())
                running.removeAll()
            }
            let problems = try await audit(store, account)
            #expect(problems.isEmpty, "\(problems)")
            let b = try await store.balance(accountID: account)
            #expect(b.balance == expectedBalance && b.available >= 0)
            // The store's SQL and the Core rule applied to its rows are the one definition: on every backend they agree.
            #expect(b == LedgerRules.balance(of: try await store.ledger(accountID: account)))
            #expect(b.held == running.reduce(0) { $0 + $1.price * Int64($1.images) })
        }
    }
}

/// A small seeded generator so property runs repeat exactly.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
