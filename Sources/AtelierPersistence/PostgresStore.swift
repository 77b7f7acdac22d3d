import AtelierCore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Accounts, keys, the ledger, the queue, webhooks and idempotency records in one PostgreSQL database shared by
/// several `atelier serve` nodes. Same contract as `SQLiteStore` (one conformance suite runs against both).
///
/// What sharing changes: a run's credit check and the per-account cap lock the account's row, so nodes cannot
/// both spend the same credit; claims take `FOR UPDATE SKIP LOCKED`; leases are timed on the database's clock
/// (nodes' clocks differ); each state change sends a `NOTIFY` in its transaction (`PostgresEventListener` hears
/// it on the other nodes). Run its `PostgresClient` as a service (`run()`): it connects and reconnects by itself.
public final class PostgresStore: AtelierStore, Service, Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Sent with every notification, so a node can skip its own (it told its local waiters already).
    public let nodeID: String
    /// Longest a store call waits for the database before the request gets 503 (an outage, a restart).
    let timeout: Duration

    /// The notification channel every node listens on.
    static let channel = "atelier_events"
    /// The database's clock as epoch seconds: leases use it, never a node's.
    static let dbNow = "extract(epoch FROM clock_timestamp())::float8"

    public init(settings: DatabaseURL.PostgresSettings, nodeID: String, logger: Logger, timeout: Duration = .seconds(10)) {
        var config: PostgresClient.Configuration
        switch settings.endpoint {
        case .tcp(let host, let port):
            config = .init(host: host, port: port, username: settings.username, password: settings.password,
                           database: settings.database, tls: Self.clientTLS(settings.sslMode))
        case .socket(let path):
            config = .init(unixSocketPath: path, username: settings.username, password: settings.password, database: settings.database)
        }
        config.options.maximumConnections = settings.poolSize
        config.options.connectTimeout = .seconds(5)
        config.options.keepAliveBehavior = .init(frequency: .seconds(10))
        client = PostgresClient(configuration: config, backgroundLogger: logger)
        self.logger = logger
        self.nodeID = nodeID
        self.timeout = timeout
    }

    /// libpq's sslmode as postgres-nio's TLS choice: `require` encrypts without checking the server's
    /// certificate, `verify-full` checks it and its name.
    static func tls(_ mode: DatabaseURL.PostgresSettings.SSLMode) -> (required: Bool, config: TLSConfiguration)? {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch mode {
        case .disable: return nil
        case .prefer: return (false, tls)
        case .require:
            tls.certificateVerification = .none
            return (true, tls)
        case .verifyFull: return (true, tls)
        }
    }

    static func clientTLS(_ mode: DatabaseURL.PostgresSettings.SSLMode) -> PostgresClient.Configuration.TLS {
        guard let t = tls(mode) else { return .disable }
        return t.required ? .require(t.config) : .prefer(t.config)
    }

    static func connectionTLS(_ mode: DatabaseURL.PostgresSettings.SSLMode) throws -> PostgresConnection.Configuration.TLS {
        guard let t = tls(mode) else { return .disable }
        let context = try NIOSSLContext(configuration: t.config)
        return t.required ? .require(context) : .prefer(context)
    }

    /// Runs the connection pool until graceful shutdown. Put it first in the service group: it stops last.
    public func run() async throws {
        await client.run()
    }

    public var sharedByNodes: Bool { true }

    // MARK: running statements

    /// Runs `body` in one transaction. Serialization failures and deadlocks are retried (their transaction was
    /// rolled back: nothing of it happened); an unreachable database becomes `StoreUnavailable`.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await deadline { [client, logger] in
                    try await client.withConnection { c in try await c.withTransaction(logger: logger) { c in try await body(c) } }
                }
            } catch {
                let cause = Self.cause(error)
                if attempt < 4, let state = Self.sqlState(cause), state == "40001" || state == "40P01" { continue }
                throw Self.mapped(cause)
            }
        }
    }

    /// One statement outside a transaction (reads).
    func rows(_ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
        do {
            return try await deadline { [client] in
                var out: [PostgresRandomAccessRow] = []
                for try await row in try await client.query(query) { out.append(row.makeRandomAccess()) }
                return out
            }
        } catch {
            throw Self.mapped(Self.cause(error))
        }
    }

    private func deadline<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let timeout = self.timeout
        return try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await work() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw StoreUnavailable("no answer within \(timeout)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// The error that matters inside a transaction's wrapper (the closure's own, else the one of BEGIN or COMMIT).
    static func cause(_ error: any Error) -> any Error {
        if let t = error as? PostgresTransactionError {
            return t.closureError ?? t.beginError ?? t.commitError ?? t.rollbackError ?? error
        }
        return error
    }

    static func sqlState(_ error: any Error) -> String? {
        guard let e = error as? PSQLError, e.code == .server else { return nil }
        return e.serverInfo?[.sqlState]
    }

    /// Domain errors pass through; anything that says the server cannot be reached (connection errors, admin
    /// shutdown, "the database system is starting up", too many connections, a closed pool) is `StoreUnavailable`.
    static func mapped(_ error: any Error) -> any Error {
        if error is JobStoreError || error is StoreUnavailable || error is CancellationError { return error }
        if let e = error as? PSQLError {
            if e.code == .server {
                let state = e.serverInfo?[.sqlState] ?? ""
                if state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53") {
                    return StoreUnavailable(e.serverInfo?[.message] ?? state)
                }
                return StoreQueryError(sqlState: state, message: e.serverInfo?[.message] ?? "")
            }
            return StoreUnavailable(e.underlying.map { String(describing: $0) } ?? "\(e.code)")
        }
        // The pool's own errors (circuit breaker tripped, pool shut down) are of a type postgres-nio does not export.
        if error is ChannelError || error is IOError || String(reflecting: type(of: error)).contains("ConnectionPoolError") {
            return StoreUnavailable("\(error)")
        }
        return error
    }

    /// Sends `event` to every node when the surrounding transaction commits (NOTIFY is transactional).
    static func notify(_ c: PostgresConnection, _ event: StoreEvent, node: String, logger: Logger) async throws {
        try await c.query("SELECT pg_notify(\(channel), \(event.payload(node: node)))", logger: logger)
    }
}

/// A statement the server refused for a reason other than reachability: a bug, reported with its SQLSTATE.
public struct StoreQueryError: Error, CustomStringConvertible {
    public var sqlState: String
    public var message: String
    public var description: String { "PostgreSQL refused a statement (SQLSTATE \(sqlState)): \(message)" }
}

extension PostgresRandomAccessRow: StoredRow {
    func int(_ name: String) -> Int64? { try? self[name].decode(Int64?.self) }
    func text(_ name: String) -> String? { try? self[name].decode(String?.self) }
    func double(_ name: String) -> Double? { try? self[name].decode(Double?.self) }
}
