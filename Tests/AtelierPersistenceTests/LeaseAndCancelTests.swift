import AtelierCore
import AtelierPersistence
import Foundation
import Testing

/// The durable queue's claims: leases, fencing, retries after a lost worker, cancel, and queue positions, with the
/// money checked after each step.
extension LedgerStoreTests {
    @Test(arguments: Backend.allCases) func aStaleAttemptCanNeitherCompleteNorFailNorCharge(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 1000)
        let id: Int64 = 710_000_000_000_001
        try await store.insert(job(id, account: account, price: 100, images: 2))
        // Leases are timed on the store's clock (the database's, on PostgreSQL), so a lease that lapsed is one
        // claimed with a negative length: no test sleeps.
        let t0 = Date()
        let first = try #require(try await store.claimNext(now: t0, lease: -1))
        #expect(first.attempts == 1)
        // The first claimer stopped renewing; its lease lapsed, so the job goes back to the queue and is claimed again.
        let report = try await store.recoverAbandoned(.expired, maxAttempts: 3, failure: .init(code: .workerLost, message: "m"), now: t0)
        #expect(report == RecoveryReport(requeued: [id]))
        #expect(try await store.balance(accountID: account) == Balance(balance: 1000, held: 200))
        let second = try #require(try await store.claimNext(now: t0, lease: 3600))
        #expect(second.attempts == 2)
        // The first claimer wakes up: every write it tries is refused and nothing is charged.
        #expect(try await !store.renewLease(id: id, attempt: 1, lease: 3600, now: t0))
        #expect(try await !store.recordProgress(id: id, attempt: 1, step: 1, total: 2))
        #expect(try await !store.complete(id: id, attempt: 1, result: result(images: 2), now: t0))
        #expect(try await !store.fail(id: id, attempt: 1, failure: .init(code: .generationFailed, message: "y"), now: t0))
        #expect(try await store.retryOrFail(id: id, attempt: 1, maxAttempts: 3, failure: .init(code: .generationFailed, message: "y"), now: t0) == .fenced)
        #expect(try await store.balance(accountID: account) == Balance(balance: 1000, held: 200))
        // The current claimer renews, reports progress and completes: one capture.
        #expect(try await store.renewLease(id: id, attempt: 2, lease: 3600, now: t0))
        #expect(try await store.recordProgress(id: id, attempt: 2, step: 1, total: 2))
        #expect(try await store.job(id: id)?.progress == JobProgress(step: 1, total: 2))
        #expect(try await store.complete(id: id, attempt: 2, result: result(images: 2), now: t0))
        #expect(try await store.balance(accountID: account) == Balance(balance: 800, held: 0))
        #expect(try await audit(store, account).isEmpty)
    }

    @Test(arguments: Backend.allCases) func aLeaseStillRenewedIsNotTakenOver(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 1000)
        let id: Int64 = 710_000_000_000_002
        try await store.insert(job(id, account: account, price: 100))
        let t0 = Date()
        // Claimed with a lapsed lease, then renewed: the renewal is what counts.
        _ = try await store.claimNext(now: t0, lease: -1)
        #expect(try await store.renewLease(id: id, attempt: 1, lease: 3600, now: t0))
        let report = try await store.recoverAbandoned(.expired, maxAttempts: 3, failure: .init(code: .workerLost, message: "m"), now: t0)
        #expect(report.isEmpty)
        #expect(try await store.job(id: id)?.status == .running)
        // A restart of the only process takes every running job back, live lease or not.
        #expect(try await db.open().recoverAbandoned(.all, maxAttempts: 3, failure: .init(code: .workerLost, message: "m"), now: t0) == RecoveryReport(requeued: [id]))
    }

    @Test(arguments: Backend.allCases) func aJobIsRetriedAtMostMaxAttemptsThenFailsWithItsHoldReleased(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 1000)
        let id: Int64 = 710_000_000_000_003
        try await store.insert(job(id, account: account, price: 100))
        let crash = JobFailure(code: .workerCrashed, message: "m")
        for attempt in 1...2 {
            let claimed = try #require(try await store.claimNext(now: Date(), lease: 30))
            #expect(claimed.attempts == attempt)
            #expect(try await store.retryOrFail(id: id, attempt: attempt, maxAttempts: 3, failure: crash, now: Date()) == .requeued)
            #expect(try await store.job(id: id)?.status == .queued)
        }
        _ = try await store.claimNext(now: Date(), lease: 30)
        #expect(try await store.retryOrFail(id: id, attempt: 3, maxAttempts: 3, failure: crash, now: Date()) == .failed)
        let failed = try #require(try await store.job(id: id))
        #expect(failed.status == .failed && failed.failure?.code == .workerCrashed && failed.attempts == 3)
        #expect(try await store.balance(accountID: account) == Balance(balance: 1000, held: 0))
        #expect(try await audit(store, account).isEmpty)
    }

    /// A drain stops an attempt through no fault of the run's: with a limit of 2, a run drained twice still has
    /// two counted attempts, and its lease lapsing on its lost node counts as one.
    @Test(arguments: Backend.allCases) func aDrainedAttemptDoesNotCountAgainstTheLimit(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 1000)
        let id: Int64 = 710_000_000_000_004
        try await store.insert(job(id, account: account, price: 100))
        let crash = JobFailure(code: .workerCrashed, message: "m")
        for attempt in 1...2 {
            let claimed = try #require(try await store.claimNext(now: Date(), lease: 30))
            #expect(claimed.attempts == attempt && claimed.countedAttempts == 1)
            #expect(try await store.requeueSpared(id: id, attempt: attempt, now: Date()))
            // A stale report of the drained attempt is fenced like any other.
            #expect(try await !store.requeueSpared(id: id, attempt: attempt, now: Date()))
        }
        let third = try #require(try await store.claimNext(now: Date(), lease: -1))
        #expect(third.attempts == 3 && third.sparedAttempts == 2 && third.countedAttempts == 1)
        // Its node was lost: the lapsed lease is a counted attempt, and the run goes back (1 of 2).
        let report = try await store.recoverAbandoned(.expired, maxAttempts: 2, failure: crash, now: Date())
        #expect(report == RecoveryReport(requeued: [id]))
        let fourth = try #require(try await store.claimNext(now: Date(), lease: 30))
        #expect(fourth.countedAttempts == 2)
        #expect(try await store.retryOrFail(id: id, attempt: 4, maxAttempts: 2, failure: crash, now: Date()) == .failed)
        let failed = try #require(try await store.job(id: id))
        #expect(failed.status == .failed && failed.attempts == 4 && failed.sparedAttempts == 2)
        #expect(try await store.balance(accountID: account) == Balance(balance: 1000, held: 0))
        #expect(try await audit(store, account).isEmpty)
    }

    @Test(arguments: Backend.allCases) func aRequeuedJobKeepsItsPlaceAtTheHeadOfTheQueue(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 1000)
        let t0 = Date()
        for (i, id) in [710_000_000_000_011, 710_000_000_000_012, 710_000_000_000_013].enumerated() {
            var j = job(Int64(id), account: account, price: 1)
            j.createdAt = t0.addingTimeInterval(Double(i))
            try await store.insert(j)
        }
        #expect(try await store.queuePosition(id: 710_000_000_000_013) == 2)
        let first = try #require(try await store.claimNext(now: t0, lease: 30))
        #expect(first.id == 710_000_000_000_011)
        #expect(try await store.queuePosition(id: 710_000_000_000_011) == nil)
        #expect(try await store.queuePosition(id: 710_000_000_000_013) == 1)
        _ = try await store.retryOrFail(id: first.id, attempt: 1, maxAttempts: 3, failure: .init(code: .workerCrashed, message: "m"), now: t0)
        #expect(try await store.queuePosition(id: 710_000_000_000_011) == 0)
        #expect(try await store.claimNext(now: t0, lease: 30)?.id == 710_000_000_000_011)
    }

    @Test(arguments: Backend.allCases) func cancelWhileQueuedWhileRunningAndAfterCompletion(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 1000)
        let other = try await funded(store, 0)
        let queued: Int64 = 710_000_000_000_021, running: Int64 = 710_000_000_000_022, done: Int64 = 710_000_000_000_023
        try await store.insert(job(running, account: account, price: 100))
        try await store.insert(job(queued, account: account, price: 100))
        try await store.insert(job(done, account: account, price: 100))
        #expect(try await store.claimNext(now: Date(), lease: 30)?.id == running)
        #expect(try await store.cancel(id: queued, accountID: other, now: Date()) == .notFound)
        #expect(try await store.cancel(id: queued, accountID: account, now: Date()) == .canceled(wasRunning: false))
        #expect(try await store.claimNext(now: Date(), lease: 30)?.id == done)  // the canceled run never starts
        #expect(try await store.complete(id: done, attempt: 1, result: result(images: 1), now: Date()))
        #expect(try await store.cancel(id: running, accountID: account, now: Date()) == .canceled(wasRunning: true))
        // The worker's late result is refused: a canceled run is never charged.
        #expect(try await !store.complete(id: running, attempt: 1, result: result(images: 1), now: Date()))
        #expect(try await store.cancel(id: done, accountID: account, now: Date()) == .alreadyFinished(.succeeded))
        #expect(try await store.cancel(id: queued, accountID: account, now: Date()) == .alreadyFinished(.canceled))
        #expect(try await store.job(id: running)?.status == .canceled)
        #expect(try await store.balance(accountID: account) == Balance(balance: 900, held: 0))
        #expect(try await audit(store, account).isEmpty)
    }
}

