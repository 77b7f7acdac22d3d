import AtelierCore
import Foundation
import PostgresNIO

/// The webhook outbox. Dispatchers on several nodes claim due deliveries with `SKIP LOCKED`, so each attempt is
/// made by one node.
extension PostgresStore {
    /// Queues the run's `event` if its webhook asked for it; at most once per run and event.
    static func enqueueWebhook(_ c: PostgresConnection, jobID: Int64, event: WebhookEvent, now: Double, logger: Logger) async throws {
        var text: String?
        for try await t in try await c.query("SELECT webhook FROM jobs WHERE id = \(jobID)", logger: logger).decode(String?.self) { text = t }
        guard let text, let hook = try? JSONDecoder().decode(WebhookSubscription.self, from: Data(text.utf8)),
              hook.events.contains(event) else { return }
        try await c.query("""
            INSERT INTO webhook_deliveries(id, job_id, event, created_at, next_attempt_at)
            VALUES (\(SQLiteStore.messageID()), \(jobID), \(event.rawValue), \(now), \(now)) ON CONFLICT (job_id, event) DO NOTHING
            """, logger: logger)
    }


    public func claimDueWebhooks(now: Date, limit: Int, claimFor: TimeInterval) async throws -> [WebhookDelivery] {
        let at = now.timeIntervalSince1970
        return try await rows("""
            WITH due AS (
              SELECT d.id FROM webhook_deliveries d
              WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL AND d.next_attempt_at <= \(at)
                -- A run's events go out in order: its completed waits while its start is still pending.
                AND NOT (d.event = 'completed' AND EXISTS (
                  SELECT 1 FROM webhook_deliveries e WHERE e.job_id = d.job_id AND e.event = 'start'
                    AND e.delivered_at IS NULL AND e.gave_up_at IS NULL))
              ORDER BY d.next_attempt_at, d.created_at LIMIT \(Int64(limit)) FOR UPDATE SKIP LOCKED
            )
            UPDATE webhook_deliveries w SET next_attempt_at = \(at + claimFor) FROM due WHERE w.id = due.id
            RETURNING w.*
            """).map(StoredRecords.delivery).sorted { $0.createdAt < $1.createdAt }
    }

    public func recordWebhookAttempt(id: String, body: String, outcome: WebhookAttemptOutcome, now: Date) async throws {
        let at = now.timeIntervalSince1970
        let logger = self.logger
        try await transaction { c in
            try await c.query("UPDATE webhook_deliveries SET attempts = attempts + 1, body = COALESCE(body, \(body)) WHERE id = \(id)", logger: logger)
            switch outcome {
            case .delivered:
                try await c.query("UPDATE webhook_deliveries SET delivered_at = \(at), last_error = NULL WHERE id = \(id)", logger: logger)
            case .retry(let next, let error):
                try await c.query("UPDATE webhook_deliveries SET next_attempt_at = \(next.timeIntervalSince1970), last_error = \(error) WHERE id = \(id)",
                                  logger: logger)
            case .gaveUp(let error):
                try await c.query("UPDATE webhook_deliveries SET gave_up_at = \(at), last_error = \(error) WHERE id = \(id)", logger: logger)
            }
        }
    }

    public func webhookDeliveries(jobID: Int64) async throws -> [WebhookDelivery] {
        try await rows("SELECT * FROM webhook_deliveries WHERE job_id = \(jobID) ORDER BY created_at, event DESC").map(StoredRecords.delivery)
    }
}
