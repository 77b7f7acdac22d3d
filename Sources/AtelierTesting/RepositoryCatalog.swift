import AtelierCore
import Foundation

/// The repository's own catalog files, so tests check the parameters the server really ships with.
public enum RepositoryCatalog {
    public static let modelsDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("models")

    public static func entry(_ id: String = "flux-cute-3d-kawaii") throws -> ModelEntry {
        try JSONDecoder().decode(ModelEntry.self, from: Data(contentsOf: modelsDirectory.appendingPathComponent("\(id).json")))
    }
}
