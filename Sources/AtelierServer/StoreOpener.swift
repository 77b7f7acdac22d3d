import AtelierCore
import AtelierPersistence
import Foundation
import Logging

/// Opens what `--database` names, applies its migrations, and says clearly when it cannot.
public enum StoreOpener {
    public struct Opened {
        public var store: any AtelierStore
        /// Set for PostgreSQL: its pool is already running (started by `open`).
        public var postgres: PostgresStore?
    }

    public static func newNodeID() -> String { String(UUID().uuidString.prefix(8).lowercased()) }

    public static func open(_ location: DatabaseURL, nodeID: String, logger: Logger, setting: String) async throws -> Opened {
        switch location {
        case .sqlite(let path):
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            do { return Opened(store: try SQLiteStore(path: path)) } catch {
                throw SetupError("\(setting): cannot open the SQLite file \(path): \(error)")
            }
        case .postgres(let settings):
            let store = PostgresStore(settings: settings, nodeID: nodeID, logger: logger)
            Task { try await store.run() }
            do {
                try await PostgresStore.probe(settings, logger: logger)
                try await store.migrate()
            } catch {
                throw SetupError("\(setting): cannot use \(location.summary): \(error)")
            }
            return Opened(store: store, postgres: store)
        }
    }
}
