import AtelierCore
import Foundation

/// The queue: claims, leases, fencing, retries, cancel and positions.
extension SQLiteStore {
    public func claimNext(now: Date, lease: TimeInterval) async throws -> Job? {
        try db.transaction { c in
            // IMMEDIATE transaction: no other connection can claim between the SELECT and the UPDATE.
            guard let row = try c.query(
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1"
            ).first, let id = row.int("id") else { return nil }
            try c.query(
                """
                UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, lease_expires_at = ?
                WHERE id = ? AND status = 'queued'
                """,
                [.double(now.timeIntervalSince1970), .double(now.timeIntervalSince1970 + lease), .int(id)]
            )
            let job = try c.query("SELECT * FROM jobs WHERE id = ?", [.int(id)]).first.map(StoredRecords.job)
            if job?.attempts == 1 { try Self.enqueueWebhook(c, jobID: id, event: .start, now: now) }
            return job
        }
    }

    public func claimCompatible(with job: Job, maxImages: Int, now: Date, lease: TimeInterval) async throws -> [Job] {
        guard let key = job.request.batchKey, maxImages > 0 else { return [] }
        return try db.transaction { c in
            var room = maxImages
            var claimed: [Job] = []
            // Queue order, as claimNext: a batch never lets a later run overtake an earlier compatible one.
            let rows = try c.query(
                "SELECT * FROM jobs WHERE status = 'queued' AND batch_key = ? ORDER BY created_at, id LIMIT ?",
                [.text(key), .int(Int64(maxImages))]
            )
            for row in rows {
                let queued = try StoredRecords.job(row)
                guard queued.request.numOutputs <= room else { break }
                try c.query(
                    """
                    UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, lease_expires_at = ?
                    WHERE id = ? AND status = 'queued'
                    """,
                    [.double(now.timeIntervalSince1970), .double(now.timeIntervalSince1970 + lease), .int(queued.id)]
                )
                guard c.changes == 1,
                      let job = try c.query("SELECT * FROM jobs WHERE id = ?", [.int(queued.id)]).first.map(StoredRecords.job)
                else { continue }
                if job.attempts == 1 { try Self.enqueueWebhook(c, jobID: job.id, event: .start, now: now) }
                claimed.append(job)
                room -= job.request.numOutputs
                if room == 0 { break }
            }
            return claimed
        }
    }

    public func renewLease(id: Int64, attempt: Int, lease: TimeInterval, now: Date) async throws -> Bool {
        try db.transaction { c in
            try c.query(
                "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND status = 'running' AND attempts = ?",
                [.double(now.timeIntervalSince1970 + lease), .int(id), .int(Int64(attempt))]
            )
            return c.changes == 1
        }
    }

    public func recordProgress(id: Int64, attempt: Int, step: Int, total: Int) async throws -> Bool {
        try db.transaction { c in
            try c.query(
                "UPDATE jobs SET progress_step = ?, progress_total = ? WHERE id = ? AND status = 'running' AND attempts = ?",
                [.int(Int64(step)), .int(Int64(total)), .int(id), .int(Int64(attempt))]
            )
            return c.changes == 1
        }
    }

    /// One process holds the file (the embedded default); several nodes share PostgreSQL instead.
    public var sharedByNodes: Bool { false }

    public func complete(id: Int64, attempt: Int, result: JobResult, now: Date) async throws -> Bool {
        let encoded = try Self.json(result)
        return try db.transaction { c in
            try c.query(
                """
                UPDATE jobs SET status = 'succeeded', result = ?, finished_at = ?, lease_expires_at = NULL
                WHERE id = ? AND status = 'running' AND attempts = ?
                """,
                [.text(encoded), .double(now.timeIntervalSince1970), .int(id), .int(Int64(attempt))]
            )
            guard c.changes == 1 else { return false }
            try Self.settle(c, jobID: id, delivered: result.outputs.count, now: now)
            try Self.enqueueWebhook(c, jobID: id, event: .completed, now: now)
            return true
        }
    }

    public func fail(id: Int64, attempt: Int?, failure: JobFailure, now: Date) async throws -> Bool {
        try db.transaction { c in try Self.fail(c, id: id, attempt: attempt, failure: failure, now: now) }
    }

    static func fail(_ c: SQLiteDatabase.Connection, id: Int64, attempt: Int?, failure: JobFailure, now: Date) throws -> Bool {
        let fence = attempt.map { "AND status = 'running' AND attempts = \($0)" } ?? "AND status IN ('queued', 'running')"
        try c.query(
            """
            UPDATE jobs SET status = 'failed', error_code = ?, error_message = ?, finished_at = ?, lease_expires_at = NULL
            WHERE id = ? \(fence)
            """,
            [.text(failure.code.rawValue), .text(failure.message), .double(now.timeIntervalSince1970), .int(id)]
        )
        guard c.changes == 1 else { return false }
        try settle(c, jobID: id, delivered: 0, now: now)
        try enqueueWebhook(c, jobID: id, event: .completed, now: now)
        return true
    }

