import Foundation

/// Which hosts the server may call on a client's behalf (webhooks; image URLs in a later issue). A URL a client
/// gives us must not reach the server's own network: loopback, private, shared, link-local (cloud metadata at
/// 169.254.169.254), multicast and reserved addresses are refused unless the operator's allow-list names the
/// host (`--outbound-allow`, e.g. a receiver on the same machine in tests).
public struct OutboundAddressPolicy: Sendable, Equatable {
    /// Host names or IP literals, lower-cased; a match skips the address check.
    public var allowedHosts: Set<String>

    public init(allowedHosts: Set<String> = []) {
        self.allowedHosts = Set(allowedHosts.map { $0.lowercased() })
    }

    public func allowsHost(_ host: String) -> Bool {
        allowedHosts.contains(host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]")))
    }

    /// True for an address on the public internet; false for an unparsable one.
    public static func isPublic(_ address: String) -> Bool {
        let text = address.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if let v4 = ipv4(text) { return isPublicV4(v4) }
        if let v6 = ipv6(text) { return isPublicV6(v6) }
        return false
    }

    static func ipv4(_ text: String) -> [UInt8]? {
        var a = in_addr()
        guard inet_pton(AF_INET, text, &a) == 1 else { return nil }
        return withUnsafeBytes(of: &a) { Array($0) }
    }

    static func ipv6(_ text: String) -> [UInt8]? {
        var a = in6_addr()
        guard inet_pton(AF_INET6, text, &a) == 1 else { return nil }
        return withUnsafeBytes(of: &a) { Array($0) }
    }

    static func isPublicV4(_ b: [UInt8]) -> Bool {
        switch (b[0], b[1]) {
        case (0, _), (10, _), (127, _): false                      // this network, private, loopback
        case (100, 64...127): false                                 // carrier-grade NAT
        case (169, 254): false                                      // link-local, cloud metadata
        case (172, 16...31), (192, 168): false                      // private
        case (192, 0) where b[2] == 0 || b[2] == 2: false           // IETF protocol assignments, TEST-NET-1
        case (198, 18...19): false                                  // benchmarking
        case (198, 51) where b[2] == 100, (203, 0) where b[2] == 113: false  // TEST-NET-2, -3
        case (224...255, _): false                                  // multicast, reserved, broadcast
        default: true
        }
    }

    static func isPublicV6(_ b: [UInt8]) -> Bool {
        if b[0..<15].allSatisfy({ $0 == 0 }) { return false }                       // :: and ::1
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {    // IPv4-mapped
            return isPublicV4(Array(b[12..<16]))
        }
        if b[0] & 0xFE == 0xFC { return false }                                     // unique local fc00::/7
        if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return false }                     // link-local fe80::/10
        if b[0] == 0xFF { return false }                                            // multicast
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0D && b[3] == 0xB8 { return false }  // documentation
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B { return isPublicV4(Array(b[12..<16])) }  // NAT64
        return true
    }

    public enum Verdict: Sendable, Equatable {
        case allowed
        case refused(String)
    }

    /// Resolves the host (blocking getaddrinfo; call off the event loop) and refuses it if any of its addresses
    /// is not public, so a name that resolves to both a public and a private address cannot slip through.
    public func check(host: String) -> Verdict {
        if allowsHost(host) { return .allowed }
        switch checkedAddresses(host: host) {
        case .success: return .allowed
        case .failure(let refusal): return .refused(refusal.reason)
        }
    }

    public struct Refusal: Error, Sendable, Equatable {
        public var reason: String
    }

    /// The host's addresses, all public, for the caller to connect to (not the name: it could resolve
    /// differently a moment later); or why not. The resolver reads every IPv4 spelling (2130706433, 0x7f.1,
    /// 0177.0.0.1), so what is checked is what a connection would reach.
    public func checkedAddresses(host: String) -> Result<[String], Refusal> {
        let addresses = Self.resolve(host)
        guard !addresses.isEmpty else { return .failure(Refusal(reason: "the host \(host) does not resolve")) }
        if let inner = addresses.first(where: { !Self.isPublic($0) }) {
            let spelled = inner == host ? "" : " resolves to \(inner), which"
            return .failure(Refusal(reason: "the host \(host)\(spelled) is not a public address; an operator can allow it with --outbound-allow \(host)"))
        }
        return .success(addresses)
    }

    static func resolve(_ host: String) -> [String] {
        let name = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var out: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                out.append(String(cString: buffer))
            }
            cursor = info.pointee.ai_next
        }
        return out
    }
}
