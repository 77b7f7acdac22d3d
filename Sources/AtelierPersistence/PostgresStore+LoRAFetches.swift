import AtelierCore
import Foundation

/// LoRA downloads under way (`LoRAFetchLeases`), on the database's clock: nodes' clocks differ.
extension PostgresStore {
    public func claimLoRAFetch(key: String, node: String, seconds: Int, now: Date) async throws -> Bool {
        try await !rows("""
            INSERT INTO lora_fetches (key, node, expires_at) VALUES (\(key), \(node), EXTRACT(EPOCH FROM now()) + \(Double(seconds)))
            ON CONFLICT (key) DO UPDATE SET node = excluded.node, expires_at = excluded.expires_at, bytes_done = 0, bytes_total = NULL
            WHERE lora_fetches.expires_at < EXTRACT(EPOCH FROM now()) OR lora_fetches.node = excluded.node
            RETURNING key
            """).isEmpty
    }

    public func renewLoRAFetch(key: String, node: String, seconds: Int, progress: LoRAFetchProgress, now: Date) async throws -> Bool {
        let total = progress.bytesTotal.map(Int64.init)
        return try await !rows("""
            UPDATE lora_fetches SET expires_at = EXTRACT(EPOCH FROM now()) + \(Double(seconds)),
                   bytes_done = \(Int64(progress.bytesDone)), bytes_total = \(total)
            WHERE key = \(key) AND node = \(node) RETURNING key
            """).isEmpty
    }

    public func releaseLoRAFetch(key: String, node: String) async throws {
        _ = try await rows("DELETE FROM lora_fetches WHERE key = \(key) AND node = \(node) RETURNING key")
    }

    public func loraFetch(key: String, now: Date) async throws -> LoRAFetchProgress? {
        try await rows("""
            SELECT bytes_done, bytes_total FROM lora_fetches WHERE key = \(key) AND expires_at >= EXTRACT(EPOCH FROM now())
            """).first.map {
            LoRAFetchProgress(bytesDone: Int($0.int("bytes_done") ?? 0), bytesTotal: $0.int("bytes_total").map(Int.init))
        }
    }
}
