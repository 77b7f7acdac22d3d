import CSQLite
import Foundation
import Synchronization

public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let message: String
    public var description: String { "SQLite error \(code): \(message)" }
    public var isConstraintViolation: Bool { code & 0xff == SQLITE_CONSTRAINT }
}

/// A value bound to or read from a statement.
public enum SQLiteValue: Sendable, Equatable {
    case int(Int64)
    case double(Double)
    case text(String)
    case null
}

public typealias SQLiteRow = [String: SQLiteValue]

extension SQLiteRow {
    func int(_ k: String) -> Int64? { if case .int(let v) = self[k] { v } else { nil } }
    func text(_ k: String) -> String? { if case .text(let v) = self[k] { v } else { nil } }
    func double(_ k: String) -> Double? {
        switch self[k] {
        case .double(let v): v
        case .int(let v): Double(v)
        default: nil
        }
    }
}

/// Prepared statements by SQL text, reused across calls (reset and unbound after each): preparing parses and plans
/// the SQL, which cost as much as running the hot queries (/check's key and job lookups). Only touched under the
/// database's mutex.
final class StatementCache {
    var statements: [String: OpaquePointer] = [:]

    func statement(_ db: OpaquePointer?, _ sql: String) throws -> OpaquePointer {
        if let cached = statements[sql] { return cached }
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil) == SQLITE_OK, let stmt else {
            throw SQLiteError(code: sqlite3_errcode(db), message: String(cString: sqlite3_errmsg(db)) + " in: \(sql)")
        }
        statements[sql] = stmt
        return stmt
    }

    func finalizeAll() {
        for stmt in statements.values { sqlite3_finalize(stmt) }
        statements = [:]
    }
}

/// A thin wrapper over the system's libsqlite3: one connection, used by one caller at a time (a mutex), in WAL
/// mode so readers in other processes (the admin commands) never block the server. Statements run in
/// microseconds to a few milliseconds, so holding the mutex across them is cheaper than a thread hop.
public final class SQLiteDatabase: Sendable {
    struct State: @unchecked Sendable {
        var db: OpaquePointer?
        let cache = StatementCache()
    }
    private let handle: Mutex<State>
    public let path: String

    public init(path: String) throws {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(db)
            throw SQLiteError(code: rc, message: "\(path): \(msg)")
        }
        // A second process (the admin CLI) may write while the server runs: wait rather than fail at once.
        sqlite3_busy_timeout(db, 5_000)
        handle = Mutex(State(db: db))
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA foreign_keys=ON")
        try execute("PRAGMA synchronous=NORMAL")
    }

    deinit {
        handle.withLock { state in
            state.cache.finalizeAll()
            sqlite3_close_v2(state.db)
            state.db = nil
        }
    }

    /// Runs one or more statements without parameters.
    public func execute(_ sql: String) throws {
        try handle.withLock { state in try Self.exec(state.db, sql) }
    }

    static func exec(_ db: OpaquePointer?, _ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? "unknown"
            sqlite3_free(err)
            throw SQLiteError(code: rc, message: msg)
        }
    }

    /// Runs a statement and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ params: [SQLiteValue] = []) throws -> [SQLiteRow] {
        try handle.withLock { state in try Self.run(state.db, state.cache, sql, params) }
    }

    /// Runs `body` inside BEGIN IMMEDIATE … COMMIT (rolled back if it throws). IMMEDIATE takes the write lock at
    /// once, so two processes can never both read-then-write the same rows.
    public func transaction<T>(_ body: (Connection) throws -> T) throws -> T {
        try handle.withLock { state in
            let db = state.db
            _ = try Self.run(db, state.cache, "BEGIN IMMEDIATE", [])
            do {
                let value = try body(Connection(db: db, cache: state.cache))
                _ = try Self.run(db, state.cache, "COMMIT", [])
                return value
            } catch {
                _ = try? Self.run(db, state.cache, "ROLLBACK", [])
                throw error
            }
        }
    }

    /// The connection as seen inside a transaction; valid only inside the `transaction` closure.
    public struct Connection {
        let db: OpaquePointer?
        let cache: StatementCache
        @discardableResult
        public func query(_ sql: String, _ params: [SQLiteValue] = []) throws -> [SQLiteRow] {
            try SQLiteDatabase.run(db, cache, sql, params)
        }
        public var changes: Int { Int(sqlite3_changes(db)) }
        /// Runs several statements at once (migrations with triggers, whose bodies hold semicolons).
        public func execute(_ sql: String) throws {
            try SQLiteDatabase.exec(db, sql)
        }
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    static func run(_ db: OpaquePointer?, _ cache: StatementCache, _ sql: String, _ params: [SQLiteValue]) throws -> [SQLiteRow] {
        let stmt = try cache.statement(db, sql)
        defer {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
        }
        for (i, p) in params.enumerated() {
            let idx = Int32(i + 1)
            switch p {
            case .int(let v): sqlite3_bind_int64(stmt, idx, v)
            case .double(let v): sqlite3_bind_double(stmt, idx, v)
            case .text(let v): sqlite3_bind_text(stmt, idx, v, -1, transient)
            case .null: sqlite3_bind_null(stmt, idx)
            }
        }
        let names = (0..<sqlite3_column_count(stmt)).map { String(cString: sqlite3_column_name(stmt, $0)) }
        var rows: [SQLiteRow] = []
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else {
                throw SQLiteError(code: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)))
            }
            var row: SQLiteRow = [:]
            for (c, name) in names.enumerated() {
                let c = Int32(c)
                switch sqlite3_column_type(stmt, c) {
                case SQLITE_INTEGER: row[name] = .int(sqlite3_column_int64(stmt, c))
                case SQLITE_FLOAT: row[name] = .double(sqlite3_column_double(stmt, c))
                case SQLITE_TEXT: row[name] = .text(String(cString: sqlite3_column_text(stmt, c)))
                default: row[name] = .null
                }
            }
            rows.append(row)
        }
        return rows
    }
}