extension LedgerStoreTests {
    @Test(arguments: Backend.allCases) func aRunsCompletedEventWaitsForItsStartEvent(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 1000)
        let id: Int64 = 710_000_000_000_090
        var hooked = job(id, account: account, price: 100)
        hooked.webhook = WebhookSubscription(url: "https://example.com/hook", events: [.start, .completed], baseURL: "http://x")
        try await store.insert(hooked)
        let t0 = Date()
        _ = try #require(try await store.claimNext(now: t0, lease: 30))
        #expect(try await store.complete(id: id, attempt: 1, result: result(images: 1), now: t0))
        // Both are due; only the start goes out, and the completed follows once the start was delivered.
        let first = try await store.claimDueWebhooks(now: t0.addingTimeInterval(1), limit: 10, claimFor: 60)
        #expect(first.map(\.event) == [.start])
        #expect(try await store.claimDueWebhooks(now: t0.addingTimeInterval(2), limit: 10, claimFor: 60).isEmpty)
        try await store.recordWebhookAttempt(id: first[0].id, body: "{}", outcome: .delivered, now: t0.addingTimeInterval(2))
        #expect(try await store.claimDueWebhooks(now: t0.addingTimeInterval(3), limit: 10, claimFor: 60).map(\.event) == [.completed])
    }
}

