import AtelierCore
import Foundation

/// Reads every `*.json` under the models folder into a catalog. A file the pipeline cannot run as written (a
/// parameter it would drop, a choice it cannot make, a missing essential) stops start-up naming the file and
/// every problem (`RunParameter.problems`), rather than advertise parameters no run would honour.
public enum CatalogLoader {
    public static func load(directory: String) throws -> ModelCatalog {
        let url = URL(fileURLWithPath: directory)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: url.path) else {
            throw SettingError(setting: "ATELIER_MODELS_DIR", why: "\(url.path) is not a readable folder of model files")
        }
        var entries: [ModelEntry] = []
        for name in names.sorted() where name.hasSuffix(".json") {
            let file = url.appendingPathComponent(name)
            let entry: ModelEntry
            do {
                entry = try JSONDecoder().decode(ModelEntry.self, from: Data(contentsOf: file))
            } catch {
                throw SettingError(setting: "model file \(file.path)", why: "\(error)")
            }
            let problems = RunParameter.problems(in: entry)
            guard problems.isEmpty else {
                throw SettingError(setting: "model file \(file.path)", why: problems.joined(separator: "; ") + " (see models/README.md)")
            }
            entries.append(entry)
        }
        guard !entries.isEmpty else {
            throw SettingError(setting: "ATELIER_MODELS_DIR", why: "\(url.path) holds no *.json model files")
        }
        return ModelCatalog(entries)
    }
}
