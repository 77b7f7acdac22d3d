import AtelierCore
import Foundation

/// Reads every `*.json` under the models folder into a catalog.
enum CatalogLoader {
    static func load(directory: String) throws -> ModelCatalog {
        let url = URL(fileURLWithPath: directory)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: url.path) else {
            throw SettingError(setting: "ATELIER_MODELS_DIR", why: "\(url.path) is not a readable folder of model files")
        }
        var entries: [ModelEntry] = []
        for name in names.sorted() where name.hasSuffix(".json") {
            let file = url.appendingPathComponent(name)
            do {
                entries.append(try JSONDecoder().decode(ModelEntry.self, from: Data(contentsOf: file)))
            } catch {
                throw SettingError(setting: "model file \(file.path)", why: "\(error)")
            }
        }
        guard !entries.isEmpty else {
            throw SettingError(setting: "ATELIER_MODELS_DIR", why: "\(url.path) holds no *.json model files")
        }
        return ModelCatalog(entries)
    }
}
