import AtelierCore
import AtelierPersistence
import AtelierServer
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
        return try await Self.open(try location(), nodeID: "admin-" + StoreOpener.newNodeID(), logger: logger, setting: "--database").store
    }

    /// `StoreOpener.open`, its refusal reported as a usage error.
    static func open(_ location: DatabaseURL, nodeID: String, logger: Logger, setting: String) async throws -> StoreOpener.Opened {
        do {
            return try await StoreOpener.open(location, nodeID: nodeID, logger: logger, setting: setting)
        } catch let error as SetupError {
            throw ValidationError(error.description)
        }
    }
}
