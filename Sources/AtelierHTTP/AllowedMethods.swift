import HTTPTypes
import Hummingbird
import Synchronization

/// The methods each route path declares, read from the router once every route is added, so that a request
/// to a known path with a method it does not take is answered 405 with an `Allow` header (RFC 9110 §15.5.6)
/// rather than the router's 404, which would say the resource does not exist.
public final class AllowedMethods: Sendable {
    private let table = Mutex<[(segments: [Substring], methods: [String])]>([])

    public init() {}

    func load(_ routes: [Router<AtelierRequestContext>.RouteDescription]) {
        var byPath: [String: [String]] = [:]
        for route in routes { byPath["\(route.path)", default: []].append(route.method.rawValue) }
        let rows = byPath.map { (segments: Self.segments($0.key), methods: $0.value.sorted()) }
        table.withLock { $0 = rows }
    }

    static func segments(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }

    /// The methods the path takes (nil when no route has this path).
    func methods(for path: String) -> [String]? {
        let asked = Self.segments(path)
        let rows = table.withLock { $0 }
        let matching = rows.filter { row in
            row.segments.count == asked.count
                && zip(row.segments, asked).allSatisfy { pattern, segment in
                    (pattern.hasPrefix("{") && pattern.hasSuffix("}")) || pattern == segment
                }
        }
        guard !matching.isEmpty else { return nil }
        return Array(Set(matching.flatMap(\.methods))).sorted()
    }
}
