import AtelierCore
import Foundation

/// A result row read by column name, whichever driver produced it: both stores keep the same columns with the
/// same meaning (times as epoch seconds, JSON as text), so each record is decoded from a row once, here.
protocol StoredRow {
    func int(_ name: String) -> Int64?
    func text(_ name: String) -> String?
    func double(_ name: String) -> Double?
}

extension StoredRow {
    func date(_ name: String) -> Date? { double(name).map { Date(timeIntervalSince1970: $0) } }
}

extension SQLiteRow: StoredRow {}

enum StoredRecords {
    /// A row of `model_id, status, n, held` (the active-runs count).
    static func activeRun(_ r: some StoredRow) -> ActiveRunCount? {
        guard let model = r.text("model_id"), let status = r.text("status").flatMap(JobStatus.init(rawValue:)) else { return nil }
        return ActiveRunCount(modelID: model, status: status, count: Int(r.int("n") ?? 0), held: r.int("held") ?? 0)
    }

    static func job(_ r: some StoredRow) throws -> Job {
        let decoder = JSONDecoder()
        let request = try decoder.decode(RunRequest.self, from: Data((r.text("parameters") ?? "{}").utf8))
        let names = try decoder.decode([String].self, from: Data((r.text("output_names") ?? "[]").utf8))
        let result = try r.text("result").map { try decoder.decode(JobResult.self, from: Data($0.utf8)) }
        let failure = r.text("error_code").map { JobFailure(code: RunFailureCode(stored: $0), message: r.text("error_message") ?? "") }
        return Job(
            id: r.int("id") ?? 0,
            accountID: r.int("account_id") ?? 0,
            request: request,
            outputNames: names,
            pricePerImage: r.int("price_per_image") ?? 0,
            status: JobStatus(rawValue: r.text("status") ?? "") ?? .failed,
            attempts: Int(r.int("attempts") ?? 0),
            result: result,
            failure: failure,
            createdAt: r.date("created_at") ?? Date(timeIntervalSince1970: 0),
            startedAt: r.date("started_at"),
            finishedAt: r.date("finished_at"),
            webhook: try r.text("webhook").map { try decoder.decode(WebhookSubscription.self, from: Data($0.utf8)) },
            progress: r.int("progress_step").flatMap { step in r.int("progress_total").map { JobProgress(step: Int(step), total: Int($0)) } },
            outputsExpiredAt: r.date("outputs_expired_at"),
            sparedAttempts: Int(r.int("spared_attempts") ?? 0)
        )
    }

    static func key(_ r: some StoredRow) -> KeyRecord {
        KeyRecord(prefix: r.text("prefix") ?? "", accountID: r.int("account_id") ?? 0, accountName: r.text("name") ?? "",
                  createdAt: r.date("created_at") ?? Date(timeIntervalSince1970: 0), revokedAt: r.date("revoked_at"))
    }

    static func account(_ r: some StoredRow) -> Account {
        Account(id: r.int("id") ?? 0, name: r.text("name") ?? "", createdAt: r.date("created_at") ?? Date(timeIntervalSince1970: 0))
    }

    static func delivery(_ r: some StoredRow) -> WebhookDelivery {
        WebhookDelivery(
            id: r.text("id") ?? "", jobID: r.int("job_id") ?? 0, event: WebhookEvent(rawValue: r.text("event") ?? "") ?? .completed,
            attempts: Int(r.int("attempts") ?? 0), createdAt: r.date("created_at") ?? Date(timeIntervalSince1970: 0),
            body: r.text("body"), deliveredAt: r.date("delivered_at"), gaveUpAt: r.date("gave_up_at"), lastError: r.text("last_error")
        )
    }

    /// The SELECT both stores read key records with.
    static let keySelect = """
        SELECT k.prefix, k.account_id, a.name, k.created_at, k.revoked_at
        FROM api_keys k JOIN accounts a ON a.id = k.account_id
        """
}
