import AtelierCore
import Foundation
import Synchronization

/// A real store some of whose calls cannot reach the database, as when a node's connection is gone while the rest
/// answers: lease renewals of the attempts `failsRenewal` names, and the first `failingWrites` outcome writes
/// (`complete` and `fail`). Everything else is the wrapped store. Never a runtime default.
public final class FaultyJobStore: JobStore, Sendable {
    let base: any JobStore
    let failsRenewal: @Sendable (_ attempt: Int) -> Bool
    private let writesLeft: Mutex<Int>

    public init(_ base: any JobStore, failsRenewal: @escaping @Sendable (_ attempt: Int) -> Bool = { _ in false }, failingWrites: Int = 0) {
        self.base = base
        self.failsRenewal = failsRenewal
        writesLeft = Mutex(failingWrites)
    }

    private func write() throws {
        if writesLeft.withLock({ n in defer { n -= 1 }; return n > 0 }) { throw StoreUnavailable("connection refused (test)") }
    }

    public var sharedByNodes: Bool { base.sharedByNodes }
    public func renewLease(id: Int64, attempt: Int, lease: TimeInterval, now: Date) async throws -> Bool {
        if failsRenewal(attempt) { throw StoreUnavailable("connection refused (test)") }
        return try await base.renewLease(id: id, attempt: attempt, lease: lease, now: now)
    }
    public func complete(id: Int64, attempt: Int, result: JobResult, now: Date) async throws -> Bool {
        try write()
        return try await base.complete(id: id, attempt: attempt, result: result, now: now)
    }
    public func fail(id: Int64, attempt: Int?, failure: JobFailure, now: Date) async throws -> Bool {
        try write()
        return try await base.fail(id: id, attempt: attempt, failure: failure, now: now)
    }
    public func insert(_ job: Job, idempotency: IdempotencyClaim?, maxInProgress: Int) async throws {
        try await base.insert(job, idempotency: idempotency, maxInProgress: maxInProgress)
    }
    public func job(id: Int64) async throws -> Job? { try await base.job(id: id) }
    public func claimNext(now: Date, lease: TimeInterval) async throws -> Job? { try await base.claimNext(now: now, lease: lease) }
    public func claimCompatible(with job: Job, maxImages: Int, now: Date, lease: TimeInterval) async throws -> [Job] {
        try await base.claimCompatible(with: job, maxImages: maxImages, now: now, lease: lease)
    }
    public func recordProgress(id: Int64, attempt: Int, step: Int, total: Int) async throws -> Bool {
        try await base.recordProgress(id: id, attempt: attempt, step: step, total: total)
    }
    public func retryOrFail(id: Int64, attempt: Int, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RetryOutcome {
        try await base.retryOrFail(id: id, attempt: attempt, maxAttempts: maxAttempts, failure: failure, now: now)
    }
    public func cancel(id: Int64, accountID: Int64, now: Date) async throws -> CancelOutcome { try await base.cancel(id: id, accountID: accountID, now: now) }
    public func requeueSpared(id: Int64, attempt: Int, now: Date) async throws -> Bool {
        try await base.requeueSpared(id: id, attempt: attempt, now: now)
    }
    public func recoverAbandoned(_ scope: LeaseScope, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RecoveryReport {
        try await base.recoverAbandoned(scope, maxAttempts: maxAttempts, failure: failure, now: now)
    }
    public func queuePosition(id: Int64) async throws -> Int? { try await base.queuePosition(id: id) }
    public func jobs(accountID: Int64) async throws -> [Job] { try await base.jobs(accountID: accountID) }
    public func activeRuns() async throws -> [ActiveRunCount] { try await base.activeRuns() }
    public func runs(_ filter: RunFilter) async throws -> [Job] { try await base.runs(filter) }
}
