import AtelierCore
import AtelierPersistence
import ArgumentParser
import AtelierServer
import Foundation
import Logging

struct DbCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Apply the database's migrations, or move a single-box SQLite install onto PostgreSQL.",
        subcommands: [Migrate.self, Copy.self]
    )

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply the migrations the database has not had (serve does this at start; this does it ahead of a deploy)."
        )
        @OptionGroup var data: DataDirOption
        func run() async throws {
            let location = try data.location()
            _ = try await data.openStore()
            print("\(location.summary): schema up to date")
        }
    }

    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy every account, key hash, ledger entry, run and output reference from SQLite into an empty PostgreSQL database, then audit the target.",
            discussion: "Stop the single-box server first (the copy reads the file as it is). Output files stay where they are: point the new nodes' --data-dir (or a later S3 bucket) at the same outputs."
        )
        @Option(help: "The SQLite source, as sqlite:PATH.") var from: String
        @Option(help: "The PostgreSQL target, as postgres://USER:PASSWORD@HOST:PORT/DATABASE (empty; migrated here).") var to: String

        func run() async throws {
            guard case .sqlite(let path) = try parse(from, "--from") else { throw ValidationError("--from must be sqlite:PATH") }
            guard case .postgres = try parse(to, "--to") else { throw ValidationError("--to must be a postgres:// URL") }
            guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("--from: no SQLite file at \(path)") }
            let opened = try await DataDirOption.open(try parse(to, "--to"), nodeID: "copy-" + StoreOpener.newNodeID(),
                                                       logger: Logger(label: "atelier"), setting: "--to")
            guard let target = opened.postgres else { throw ValidationError("--to must be a postgres:// URL") }
            let report: SQLiteToPostgres.Report
            do {
                report = try await SQLiteToPostgres.copy(from: path, to: target)
            } catch let error as SQLiteToPostgres.CopyError {
                throw ValidationError("--to: \(error.description)")
            }
            for table in SQLiteToPostgres.tableNames { print("\(table): \(report.rows[table] ?? 0) row(s) copied") }
            let audit = try await LedgerAudit.run(on: target)
            audit.print()
            if !audit.problems.isEmpty { throw ExitCode(1) }
        }

        func parse(_ text: String, _ name: String) throws -> DatabaseURL {
            do { return try DatabaseURL.parse(text) } catch { throw ValidationError("invalid setting \(name): \(error.why)") }
        }
    }
}

/// `accounts audit` and the check after `db copy`: every account's ledger against its runs.
struct LedgerAudit {
    var accounts = 0
    var runs = 0
    var problems: [String] = []

    static func run(on store: any AtelierStore) async throws -> LedgerAudit {
        var audit = LedgerAudit()
        for a in try await store.accounts() {
            let jobs = try await store.jobs(accountID: a.id)
            audit.accounts += 1
            audit.runs += jobs.count
            audit.problems += LedgerRules.audit(entries: try await store.ledger(accountID: a.id), jobs: jobs).map { "\(a.name): \($0)" }
        }
        return audit
    }

    func print() {
        if problems.isEmpty {
            Swift.print("ledger OK: \(accounts) account(s), \(runs) run(s)")
        } else {
            problems.forEach { Swift.print($0) }
        }
    }
}
