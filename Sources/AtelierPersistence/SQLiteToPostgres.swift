import AtelierCore
import Foundation
import Logging
import PostgresNIO

/// `atelier db copy`: moves a single-box install's SQLite file onto an empty PostgreSQL database, row for row and
/// id for id (accounts, key hashes, the ledger, runs with their output names, idempotency records, webhook
/// deliveries), in one transaction: the target has all of it or none. (Not `lora_fetches`: downloads under way
/// belong to the nodes running them.)
public enum SQLiteToPostgres {
    enum Kind { case int, real, text }

    /// Tables in the order their foreign keys need, with each column's type (NULLs are sent typed, so a NULL
    /// bigint is not taken for text).
    static let tables: [(name: String, columns: [(String, Kind)])] = [
        ("accounts", [("id", .int), ("name", .text), ("created_at", .real), ("webhook_secret", .text)]),
        ("api_keys", [("hash", .text), ("prefix", .text), ("account_id", .int), ("created_at", .real), ("revoked_at", .real)]),
        ("jobs", [
            ("id", .int), ("account_id", .int), ("model_id", .text), ("parameters", .text), ("seed", .int),
            ("output_names", .text), ("status", .text), ("attempts", .int), ("result", .text), ("error_code", .text),
            ("error_message", .text), ("created_at", .real), ("started_at", .real), ("finished_at", .real),
            ("price_per_image", .int), ("lease_expires_at", .real), ("webhook", .text), ("batch_key", .text),
            ("progress_step", .int), ("progress_total", .int), ("outputs_expired_at", .real), ("spared_attempts", .int),
            ("inputs_swept_at", .real),
        ]),
        ("ledger", [("id", .int), ("account_id", .int), ("job_id", .int), ("kind", .text), ("amount", .int), ("reason", .text),
                    ("created_at", .real)]),
        ("idempotency", [("scope", .text), ("key", .text), ("fingerprint", .text), ("job_id", .int), ("created_at", .real)]),
        ("webhook_deliveries", [
            ("id", .text), ("job_id", .int), ("event", .text), ("created_at", .real), ("attempts", .int),
            ("next_attempt_at", .real), ("delivered_at", .real), ("gave_up_at", .real), ("last_error", .text), ("body", .text),
        ]),
    ]

    public struct Report: Sendable, Equatable {
        public var rows: [String: Int] = [:]
    }

    /// The tables copied, in order.
    public static var tableNames: [String] { tables.map(\.name) }

    public enum CopyError: Error, CustomStringConvertible {
        case targetNotEmpty(String)
        public var description: String {
            switch self {
            case .targetNotEmpty(let table): "the target database already holds \(table); copy into an empty database (createdb, then atelier db copy)"
            }
        }
    }

    /// Copies every row; the source is opened (and migrated to this version's schema) first, the target migrated.
    public static func copy(from sqlitePath: String, to target: PostgresStore) async throws -> Report {
        _ = try SQLiteStore(path: sqlitePath)
        let source = try SQLiteDatabase(path: sqlitePath)
        try await target.migrate()
        var batches: [(String, [String], [[SQLiteValue]], [Kind])] = []
        for table in tables {
            let names = table.columns.map(\.0)
            let rows = try source.query("SELECT \(names.joined(separator: ", ")) FROM \(table.name)")
            batches.append((table.name, names, rows.map { r in names.map { r[$0] ?? .null } }, table.columns.map(\.1)))
        }
        let logger = target.logger
        let copied = batches
        return try await target.transaction { c in
            var report = Report()
            for (table, _, _, _) in copied.reversed() {
                for try await n in try await c.query(PostgresQuery(unsafeSQL: "SELECT COUNT(*)::bigint FROM \(table)"), logger: logger).decode(Int64.self)
                where n > 0 { throw CopyError.targetNotEmpty(table) }
            }
            for (table, names, rows, kinds) in copied {
                let placeholders = kinds.enumerated().map { i, k in "$\(i + 1)::" + (k == .int ? "bigint" : k == .real ? "float8" : "text") }
                let sql = "INSERT INTO \(table) (\(names.joined(separator: ", "))) VALUES (\(placeholders.joined(separator: ", ")))"
                for row in rows {
                    var binds = PostgresBindings()
                    for (value, kind) in zip(row, kinds) { append(value, as: kind, to: &binds) }
                    try await c.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
                }
                report.rows[table] = rows.count
            }
            // New rows continue after the copied ids.
            for table in ["accounts", "ledger"] {
                try await c.query(PostgresQuery(unsafeSQL: """
                    SELECT setval(pg_get_serial_sequence('\(table)', 'id'), COALESCE((SELECT MAX(id) FROM \(table)), 0) + 1, false)
                    """), logger: logger)
            }
            return report
        }
    }

    static func append(_ value: SQLiteValue, as kind: Kind, to binds: inout PostgresBindings) {
        switch (value, kind) {
        case (.int(let v), .int): binds.append(v)
        case (.int(let v), .real): binds.append(Double(v))
        case (.double(let v), .real): binds.append(v)
        case (.double(let v), .int): binds.append(Int64(v))
        case (.text(let v), _): binds.append(v)
        case (.int(let v), .text): binds.append(String(v))
        case (.double(let v), .text): binds.append(String(v))
        case (.null, .int): binds.append(Int64?.none)
        case (.null, .real): binds.append(Double?.none)
        case (.null, .text): binds.append(String?.none)
        }
    }
}
