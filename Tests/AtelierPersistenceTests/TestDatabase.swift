import AtelierCore
import AtelierPersistence
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

/// The backends the conformance suite runs against: every store test takes one of these, so the same tests
/// prove both implementations (no second copy).
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres
    var testDescription: String { rawValue }
}

/// A fresh, empty database for one test: a SQLite file in a new folder, or a new database on the PostgreSQL test
/// server named by ATELIER_TEST_POSTGRES_URL (`make test` starts one: scripts/test-postgres.sh). Each `open()` is
/// another store on the same data, as another server process (a node, or a restart) would have.
final class TestDatabase: Sendable {
    let backend: Backend
    let sqlitePath: String?
    let postgres: DatabaseURL.PostgresSettings?
    private let pools = Mutex<[Task<Void, any Error>]>([])
    private let opened = Mutex<Int>(0)

    private init(backend: Backend, sqlitePath: String?, postgres: DatabaseURL.PostgresSettings?) {
        self.backend = backend
        self.sqlitePath = sqlitePath
        self.postgres = postgres
    }

    deinit {
        for task in pools.withLock({ $0 }) { task.cancel() }
    }

    static func make(_ backend: Backend) async throws -> TestDatabase {
        switch backend {
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atelier-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            return TestDatabase(backend: .sqlite, sqlitePath: dir.appendingPathComponent("atelier.sqlite").path, postgres: nil)
        case .postgres:
            var settings = try PostgresAdmin.server()
            settings.database = "atelier_t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
            try await PostgresAdmin.shared.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(settings.database)"))
            return TestDatabase(backend: .postgres, sqlitePath: nil, postgres: settings)
        }
    }

    /// Another store on this database, migrated.
    func open() async throws -> any AtelierStore {
        switch backend {
        case .sqlite:
            return try SQLiteStore(path: sqlitePath!)
        case .postgres:
            let n = opened.withLock { $0 += 1; return $0 }
            let store = PostgresStore(settings: postgres!, nodeID: "test\(n)", logger: Logger(label: "test"), timeout: .seconds(30))
            pools.withLock { $0.append(Task { try await store.run() }) }
            try await store.migrate()
            return store
        }
    }

    /// A statement run outside the store (to prove what the schema itself refuses).
    func executeRaw(_ sql: String) async throws {
        switch backend {
        case .sqlite:
            try SQLiteDatabase(path: sqlitePath!).execute(sql)
        case .postgres:
            let client = PostgresClient(configuration: PostgresAdmin.configuration(postgres!), backgroundLogger: Logger(label: "test"))
            let pool = Task { await client.run() }
            defer { pool.cancel() }
            try await client.query(PostgresQuery(unsafeSQL: sql))
        }
    }

    /// Every byte the database keeps for its keys, to prove no plaintext key is among them.
    func keptKeyBytes() async throws -> Data {
        switch backend {
        case .sqlite:
            let path = sqlitePath!
            return try Data(contentsOf: URL(fileURLWithPath: path)) + ((try? Data(contentsOf: URL(fileURLWithPath: path + "-wal"))) ?? Data())
        case .postgres:
            let client = PostgresClient(configuration: PostgresAdmin.configuration(postgres!), backgroundLogger: Logger(label: "test"))
            let pool = Task { await client.run() }
            defer { pool.cancel() }
            var out = Data()
            for try await text in try await client.query("SELECT row_to_json(k)::text FROM api_keys k").decode(String.self) {
                out += Data(text.utf8)
            }
            return out
        }
    }
}

/// The test server's URL and one shared client to create databases with.
enum PostgresAdmin {
    static func server() throws -> DatabaseURL.PostgresSettings {
        guard let text = ProcessInfo.processInfo.environment["ATELIER_TEST_POSTGRES_URL"], !text.isEmpty else {
            throw TestSetupError(message: "ATELIER_TEST_POSTGRES_URL is not set: the conformance suite runs against PostgreSQL too. `make test` starts a test server (scripts/test-postgres.sh start) and sets it.")
        }
        guard case .postgres(let settings) = try DatabaseURL.parse(text) else {
            throw TestSetupError(message: "ATELIER_TEST_POSTGRES_URL must be a postgres:// URL")
        }
        return settings
    }

    static func configuration(_ s: DatabaseURL.PostgresSettings) -> PostgresClient.Configuration {
        guard case .tcp(let host, let port) = s.endpoint else { fatalError("the test server is reached over TCP") }
        return PostgresClient.Configuration(host: host, port: port, username: s.username, password: s.password, database: s.database, tls: .disable)
    }

    static let shared: PostgresClient = {
        let client = PostgresClient(configuration: configuration(try! server()), backgroundLogger: Logger(label: "test"))
        Task { await client.run() }
        return client
    }()
}

struct TestSetupError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
