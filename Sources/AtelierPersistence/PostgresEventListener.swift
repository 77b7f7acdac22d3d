import AtelierCore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Hears the other nodes' `StoreEvent`s on one dedicated connection (LISTEN needs a connection of its own; the
/// pool's connections come and go).
///
/// postgres-nio ends the notification sequence when the connection is lost and does not listen again by itself,
/// and a half-open connection is noticed only by a query: so this connects, listens, runs `SELECT 1` every few
/// seconds, and on any failure connects and listens again with backoff. After every (re)subscription it calls
/// `onSubscribed`, which polls once, so nothing that happened while no one listened is missed.
public final class PostgresEventListener: Service, Sendable {
    let settings: DatabaseURL.PostgresSettings
    let nodeID: String
    let logger: Logger
    let onEvent: @Sendable (StoreEvent) async -> Void
    let onSubscribed: @Sendable () async -> Void
    let keepAlive: Duration

    public init(settings: DatabaseURL.PostgresSettings, nodeID: String, logger: Logger, keepAlive: Duration = .seconds(3),
                onEvent: @escaping @Sendable (StoreEvent) async -> Void, onSubscribed: @escaping @Sendable () async -> Void) {
        self.settings = settings
        self.nodeID = nodeID
        self.logger = logger
        self.keepAlive = keepAlive
        self.onEvent = onEvent
        self.onSubscribed = onSubscribed
    }

    func configuration() throws -> PostgresConnection.Configuration {
        try PostgresStore.connectionConfiguration(settings)
    }
}

extension PostgresStore {
    static func connectionConfiguration(_ settings: DatabaseURL.PostgresSettings) throws -> PostgresConnection.Configuration {
        var config: PostgresConnection.Configuration
        switch settings.endpoint {
        case .tcp(let host, let port):
            config = .init(host: host, port: port, username: settings.username, password: settings.password,
                           database: settings.database, tls: try PostgresStore.connectionTLS(settings.sslMode))
        case .socket(let path):
            config = .init(unixSocketPath: path, username: settings.username, password: settings.password, database: settings.database)
        }
        config.options.connectTimeout = .seconds(5)
        return config
    }

    /// One connection made and closed, so start-up can say at once why the database cannot be used (refused,
    /// a wrong password, no such database) instead of waiting out the pool's retries.
    public static func probe(_ settings: DatabaseURL.PostgresSettings, logger: Logger) async throws {
        do {
            let c = try await PostgresConnection.connect(configuration: try connectionConfiguration(settings), id: 0, logger: logger)
            try await c.close()
        } catch let e as PSQLError {
            if let message = e.serverInfo?[.message] { throw StoreUnavailable(message) }
            throw StoreUnavailable(e.underlying.map { String(describing: $0) } ?? "\(e.code)")
        }
    }
}

extension PostgresEventListener {
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var backoff: Duration = .milliseconds(200)
            var connectionID = 0
            var lostBefore = false
            while !Task.isCancelled {
                connectionID += 1
                do {
                    try await self.listenOnce(id: connectionID, resubscribed: lostBefore)
                } catch is CancellationError {
                    return
                } catch {
                    if Task.isCancelled { return }
                    self.logger.warning("database notifications lost (\(PostgresStore.mapped(PostgresStore.cause(error)))); listening again in \(backoff)")
                }
                lostBefore = true
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(2))
            }
        }
    }

    private func listenOnce(id: Int, resubscribed: Bool) async throws {
        let connection = try await PostgresConnection.connect(configuration: try configuration(), id: id, logger: logger)
        do {
            try await connection.listen(on: PostgresStore.channel) { notifications in
                if resubscribed { self.logger.info("database notifications: listening again") }
                await self.onSubscribed()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await n in notifications {
                            guard let (node, event) = StoreEvent.parse(n.payload), node != self.nodeID else { continue }
                            await self.onEvent(event)
                        }
                        throw StoreUnavailable("the notification stream ended")
                    }
                    group.addTask {
                        // A query is the only way to notice a half-open connection.
                        while true {
                            try await Task.sleep(for: self.keepAlive)
                            try await withThrowingTaskGroup(of: Void.self) { probe in
                                probe.addTask { try await connection.query("SELECT 1", logger: self.logger) }
                                probe.addTask {
                                    try await Task.sleep(for: self.keepAlive)
                                    throw StoreUnavailable("the listening connection did not answer within \(self.keepAlive)")
                                }
                                defer { probe.cancelAll() }
                                try await probe.next()
                            }
                        }
                    }
                    defer { group.cancelAll() }
                    try await group.next()
                }
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }
}
