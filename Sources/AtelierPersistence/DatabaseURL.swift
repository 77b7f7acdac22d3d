import Foundation

/// Where `--database` points: the embedded SQLite file, or a PostgreSQL server shared by several nodes.
///
/// Accepted forms (libpq's URL syntax, so an operator's existing URLs work):
/// - `sqlite:PATH` (relative to the working folder; `sqlite:./data/atelier.sqlite` is the default)
/// - `postgres://user:password@host:port/database?sslmode=disable|prefer|require|verify-full`
///   (`postgresql://` too; the password may be percent-encoded; port 5432 and sslmode `prefer` by default)
/// - `postgres://user:password@/database?host=/var/run/postgresql` (a Unix socket: the folder holding
///   `.s.PGSQL.PORT`, as libpq takes it, or the socket file itself)
public enum DatabaseURL: Sendable, Equatable {
    case sqlite(path: String)
    case postgres(PostgresSettings)

    public struct PostgresSettings: Sendable, Equatable {
        public enum Endpoint: Sendable, Equatable {
            case tcp(host: String, port: Int)
            /// The socket file's full path.
            case socket(path: String)
        }
        public enum SSLMode: String, Sendable, Equatable, CaseIterable {
            case disable, prefer, require
            case verifyFull = "verify-full"
        }
        public var endpoint: Endpoint
        public var username: String
        public var password: String?
        public var database: String
        public var sslMode: SSLMode
        /// Connections this node's pool may open (`?pool_size=`; docs/operations.md sizes it).
        public var poolSize: Int
    }

    public static let defaultSQLite = DatabaseURL.sqlite(path: "./data/atelier.sqlite")

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var why: String
        public var description: String { why }
    }

    public static func parse(_ text: String) throws(ParseError) -> DatabaseURL {
        if text.hasPrefix("sqlite:") {
            var path = String(text.dropFirst("sqlite:".count))
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else { throw ParseError(why: "sqlite: needs a file path, such as sqlite:./data/atelier.sqlite") }
            return .sqlite(path: path)
        }
        guard text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") else {
            throw ParseError(why: "must start with sqlite: or postgres://; got \"\(redact(text))\"")
        }
        guard let url = URLComponents(string: text) else {
            throw ParseError(why: "is not a valid URL; percent-encode special characters in the password; got \"\(redact(text))\"")
        }
        var query: [String: String] = [:]
        for item in url.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let known: Set<String> = ["sslmode", "host", "port", "pool_size"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw ParseError(why: "does not take the query parameter \(unknown); it takes sslmode, host (a socket folder), port and pool_size")
        }
        guard let user = url.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !user.isEmpty else {
            throw ParseError(why: "names no user; write postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
        let database = String(url.percentEncodedPath.dropFirst()).removingPercentEncoding ?? ""
        guard !database.isEmpty, !database.contains("/") else {
            throw ParseError(why: "names no database; write postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
        var port = url.port ?? 5432
        if let p = query["port"] {
            guard let n = Int(p) else { throw ParseError(why: "port must be a number; got \"\(p)\"") }
            port = n
        }
        guard (1...65535).contains(port) else { throw ParseError(why: "port must be from 1 to 65535; got \(port)") }
        let endpoint: PostgresSettings.Endpoint
        if let socket = query["host"], socket.hasPrefix("/") {
            endpoint = .socket(path: socket.hasSuffix(".s.PGSQL.\(port)") ? socket : socket + "/.s.PGSQL.\(port)")
        } else if let host = url.host, !host.isEmpty {
            endpoint = .tcp(host: host, port: port)
        } else {
            throw ParseError(why: "names no host; write postgres://USER:PASSWORD@HOST:PORT/DATABASE, or ?host=/socket/folder for a Unix socket")
        }
        let mode: PostgresSettings.SSLMode
        if let m = query["sslmode"] {
            guard let parsed = PostgresSettings.SSLMode(rawValue: m) else {
                throw ParseError(why: "sslmode must be one of disable, prefer, require, verify-full; got \"\(m)\"")
            }
            mode = parsed
        } else {
            mode = .prefer
        }
        var pool = 10
        if let p = query["pool_size"] {
            guard let n = Int(p), (1...1000).contains(n) else { throw ParseError(why: "pool_size must be from 1 to 1000; got \"\(p)\"") }
            pool = n
        }
        return .postgres(PostgresSettings(
            endpoint: endpoint, username: user, password: url.percentEncodedPassword?.removingPercentEncoding,
            database: database, sslMode: mode, poolSize: pool
        ))
    }

    /// The URL with its password replaced, for logs and error messages.
    public static func redact(_ text: String) -> String {
        guard let at = text.range(of: "@"), let scheme = text.range(of: "://"), scheme.upperBound < at.lowerBound else { return text }
        let credentials = text[scheme.upperBound..<at.lowerBound]
        guard let colon = credentials.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at.lowerBound...])
    }

    /// Where it points, without secrets: for the start-up log.
    public var summary: String {
        switch self {
        case .sqlite(let path): "SQLite file \(path)"
        case .postgres(let s):
            switch s.endpoint {
            case .tcp(let host, let port): "PostgreSQL \(s.username)@\(host):\(port)/\(s.database) (sslmode \(s.sslMode.rawValue), pool \(s.poolSize))"
            case .socket(let path): "PostgreSQL \(s.username)@\(path)/\(s.database) (pool \(s.poolSize))"
            }
        }
    }
}

extension DatabaseURL {
    public var isSQLite: Bool {
        if case .sqlite = self { return true }
        return false
    }
}