    public func retryOrFail(id: Int64, attempt: Int, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RetryOutcome {
        try db.transaction { c in try Self.retryOrFail(c, id: id, attempt: attempt, maxAttempts: maxAttempts, failure: failure, now: now) }
    }

    static func retryOrFail(
        _ c: SQLiteDatabase.Connection, id: Int64, attempt: Int, maxAttempts: Int, failure: JobFailure, now: Date
    ) throws -> RetryOutcome {
        // Back to the head of the queue (created_at is kept), hold kept: the run is still owed an image. Only the
        // attempts that counted (not the drained ones) are held against the limit.
        try c.query(
            """
            UPDATE jobs SET status = 'queued', started_at = NULL, lease_expires_at = NULL, progress_step = NULL, progress_total = NULL
            WHERE id = ? AND status = 'running' AND attempts = ? AND attempts - spared_attempts < ?
            """,
            [.int(id), .int(Int64(attempt)), .int(Int64(maxAttempts))]
        )
        if c.changes == 1 { return .requeued }
        return try fail(c, id: id, attempt: attempt, failure: failure, now: now) ? .failed : .fenced
    }

    public func requeueSpared(id: Int64, attempt: Int, now: Date) async throws -> Bool {
        try db.transaction { c in
            try c.query(
                """
                UPDATE jobs SET status = 'queued', started_at = NULL, lease_expires_at = NULL, progress_step = NULL, progress_total = NULL,
                  spared_attempts = spared_attempts + 1
                WHERE id = ? AND status = 'running' AND attempts = ?
                """,
                [.int(id), .int(Int64(attempt))]
            )
            return c.changes == 1
        }
    }

    public func cancel(id: Int64, accountID: Int64, now: Date) async throws -> CancelOutcome {
        try db.transaction { c in
            guard let row = try c.query("SELECT status FROM jobs WHERE id = ? AND account_id = ?", [.int(id), .int(accountID)]).first,
                  let status = JobStatus(rawValue: row.text("status") ?? "")
            else { return .notFound }
            guard !status.isTerminal else { return .alreadyFinished(status) }
            try c.query(
                """
                UPDATE jobs SET status = 'canceled', error_code = 'canceled', error_message = ?, finished_at = ?, lease_expires_at = NULL
                WHERE id = ? AND status IN ('queued', 'running')
                """,
                [.text("canceled by the client; nothing was charged"), .double(now.timeIntervalSince1970), .int(id)]
            )
            try Self.settle(c, jobID: id, delivered: 0, now: now)
            try Self.enqueueWebhook(c, jobID: id, event: .completed, now: now)
            return .canceled(wasRunning: status == .running)
        }
    }

    public func recoverAbandoned(_ scope: LeaseScope, maxAttempts: Int, failure: JobFailure, now: Date) async throws -> RecoveryReport {
        let before = scope == .all ? Double.greatestFiniteMagnitude : now.timeIntervalSince1970
        return try db.transaction { c in
            let rows = try c.query(
                "SELECT id, attempts FROM jobs WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < ?)",
                [.double(before)]
            )
            var report = RecoveryReport()
            for row in rows {
                guard let id = row.int("id"), let attempt = row.int("attempts") else { continue }
                switch try Self.retryOrFail(c, id: id, attempt: Int(attempt), maxAttempts: maxAttempts, failure: failure, now: now) {
                case .requeued: report.requeued.append(id)
                case .failed: report.failed.append(id)
                case .fenced: break
                }
            }
            return report
        }
    }

    public func queuePosition(id: Int64) async throws -> Int? {
        try db.transaction { c in
            guard let row = try c.query("SELECT created_at FROM jobs WHERE id = ? AND status = 'queued'", [.int(id)]).first,
                  let created = row.double("created_at") else { return nil }
            let ahead = try c.query(
                "SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued' AND (created_at < ? OR (created_at = ? AND id < ?))",
                [.double(created), .double(created), .int(id)]
            ).first?.int("n") ?? 0
            return Int(ahead)
        }
    }

    public func activeRuns() async throws -> [ActiveRunCount] {
        try db.query("""
            SELECT j.model_id, j.status, COUNT(*) AS n, COALESCE(SUM(l.amount), 0) AS held FROM jobs j
            LEFT JOIN ledger l ON l.job_id = j.id AND l.kind = 'hold'
            WHERE j.status IN ('queued', 'running') GROUP BY j.model_id, j.status
            """)
            .compactMap { StoredRecords.activeRun($0) }
    }
}
