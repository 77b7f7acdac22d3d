import AtelierCore
import Foundation

/// The webhook outbox.
extension SQLiteStore {
    // MARK: webhook outbox

    /// Queues the run's `event` if it has a webhook that asked for it; at most once per run and event.
    static func enqueueWebhook(_ c: SQLiteDatabase.Connection, jobID: Int64, event: WebhookEvent, now: Date) throws {
        guard let text = try c.query("SELECT webhook FROM jobs WHERE id = ?", [.int(jobID)]).first?.text("webhook"),
              let hook = try? JSONDecoder().decode(WebhookSubscription.self, from: Data(text.utf8)),
              hook.events.contains(event) else { return }
        try c.query(
            "INSERT OR IGNORE INTO webhook_deliveries(id, job_id, event, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)",
            [.text(Self.messageID()), .int(jobID), .text(event.rawValue), .double(now.timeIntervalSince1970), .double(now.timeIntervalSince1970)]
        )
    }

    /// `msg_` and 24 random base62 characters, like the Standard Webhooks examples.
    static func messageID() -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var rng = SystemRandomNumberGenerator()
        return "msg_" + String((0..<24).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] })
    }


    public func claimDueWebhooks(now: Date, limit: Int, claimFor: TimeInterval) async throws -> [WebhookDelivery] {
        try db.transaction { c in
            let rows = try c.query(
                """
                SELECT * FROM webhook_deliveries d
                WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL AND d.next_attempt_at <= ?
                  -- A run's events go out in order: its completed waits while its start is still pending.
                  AND NOT (d.event = 'completed' AND EXISTS (
                    SELECT 1 FROM webhook_deliveries e WHERE e.job_id = d.job_id AND e.event = 'start'
                      AND e.delivered_at IS NULL AND e.gave_up_at IS NULL))
                ORDER BY d.next_attempt_at, d.created_at LIMIT ?
                """,
                [.double(now.timeIntervalSince1970), .int(Int64(limit))]
            )
            for row in rows {
                try c.query("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?",
                            [.double(now.timeIntervalSince1970 + claimFor), .text(row.text("id") ?? "")])
            }
            return rows.map(StoredRecords.delivery)
        }
    }

    public func recordWebhookAttempt(id: String, body: String, outcome: WebhookAttemptOutcome, now: Date) async throws {
        try db.transaction { c in
            try c.query("UPDATE webhook_deliveries SET attempts = attempts + 1, body = COALESCE(body, ?) WHERE id = ?", [.text(body), .text(id)])
            switch outcome {
            case .delivered:
                try c.query("UPDATE webhook_deliveries SET delivered_at = ?, last_error = NULL WHERE id = ?", [.double(now.timeIntervalSince1970), .text(id)])
            case .retry(let at, let error):
                try c.query("UPDATE webhook_deliveries SET next_attempt_at = ?, last_error = ? WHERE id = ?",
                            [.double(at.timeIntervalSince1970), .text(error), .text(id)])
            case .gaveUp(let error):
                try c.query("UPDATE webhook_deliveries SET gave_up_at = ?, last_error = ? WHERE id = ?",
                            [.double(now.timeIntervalSince1970), .text(error), .text(id)])
            }
        }
    }

    public func webhookDeliveries(jobID: Int64) async throws -> [WebhookDelivery] {
        try db.query("SELECT * FROM webhook_deliveries WHERE job_id = ? ORDER BY created_at, event DESC", [.int(jobID)]).map(StoredRecords.delivery)
    }
}
