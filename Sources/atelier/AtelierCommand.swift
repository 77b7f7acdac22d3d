import ArgumentParser

@main
struct AtelierCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "atelier",
        abstract: "Atelier: a self-hosted image-generation API server.",
        subcommands: [ServeCommand.self, WorkerCommand.self, KeysCommand.self, AccountsCommand.self, CreditsCommand.self, ModelsCommand.self, RunsCommand.self, DbCommand.self, OpenAPICommand.self]
    )
}
