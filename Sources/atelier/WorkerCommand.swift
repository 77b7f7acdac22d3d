import ArgumentParser
import AtelierServer
import Foundation

/// `atelier worker`: a GPU node. It runs the supervisor and the Python workers on the shared queue, stores each
/// image in the shared store before its run is recorded (and charged), and serves /healthz and /readyz only.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a GPU worker node on a shared PostgreSQL queue and image store; it serves /healthz and /readyz only.",
        discussion: "Takes the same settings as serve; --database must be PostgreSQL, and --storage a store the API nodes share (s3://… or a shared disk)."
    )

    @OptionGroup var options: NodeOptions

    func run() async throws {
        var settings = try options.settings()
        if options.port == nil, ProcessInfo.processInfo.environment["ATELIER_PORT"].map(\.isEmpty) ?? true { settings.port = 8081 }
        guard !settings.database.isSQLite else {
            throw ValidationError("invalid setting --database: a worker node works on the queue the API nodes share; give it their postgres://… database")
        }
        guard settings.workers > 0 else {
            throw ValidationError("invalid setting --workers: a worker node needs at least one worker (0 is an API-only node: atelier serve --workers 0)")
        }
        try await NodeOptions.run(settings, role: .worker)
    }
}
