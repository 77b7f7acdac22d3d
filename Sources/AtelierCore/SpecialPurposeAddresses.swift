import Foundation

/// The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and its updates; the registries as of
/// 2026-12), plus multicast and the ranges an outbound call must never reach. The most specific entry that
/// contains an address decides; where the registry answers "globally reachable: false" the address is refused.
/// IPv6 forms that carry an IPv4 address (mapped, compatible, translated, NAT64, 6to4, Teredo) are judged by the
/// IPv4 address inside them, because that is where a dual-stack kernel or a translator delivers the packets:
/// `::7f00:1` reaches a listener on 127.0.0.1.
public enum SpecialPurposeAddresses {
    public enum Reach: Sendable, Equatable {
        case global
        case notGlobal
        /// The IPv4 address at `offset` (4 bytes) decides.
        case embedsIPv4(offset: Int)
        /// Teredo (RFC 4380): the server's IPv4 at bytes 4–7 and the client's, inverted, at 12–15; both decide.
        case teredo
    }

    public struct Range: Sendable {
        public var bytes: [UInt8]
        public var length: Int
        public var name: String
        public var reach: Reach

        init(_ text: String, _ length: Int, _ name: String, _ reach: Reach) {
            bytes = IPAddress.parse(text)!.bytes
            self.length = length
            self.name = name
            self.reach = reach
        }

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var bits = length
            var i = 0
            while bits > 0 {
                let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
                if address[i] & mask != bytes[i] & mask { return false }
                bits -= 8
                i += 1
            }
            return true
        }
    }

    /// IPv4: everything not listed is global unicast.
    public static let ipv4: [Range] = [
        Range("0.0.0.0", 8, "this network", .notGlobal),
        Range("10.0.0.0", 8, "private use", .notGlobal),
        Range("100.64.0.0", 10, "shared address space (carrier-grade NAT)", .notGlobal),
        Range("127.0.0.0", 8, "loopback", .notGlobal),
        Range("169.254.0.0", 16, "link local (cloud metadata)", .notGlobal),
        Range("172.16.0.0", 12, "private use", .notGlobal),
        Range("192.0.0.0", 24, "IETF protocol assignments", .notGlobal),
        Range("192.0.0.9", 32, "port control protocol anycast", .global),
        Range("192.0.0.10", 32, "TURN anycast", .global),
        Range("192.0.2.0", 24, "documentation (TEST-NET-1)", .notGlobal),
        Range("192.31.196.0", 24, "AS112", .global),
        Range("192.52.193.0", 24, "AMT", .global),
        // Deprecated by RFC 7526; the registry still calls it global, but its relays lead anywhere.
        Range("192.88.99.0", 24, "6to4 relay anycast (deprecated)", .notGlobal),
        Range("192.168.0.0", 16, "private use", .notGlobal),
        Range("192.175.48.0", 24, "AS112 direct delegation", .global),
        Range("198.18.0.0", 15, "benchmarking", .notGlobal),
        Range("198.51.100.0", 24, "documentation (TEST-NET-2)", .notGlobal),
        Range("203.0.113.0", 24, "documentation (TEST-NET-3)", .notGlobal),
        Range("224.0.0.0", 4, "multicast", .notGlobal),
        Range("240.0.0.0", 4, "reserved", .notGlobal),
        Range("255.255.255.255", 32, "limited broadcast", .notGlobal),
    ]

    /// IPv6: outside 2000::/3 (the only space allocated for global unicast) nothing is reachable unless listed.
    public static let ipv6: [Range] = [
        Range("::", 0, "not allocated for global unicast", .notGlobal),
        Range("2000::", 3, "global unicast", .global),
        Range("::", 128, "unspecified", .notGlobal),
        Range("::1", 128, "loopback", .notGlobal),
        Range("::", 96, "IPv4-compatible (deprecated)", .embedsIPv4(offset: 12)),
        Range("::ffff:0:0", 96, "IPv4-mapped", .embedsIPv4(offset: 12)),
        Range("::ffff:0:0:0", 96, "IPv4-translated", .embedsIPv4(offset: 12)),
        Range("64:ff9b::", 96, "IPv4/IPv6 translation (NAT64)", .embedsIPv4(offset: 12)),
        Range("64:ff9b:1::", 48, "local-use IPv4/IPv6 translation", .notGlobal),
        Range("100::", 64, "discard-only", .notGlobal),
        Range("2001::", 23, "IETF protocol assignments", .notGlobal),
        Range("2001::", 32, "Teredo", .teredo),
        Range("2001:1::1", 128, "port control protocol anycast", .global),
        Range("2001:1::2", 128, "TURN anycast", .global),
        Range("2001:1::3", 128, "DNS-SD service registration anycast", .global),
        Range("2001:2::", 48, "benchmarking", .notGlobal),
        Range("2001:3::", 32, "AMT", .global),
        Range("2001:4:112::", 48, "AS112-v6", .global),
        Range("2001:10::", 28, "ORCHID (deprecated)", .notGlobal),
        // The registry calls ORCHIDv2 global, but its identifiers are not routable locators: nothing to call there.
        Range("2001:20::", 28, "ORCHIDv2", .notGlobal),
        Range("2001:30::", 28, "drone remote ID", .global),
        Range("2001:db8::", 32, "documentation", .notGlobal),
        Range("2002::", 16, "6to4", .embedsIPv4(offset: 2)),
        Range("2620:4f:8000::", 48, "AS112 direct delegation", .global),
        Range("3fff::", 20, "documentation", .notGlobal),
        Range("5f00::", 16, "segment routing (SRv6) SIDs", .notGlobal),
        Range("fc00::", 7, "unique local", .notGlobal),
        Range("fe80::", 10, "link local", .notGlobal),
        Range("fec0::", 10, "site local (deprecated)", .notGlobal),
        Range("ff00::", 8, "multicast", .notGlobal),
    ]

    /// Nil when the address is globally reachable; else the name of the range that refuses it (for an IPv6 form
    /// that embeds IPv4, the embedded address's range, named as such).
    public static func refusal(_ address: IPAddress) -> String? {
        let table = address.bytes.count == 4 ? ipv4 : ipv6
        guard let range = table.filter({ $0.contains(address.bytes) }).max(by: { $0.length < $1.length }) else {
            return nil
        }
        switch range.reach {
        case .global:
            return nil
        case .notGlobal:
            return range.name
        case .embedsIPv4(let offset):
            return embedded(Array(address.bytes[offset..<offset + 4]), in: range.name)
        case .teredo:
            let server = Array(address.bytes[4..<8])
            let client = address.bytes[12..<16].map { ~$0 }
            return embedded(server, in: "Teredo server") ?? embedded(client, in: "Teredo client")
        }
    }

    static func embedded(_ v4: [UInt8], in form: String) -> String? {
        let inner = IPAddress(bytes: v4)
        return refusal(inner).map { "\(form) form of \(inner.text), \($0)" }
    }
}

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address, parsed strictly from its literal (brackets allowed).
public struct IPAddress: Sendable, Equatable {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    public static func parse(_ text: String) -> IPAddress? {
        var literal = text
        if literal.hasPrefix("[") && literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
        // A zone index (fe80::1%eth0) names a local interface: the address part alone decides, and it is link-local.
        if let zone = literal.firstIndex(of: "%") { literal = String(literal[..<zone]) }
        var v4 = in_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 { return IPAddress(bytes: withUnsafeBytes(of: &v4) { Array($0) }) }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, literal, &v6) == 1 { return IPAddress(bytes: withUnsafeBytes(of: &v6) { Array($0) }) }
        return nil
    }

    public var text: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        var v6 = in6_addr()
        withUnsafeMutableBytes(of: &v6) { $0.copyBytes(from: bytes) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &v6, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(cString: buffer)
    }
}
