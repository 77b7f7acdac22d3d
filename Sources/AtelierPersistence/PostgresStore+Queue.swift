import AtelierCore
import Foundation
import PostgresNIO

/// The queue on PostgreSQL: claims skip rows another node is claiming (`FOR UPDATE SKIP LOCKED`), leases are
/// timed on the database's clock, and every later write of a claim names its attempt (the fencing token), so a
/// node that lost its lease (a pause, a partition) can change nothing when it comes back.
extension PostgresStore {
    public func claimNext(now: Date, lease: TimeInterval) async throws -> Job? {
        let logger = self.logger
        let node = nodeID
        let started = now.timeIntervalSince1970
        return try await transaction { c in
            let claimed = try await Self.jobRows(c, """
                WITH next AS (
                  SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
                )
                UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, started_at = \(started),
                  progress_step = NULL, progress_total = NULL,
                  lease_expires_at = extract(epoch FROM clock_timestamp())::float8 + \(lease)
                FROM next WHERE j.id = next.id RETURNING j.*
                """, logger: logger)
            guard let job = claimed.first else { return nil }
            try await Self.started(c, job, now: started, node: node, logger: logger)
            return job
        }
    }

    /// A claim's side effects: the start webhook on the first attempt, and the other nodes told.
    private static func started(_ c: PostgresConnection, _ job: Job, now: Double, node: String, logger: Logger) async throws {
        if job.attempts == 1 { try await enqueueWebhook(c, jobID: job.id, event: .start, now: now, logger: logger) }
        try await notify(c, .started(job.id, attempt: job.attempts), node: node, logger: logger)
    }

    public func claimCompatible(with job: Job, maxImages: Int, now: Date, lease: TimeInterval) async throws -> [Job] {
        guard let key = job.request.batchKey, maxImages > 0 else { return [] }
        let logger = self.logger
        let node = nodeID
        let started = now.timeIntervalSince1970
        return try await transaction { c in
            // Queue order, as claimNext; rows another node is claiming are skipped, not waited for.
            var candidates: [Job] = []
            for try await row in try await c.query(
                """
                SELECT * FROM jobs WHERE status = 'queued' AND batch_key = \(key)
                ORDER BY created_at, id LIMIT \(Int64(maxImages)) FOR UPDATE SKIP LOCKED
                """, logger: logger) { candidates.append(try StoredRecords.job(row.makeRandomAccess())) }
            var room = maxImages
            var claimed: [Job] = []
            for queued in candidates {
                guard queued.request.numOutputs <= room else { break }
                guard let job = try await Self.jobRows(c, """
                    UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, started_at = \(started),
                      progress_step = NULL, progress_total = NULL,
                      lease_expires_at = extract(epoch FROM clock_timestamp())::float8 + \(lease)
                    WHERE j.id = \(queued.id) AND j.status = 'queued' RETURNING j.*
                    """, logger: logger).first else { continue }
                try await Self.started(c, job, now: started, node: node, logger: logger)
                claimed.append(job)
                room -= job.request.numOutputs
                if room == 0 { break }
            }
            return claimed
        }
    }

    public func renewLease(id: Int64, attempt: Int, lease: TimeInterval, now: Date) async throws -> Bool {
        try await !rows("""
            UPDATE jobs SET lease_expires_at = extract(epoch FROM clock_timestamp())::float8 + \(lease)
            WHERE id = \(id) AND status = 'running' AND attempts = \(Int64(attempt)) RETURNING id
            """).isEmpty
    }

    public func recordProgress(id: Int64, attempt: Int, step: Int, total: Int) async throws -> Bool {
        let logger = self.logger
        let node = nodeID
        return try await transaction { c in
            let updated = try await c.query("""
                UPDATE jobs SET progress_step = \(Int64(step)), progress_total = \(Int64(total))
                WHERE id = \(id) AND status = 'running' AND attempts = \(Int64(attempt)) RETURNING id
                """, logger: logger)
            var found = false
            for try await _ in updated { found = true }
            if found { try await Self.notify(c, .progress(id, step: step, total: total), node: node, logger: logger) }
            return found
        }
    }

