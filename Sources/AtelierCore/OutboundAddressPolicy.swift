import Foundation

/// Which addresses the server may call on a client's behalf: webhooks, input-image URLs and any URL a later
/// feature accepts all pass this one policy. A URL a client gives us must not reach the server's own network:
/// every address of the IANA special-purpose registries that is not globally reachable is refused
/// (`SpecialPurposeAddresses`), unless the operator's allow-list names the host (`--outbound-allow`, e.g. a
/// receiver on the same machine in tests). Resolving names is I/O and lives with the caller (`HostResolver` in
/// the HTTP layer); this type only judges addresses.
public struct OutboundAddressPolicy: Sendable, Equatable {
    /// Host names or IP literals, lower-cased; a match skips the address check.
    public var allowedHosts: Set<String>

    public init(allowedHosts: Set<String> = []) {
        self.allowedHosts = Set(allowedHosts.map { Self.bare($0) })
    }

    static func bare(_ host: String) -> String {
        host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    }

    public func allowsHost(_ host: String) -> Bool {
        allowedHosts.contains(Self.bare(host))
    }

    /// True for a globally reachable address literal; false for an unparsable one.
    public static func isPublic(_ address: String) -> Bool {
        guard let ip = IPAddress.parse(address) else { return false }
        return SpecialPurposeAddresses.refusal(ip) == nil
    }

    /// Why this address literal may not be called (nil: it may).
    public static func refusal(of address: String) -> String? {
        guard let ip = IPAddress.parse(address) else { return "not an IP address" }
        return SpecialPurposeAddresses.refusal(ip)
    }

    public enum Verdict: Sendable, Equatable {
        case allowed
        case refused(String)
    }

    public struct Refusal: Error, Sendable, Equatable {
        public var reason: String
        public init(reason: String) { self.reason = reason }
    }

    /// Judges every address a host resolved to: all must be public, so a name that resolves to both a public
    /// and a private address cannot slip through. On success the caller connects to these addresses (never to
    /// the name again: it could resolve differently a moment later).
    public func judge(host: String, resolved addresses: [String]) -> Result<[String], Refusal> {
        guard !addresses.isEmpty else { return .failure(Refusal(reason: "the host \(host) does not resolve")) }
        for address in addresses {
            guard let why = Self.refusal(of: address) else { continue }
            let spelled = Self.bare(address) == Self.bare(host) ? "" : " resolves to \(address), which"
            return .failure(Refusal(
                reason: "the host \(host)\(spelled) is not a public address (\(why)); an operator can allow it with --outbound-allow \(Self.bare(host))"
            ))
        }
        return .success(addresses)
    }
}
