import AtelierCore
import AtelierHTTP
import ArgumentParser
import AtelierServer
import Foundation

/// `atelier openapi`: the document /openapi.json serves, for a models folder, without starting a server (for
/// client generators, reviews of a new model file, and the docs).
struct OpenAPICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openapi",
        abstract: "Print the OpenAPI 3.1 document the server would serve for a models folder."
    )
    @Option(name: .customLong("models-dir"), help: "Folder of model catalog files (default ./models).") var modelsDir = "models"
    @Option(name: .customLong("replicate-owner"), help: "The owner of every model in the Replicate-compatible API (default atelier).")
    var replicateOwner = "atelier"

    func run() async throws {
        var dialects = DialectConfiguration()
        dialects.replicateOwner = replicateOwner
        print(OpenAPIBuilder.json(catalog: try CatalogLoader.load(directory: modelsDir), dialects: dialects))
    }
}