    public func complete(id: Int64, attempt: Int, result: JobResult, now: Date) async throws -> Bool {
        let encoded = try SQLiteStore.json(result)
        let logger = self.logger
        let node = nodeID
        let at = now.timeIntervalSince1970
        return try await transaction { c in
            guard try await Self.exists(c, """
                UPDATE jobs SET status = 'succeeded', result = \(encoded), finished_at = \(at), lease_expires_at = NULL
                WHERE id = \(id) AND status = 'running' AND attempts = \(Int64(attempt)) RETURNING id
                """, logger: logger) else { return false }
            try await Self.settle(c, jobID: id, delivered: result.outputs.count, now: at, logger: logger)
            try await Self.enqueueWebhook(c, jobID: id, event: .completed, now: at, logger: logger)
            try await Self.notify(c, .finished(id), node: node, logger: logger)
            return true
        }
    }

    static func exists(_ c: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws -> Bool {
        var found = false
        for try await _ in try await c.query(query, logger: logger) { found = true }
        return found
    }

    public func fail(id: Int64, attempt: Int?, failure: JobFailure, now: Date) async throws -> Bool {
        let logger = self.logger
        let node = nodeID
        return try await transaction { c in
            try await Self.fail(c, id: id, attempt: attempt, failure: failure, now: now.timeIntervalSince1970, node: node, logger: logger)
        }
    }

    static func fail(
        _ c: PostgresConnection, id: Int64, attempt: Int?, failure: JobFailure, now: Double, node: String, logger: Logger
    ) async throws -> Bool {
        // Without an attempt (an engine-side failure before any claim) any live state may fail.
        let fence = Int64(attempt ?? -1)
        guard try await exists(c, """
            UPDATE jobs SET status = 'failed', error_code = \(failure.code.rawValue), error_message = \(failure.message),
              finished_at = \(now), lease_expires_at = NULL
            WHERE id = \(id) AND ((\(fence) >= 0 AND status = 'running' AND attempts = \(fence))
                                  OR (\(fence) < 0 AND status IN ('queued', 'running')))
            RETURNING id
            """, logger: logger) else { return false }
        try await settle(c, jobID: id, delivered: 0, now: now, logger: logger)
        try await enqueueWebhook(c, jobID: id, event: .completed, now: now, logger: logger)
        try await notify(c, .finished(id), node: node, logger: logger)
        return true
    }

    public func retryOrFail(id: Int64, attempt: Int, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RetryOutcome {
        let logger = self.logger
        let node = nodeID
        return try await transaction { c in
            try await Self.retryOrFail(c, id: id, attempt: attempt, maxAttempts: maxAttempts, failure: failure,
                                       now: now.timeIntervalSince1970, node: node, logger: logger)
        }
    }

    static func retryOrFail(
        _ c: PostgresConnection, id: Int64, attempt: Int, maxAttempts: Int, failure: JobFailure, now: Double, node: String, logger: Logger
    ) async throws -> RetryOutcome {
        // Back to the head of the queue (created_at is kept), hold kept: the run is still owed an image. Only the
        // attempts that counted (not the drained ones) are held against the limit.
        if try await exists(c, """
            UPDATE jobs SET status = 'queued', started_at = NULL, lease_expires_at = NULL, progress_step = NULL, progress_total = NULL
            WHERE id = \(id) AND status = 'running' AND attempts = \(Int64(attempt))
              AND attempts - spared_attempts < \(Int64(maxAttempts)) RETURNING id
            """, logger: logger) {
            try await requeued(c, id: id, node: node, logger: logger)
            return .requeued
        }
        return try await fail(c, id: id, attempt: attempt, failure: failure, now: now, node: node, logger: logger) ? .failed : .fenced
    }

    private static func requeued(_ c: PostgresConnection, id: Int64, node: String, logger: Logger) async throws {
        try await notify(c, .requeued(id), node: node, logger: logger)
        try await notify(c, .queued(id), node: node, logger: logger)
    }

    public func requeueSpared(id: Int64, attempt: Int, now: Date) async throws -> Bool {
        let logger = self.logger
        let node = nodeID
        return try await transaction { c in
            guard try await Self.exists(c, """
                UPDATE jobs SET status = 'queued', started_at = NULL, lease_expires_at = NULL, progress_step = NULL, progress_total = NULL,
                  spared_attempts = spared_attempts + 1
                WHERE id = \(id) AND status = 'running' AND attempts = \(Int64(attempt)) RETURNING id
                """, logger: logger) else { return false }
            try await Self.requeued(c, id: id, node: node, logger: logger)
            return true
        }
    }

    public func cancel(id: Int64, accountID: Int64, now: Date) async throws -> CancelOutcome {
        let logger = self.logger
        let node = nodeID
        let at = now.timeIntervalSince1970
        return try await transaction { c in
            var status: JobStatus?
            for try await text in try await c.query(
                "SELECT status FROM jobs WHERE id = \(id) AND account_id = \(accountID) FOR UPDATE", logger: logger
            ).decode(String.self) { status = JobStatus(rawValue: text) }
            guard let status else { return .notFound }
            guard !status.isTerminal else { return .alreadyFinished(status) }
            try await c.query("""
                UPDATE jobs SET status = 'canceled', error_code = 'canceled', error_message = 'canceled by the client; nothing was charged',
                  finished_at = \(at), lease_expires_at = NULL
                WHERE id = \(id)
                """, logger: logger)
            try await Self.settle(c, jobID: id, delivered: 0, now: at, logger: logger)
            try await Self.enqueueWebhook(c, jobID: id, event: .completed, now: at, logger: logger)
            // The node running it hears this and tells its worker to stop.
            try await Self.notify(c, .finished(id), node: node, logger: logger)
            return .canceled(wasRunning: status == .running)
        }
    }

    public func recoverAbandoned(_ scope: LeaseScope, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RecoveryReport {
        let logger = self.logger
        let node = nodeID
        let all = scope == .all
        return try await transaction { c in
            // SKIP LOCKED: a job whose claimer is writing to it right now is not taken from under it.
            var expired: [(Int64, Int64)] = []
            for try await row in try await c.query("""
                SELECT id, attempts FROM jobs WHERE status = 'running'
                  AND (\(all) OR lease_expires_at IS NULL OR lease_expires_at < extract(epoch FROM clock_timestamp())::float8)
                FOR UPDATE SKIP LOCKED
                """, logger: logger).decode((Int64, Int64).self) { expired.append(row) }
            var report = RecoveryReport()
            for (id, attempt) in expired {
                switch try await Self.retryOrFail(c, id: id, attempt: Int(attempt), maxAttempts: maxAttempts, failure: failure,
                                                  now: now.timeIntervalSince1970, node: node, logger: logger) {
                case .requeued: report.requeued.append(id)
                case .failed: report.failed.append(id)
                case .fenced: break
                }
            }
            return report
        }
    }

    public func queuePosition(id: Int64) async throws -> Int? {
        guard let row = try await rows("SELECT created_at FROM jobs WHERE id = \(id) AND status = 'queued'").first,
              let created = row.double("created_at") else { return nil }
        let ahead = try await rows("""
            SELECT COUNT(*)::bigint AS n FROM jobs WHERE status = 'queued'
              AND (created_at < \(created) OR (created_at = \(created) AND id < \(id)))
            """).first?.int("n") ?? 0
        return Int(ahead)
    }

    public func activeRuns() async throws -> [ActiveRunCount] {
        try await rows("""
            SELECT j.model_id, j.status, COUNT(*)::bigint AS n, COALESCE(SUM(l.amount), 0)::bigint AS held FROM jobs j
            LEFT JOIN ledger l ON l.job_id = j.id AND l.kind = 'hold'
            WHERE j.status IN ('queued', 'running') GROUP BY j.model_id, j.status
            """)
            .compactMap { StoredRecords.activeRun($0) }
    }
}
