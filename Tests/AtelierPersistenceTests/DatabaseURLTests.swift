import AtelierPersistence
import Testing

@Suite struct DatabaseURLTests {
    @Test func sqliteForms() throws {
        #expect(try DatabaseURL.parse("sqlite:./data/atelier.sqlite") == .sqlite(path: "./data/atelier.sqlite"))
        #expect(try DatabaseURL.parse("sqlite:///var/lib/atelier.sqlite") == .sqlite(path: "/var/lib/atelier.sqlite"))
        #expect(throws: DatabaseURL.ParseError.self) { try DatabaseURL.parse("sqlite:") }
    }

    @Test func postgresOverTCPWithTheDefaults() throws {
        guard case .postgres(let s) = try DatabaseURL.parse("postgres://atelier:p%40ss%3Aword@db.internal/atelier") else {
            Issue.record("not postgres"); return
        }
        #expect(s.endpoint == .tcp(host: "db.internal", port: 5432))
        #expect(s.username == "atelier" && s.password == "p@ss:word" && s.database == "atelier")
        #expect(s.sslMode == .prefer && s.poolSize == 10)
    }

    @Test func postgresOptions() throws {
        guard case .postgres(let s) = try DatabaseURL.parse("postgresql://u:p@10.0.0.5:6432/db?sslmode=verify-full&pool_size=25") else {
            Issue.record("not postgres"); return
        }
        #expect(s.endpoint == .tcp(host: "10.0.0.5", port: 6432) && s.sslMode == .verifyFull && s.poolSize == 25)
    }

    @Test func postgresOverAUnixSocket() throws {
        guard case .postgres(let s) = try DatabaseURL.parse("postgres://atelier@/atelier?host=/var/run/postgresql") else {
            Issue.record("not postgres"); return
        }
        #expect(s.endpoint == .socket(path: "/var/run/postgresql/.s.PGSQL.5432") && s.password == nil)
        guard case .postgres(let t) = try DatabaseURL.parse("postgres://a@/d?host=/tmp/sock&port=54329") else { return }
        #expect(t.endpoint == .socket(path: "/tmp/sock/.s.PGSQL.54329"))
    }

    @Test(arguments: [
        ("mysql://u:p@h/d", "must start with sqlite: or postgres://"),
        ("postgres://h/d", "names no user"),
        ("postgres://u:p@h/", "names no database"),
        ("postgres://u:p@h/d?sslmode=sometimes", "sslmode must be one of"),
        ("postgres://u:p@h/d?pool_size=0", "pool_size must be from 1 to 1000"),
        ("postgres://u:p@h/d?application_name=x", "does not take the query parameter application_name"),
        ("postgres://u:p@/d", "names no host"),
    ])
    func badURLsSayWhatIsWrong(url: String, message: String) {
        #expect {
            try DatabaseURL.parse(url)
        } throws: { error in
            (error as? DatabaseURL.ParseError)?.why.contains(message) == true
        }
    }

    @Test func passwordsNeverReachMessagesOrLogs() throws {
        #expect(DatabaseURL.redact("postgres://atelier:s3cret@db:5432/atelier") == "postgres://atelier:***@db:5432/atelier")
        let parsed = try DatabaseURL.parse("postgres://atelier:s3cret@db:5432/atelier")
        #expect(!parsed.summary.contains("s3cret"))
        #expect {
            try DatabaseURL.parse("mysql://atelier:s3cret@db/atelier")
        } throws: { error in
            !((error as? DatabaseURL.ParseError)?.why.contains("s3cret") ?? true)
        }
    }
}
