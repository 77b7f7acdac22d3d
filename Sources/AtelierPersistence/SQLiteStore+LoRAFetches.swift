import AtelierCore
import Foundation

/// LoRA downloads under way (`LoRAFetchLeases`), on `now`: one machine holds the SQLite file.
extension SQLiteStore {
    public func claimLoRAFetch(key: String, node: String, seconds: Int, now: Date) async throws -> Bool {
        let t = now.timeIntervalSince1970
        // Taken when free, lapsed, or already this node's (a retry of a claim whose answer was lost).
        return try !db.query("""
            INSERT INTO lora_fetches (key, node, expires_at) VALUES (?, ?, ?)
            ON CONFLICT (key) DO UPDATE SET node = excluded.node, expires_at = excluded.expires_at, bytes_done = 0, bytes_total = NULL
            WHERE lora_fetches.expires_at < ? OR lora_fetches.node = excluded.node
            RETURNING key
            """, [.text(key), .text(node), .double(t + Double(seconds)), .double(t)]).isEmpty
    }

    public func renewLoRAFetch(key: String, node: String, seconds: Int, progress: LoRAFetchProgress, now: Date) async throws -> Bool {
        try !db.query("""
            UPDATE lora_fetches SET expires_at = ?, bytes_done = ?, bytes_total = ? WHERE key = ? AND node = ? RETURNING key
            """, [.double(now.timeIntervalSince1970 + Double(seconds)), .int(Int64(progress.bytesDone)),
                  progress.bytesTotal.map { .int(Int64($0)) } ?? .null, .text(key), .text(node)]).isEmpty
    }

    public func releaseLoRAFetch(key: String, node: String) async throws {
        _ = try db.query("DELETE FROM lora_fetches WHERE key = ? AND node = ?", [.text(key), .text(node)])
    }

    public func loraFetch(key: String, now: Date) async throws -> LoRAFetchProgress? {
        try db.query("SELECT bytes_done, bytes_total FROM lora_fetches WHERE key = ? AND expires_at >= ?",
                     [.text(key), .double(now.timeIntervalSince1970)]).first.map {
            LoRAFetchProgress(bytesDone: Int($0.int("bytes_done") ?? 0), bytesTotal: $0.int("bytes_total").map(Int.init))
        }
    }
}
