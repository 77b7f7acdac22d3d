import ArgumentParser
import AtelierServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the API server and its local workers (SQLite and a local output folder by default)."
    )

    @OptionGroup var options: NodeOptions

    func run() async throws {
        let settings = try options.settings()
        try await NodeOptions.run(settings, role: .apiAndWorkers)
    }
}
