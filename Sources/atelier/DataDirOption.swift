import AtelierCore
import AtelierPersistence
import ArgumentParser
import Foundation
import Logging

/// The database and data folder every admin command works on: `--database` (ATELIER_DATABASE) as `serve` takes
/// it, else the SQLite file in `--data-dir`.
struct DataDirOption: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Data folder holding atelier.sqlite and the outputs (ATELIER_DATA_DIR; default ./data).")
    var dataDir: String?
    @Option(help: "sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=…] (ATELIER_DATABASE; default sqlite:DATA_DIR/atelier.sqlite).")
    var database: String?

    var directory: String {
        dataDir ?? ProcessInfo.processInfo.environment["ATELIER_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "data"
    }

    func location() throws -> DatabaseURL {
        let env = ProcessInfo.processInfo.environment["ATELIER_DATABASE"].flatMap { $0.isEmpty ? nil : $0 }
        guard let text = database ?? env else {
            return .sqlite(path: URL(fileURLWithPath: directory).appendingPathComponent("atelier.sqlite").path)
        }
        do { return try DatabaseURL.parse(text) } catch {
            throw ValidationError("invalid setting \(database != nil ? "--database" : "ATELIER_DATABASE"): \(error.why)")
        }
    }

    /// The store, migrated. PostgreSQL's pool runs for the rest of this (short-lived) command.
    func openStore() async throws -> any AtelierStore {
        var logger = Logger(label: "atelier")
        logger.logLevel = .warning
        return try await StoreOpener.open(try location(), nodeID: "admin-" + StoreOpener.newNodeID(), logger: logger, setting: "--database").store
    }
}

/// Opens what `--database` names, applies its migrations, and says clearly when it cannot.
enum StoreOpener {
    struct Opened {
        var store: any AtelierStore
        /// Set for PostgreSQL: its pool is already running (started by `open`).
        var postgres: PostgresStore?
    }

    static func newNodeID() -> String { String(UUID().uuidString.prefix(8).lowercased()) }

    static func open(_ location: DatabaseURL, nodeID: String, logger: Logger, setting: String) async throws -> Opened {
        switch location {
        case .sqlite(let path):
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            do { return Opened(store: try SQLiteStore(path: path)) } catch {
                throw ValidationError("\(setting): cannot open the SQLite file \(path): \(error)")
            }
        case .postgres(let settings):
            let store = PostgresStore(settings: settings, nodeID: nodeID, logger: logger)
            Task { try await store.run() }
            do {
                try await PostgresStore.probe(settings, logger: logger)
                try await store.migrate()
            } catch {
                throw ValidationError("\(setting): cannot use \(location.summary): \(error)")
            }
            return Opened(store: store, postgres: store)
        }
    }
}
