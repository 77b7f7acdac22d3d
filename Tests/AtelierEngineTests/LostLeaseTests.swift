import AtelierCore
import AtelierEngine
import AtelierPersistence
import AtelierStorage
import AtelierTesting
import Foundation
import Testing

/// A store whose lease renewals cannot reach the database for the first attempt of every run, as when a node's
/// connection is gone while everything else still answers; all else is the real SQLite store.
final class UnreachableRenewals: JobStore {
    let base: SQLiteStore
    init(_ base: SQLiteStore) { self.base = base }
    var sharedByNodes: Bool { false }
    func renewLease(id: Int64, attempt: Int, lease: TimeInterval, now: Date) async throws -> Bool {
        if attempt == 1 { throw StoreUnavailable("connection refused (test)") }
        return try await base.renewLease(id: id, attempt: attempt, lease: lease, now: now)
    }
    func insert(_ job: Job, idempotency: IdempotencyClaim?, maxInProgress: Int) async throws {
        try await base.insert(job, idempotency: idempotency, maxInProgress: maxInProgress)
    }
    func job(id: Int64) async throws -> Job? { try await base.job(id: id) }
    func claimNext(now: Date, lease: TimeInterval) async throws -> Job? { try await base.claimNext(now: now, lease: lease) }
    func claimCompatible(with job: Job, maxImages: Int, now: Date, lease: TimeInterval) async throws -> [Job] {
        try await base.claimCompatible(with: job, maxImages: maxImages, now: now, lease: lease)
    }
    func recordProgress(id: Int64, attempt: Int, step: Int, total: Int) async throws -> Bool {
        try await base.recordProgress(id: id, attempt: attempt, step: step, total: total)
    }
    func complete(id: Int64, attempt: Int, result: JobResult, now: Date) async throws -> Bool {
        try await base.complete(id: id, attempt: attempt, result: result, now: now)
    }
    func fail(id: Int64, attempt: Int?, failure: JobFailure, now: Date) async throws -> Bool {
        try await base.fail(id: id, attempt: attempt, failure: failure, now: now)
    }
    func retryOrFail(id: Int64, attempt: Int, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RetryOutcome {
        try await base.retryOrFail(id: id, attempt: attempt, maxAttempts: maxAttempts, failure: failure, now: now)
    }
    func cancel(id: Int64, accountID: Int64, now: Date) async throws -> CancelOutcome { try await base.cancel(id: id, accountID: accountID, now: now) }
    func recoverAbandoned(_ scope: LeaseScope, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RecoveryReport {
        try await base.recoverAbandoned(scope, maxAttempts: maxAttempts, failure: failure, now: now)
    }
    func queuePosition(id: Int64) async throws -> Int? { try await base.queuePosition(id: id) }
    func jobs(accountID: Int64) async throws -> [Job] { try await base.jobs(accountID: accountID) }
    func activeRuns() async throws -> [ActiveRunCount] { try await base.activeRuns() }
    func runs(_ filter: RunFilter) async throws -> [Job] { try await base.runs(filter) }
}

extension WorkerSupervisorTests {
    /// Three renewals in a row that cannot reach the database are a whole lease: the node stops its worker's
    /// attempt (another node may hold the run by now) and the run goes back to the queue, not to failed; the next
    /// attempt finishes it, charged once.
    @Test func aWholeLeaseWithoutARenewalStopsTheAttemptAndRequeuesTheRun() async throws {
        let clock = ManualClock()
        let (supervisor, sqlite, storage) = try makeSupervisor(mode: "slow", clock: clock, wrap: { UnreachableRenewals($0) })
        try await withRunning(supervisor) {
            await supervisor.waitForSlots(Self.ready)
            let job = try await enqueue(sqlite, storage, id: 600_000_000_000_090, steps: 40)
            let updates = await supervisor.events.events(job.id)
            await supervisor.jobQueued()
            await supervisor.waitForSlots { $0[0].state == .busy }
            // Each renewal sleeps a third of the lease (10 s; nothing else on this clock does) before it tries.
            let renewal: @Sendable (Duration) -> Bool = { $0 == .seconds(10) }
            // Two failed renewals (two thirds of the lease): the attempt goes on.
            for _ in 0..<2 {
                await clock.waitForSleeper(renewal)
                clock.advance(by: .seconds(10))
            }
            await clock.waitForSleeper(renewal)
            #expect(try await sqlite.job(id: job.id)?.attempts == 1)
            #expect(try await sqlite.job(id: job.id)?.status == .running)
            // The third: the worker is told to stop, and the run is claimed again as attempt 2, which renews, and
            // finishes.
            clock.advance(by: .seconds(10))
            var seen: [JobEvents.Event] = []
            for await event in updates { seen.append(event) }
            #expect(seen.contains(.requeued) && seen.contains(.started(attempt: 2)) && seen.last == .finished)
            let done = try #require(try await sqlite.job(id: job.id))
            #expect(done.status == .succeeded && done.attempts == 2, "\(done.status) \(done.attempts) \(String(describing: done.failure))")
            #expect(try await sqlite.balance(accountID: job.accountID) == Balance(balance: 0, held: 0))
            #expect(supervisor.status[0].restarts == 0)  // the same worker ran both attempts
        }
    }
}
