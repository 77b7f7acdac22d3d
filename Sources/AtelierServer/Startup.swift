import Foundation
import Logging
import ServiceLifecycle

/// Start-up that needs the services before it (the database pool) running: it prepares, then runs what it built
/// (the HTTP server, workers and drain) as a child group until shutdown.
struct Startup: Service {
    let logger: Logger
    let prepare: @Sendable () async throws -> ServiceGroup

    init(logger: Logger, prepare: @escaping @Sendable () async throws -> ServiceGroup) {
        self.logger = logger
        self.prepare = prepare
    }

    func run() async throws {
        let group = try await prepare()
        try await group.run()
    }
}

/// Start-up stopped with a message for the operator (exit status 2).
struct StartupFailure: Error {
    let message: String
}