extension LedgerStoreTests {
    /// Input retention's two questions, on both stores: only ended runs are due, and a marked one is due no more.
    @Test(arguments: Backend.allCases) func endedRunsAreDueForTheInputSweepUntilMarked(_ backend: Backend) async throws {
        let db = try await TestDatabase.make(backend)
        let store = try await db.open()
        let account = try await funded(store, 1000)
        let ended: Int64 = 710_000_000_000_031, running: Int64 = 710_000_000_000_032
        try await store.insert(job(ended, account: account, price: 1))
        try await store.insert(job(running, account: account, price: 1))
        _ = try await store.claimNext(now: Date(), lease: 60)
        _ = try await store.claimNext(now: Date(), lease: 60)
        #expect(try await store.fail(id: ended, attempt: 1, failure: .init(code: .generationFailed, message: "m"), now: Date()))
        let later = Date().addingTimeInterval(10)
        #expect(try await store.runsWithInputs(finishedBefore: later, limit: 10).map(\.id) == [ended])
        #expect(try await store.runsWithInputs(finishedBefore: Date().addingTimeInterval(-10), limit: 10).isEmpty)
        try await store.markInputsSwept(ids: [ended, running], now: Date())
        #expect(try await store.runsWithInputs(finishedBefore: later, limit: 10).isEmpty)
        // The running run was not marked: once it ends it is due.
        #expect(try await store.fail(id: running, attempt: 1, failure: .init(code: .generationFailed, message: "m"), now: Date()))
        #expect(try await store.runsWithInputs(finishedBefore: later, limit: 10).map(\.id) == [running])
    }
}
