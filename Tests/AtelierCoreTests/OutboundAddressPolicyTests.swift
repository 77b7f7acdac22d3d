import AtelierCore
import Testing

/// The IANA IPv4 and IPv6 special-purpose registries, written out here independently of the policy's own table:
/// every entry with its first and last address, and what the policy must say about each.
@Suite struct OutboundAddressPolicyTests {
    /// (first address, last address, globally reachable).
    static let registry: [(String, String, Bool)] = [
        ("0.0.0.0", "0.255.255.255", false), ("10.0.0.0", "10.255.255.255", false),
        ("100.64.0.0", "100.127.255.255", false), ("127.0.0.0", "127.255.255.255", false),
        ("169.254.0.0", "169.254.255.255", false), ("172.16.0.0", "172.31.255.255", false),
        ("192.0.0.0", "192.0.0.8", false), ("192.0.0.11", "192.0.0.255", false), ("192.0.0.170", "192.0.0.171", false),
        ("192.0.0.9", "192.0.0.9", true), ("192.0.0.10", "192.0.0.10", true),
        ("192.0.2.0", "192.0.2.255", false), ("192.31.196.0", "192.31.196.255", true), ("192.52.193.0", "192.52.193.255", true),
        ("192.88.99.0", "192.88.99.255", false), ("192.168.0.0", "192.168.255.255", false),
        ("192.175.48.0", "192.175.48.255", true), ("198.18.0.0", "198.19.255.255", false),
        ("198.51.100.0", "198.51.100.255", false), ("203.0.113.0", "203.0.113.255", false),
        ("224.0.0.0", "239.255.255.255", false), ("240.0.0.0", "255.255.255.254", false), ("255.255.255.255", "255.255.255.255", false),
        // Neighbours of the ranges are public.
        ("1.0.0.0", "9.255.255.255", true), ("11.0.0.0", "100.63.255.255", true), ("100.128.0.0", "126.255.255.255", true),
        ("172.15.255.255", "172.15.255.255", true), ("172.32.0.0", "172.32.0.0", true), ("192.0.1.0", "192.0.1.255", true),
        ("198.17.255.255", "198.17.255.255", true), ("198.20.0.0", "198.20.0.0", true), ("223.255.255.255", "223.255.255.255", true),
        ("::", "::", false), ("::1", "::1", false), ("100::", "100::ffff:ffff:ffff:ffff", false),
        ("64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", false),
        ("2001::", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", false), ("2001:1::1", "2001:1::3", true),
        ("2001:2::", "2001:2:0:ffff:ffff:ffff:ffff:ffff", false), ("2001:3::", "2001:3:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("2001:4:112::", "2001:4:112:ffff:ffff:ffff:ffff:ffff", true), ("2001:10::", "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("2001:20::", "2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", false), ("2001:30::", "2001:3f:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", false), ("2620:4f:8000::", "2620:4f:8000:ffff:ffff:ffff:ffff:ffff", true),
        ("3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", false), ("5f00::", "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false), ("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false), ("ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
        ("4000::", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),  // not allocated for unicast
        ("2606:4700::1111", "2a00:1450:4001::200e", true), ("2001:200::", "2001:200::1", true),
    ]

    @Test(arguments: registry)
    func everyRegistryEntryIsJudgedAtBothEnds(first: String, last: String, global: Bool) {
        #expect(OutboundAddressPolicy.isPublic(first) == global, "\(first)")
        #expect(OutboundAddressPolicy.isPublic(last) == global, "\(last)")
    }

    /// IPv6 forms that carry an IPv4 address are judged by it: (inner-public form, inner-private forms).
    static let embedded: [(String, Bool)] = [
        ("::ffff:127.0.0.1", false), ("::ffff:10.0.0.1", false), ("::ffff:169.254.169.254", false), ("::ffff:8.8.8.8", true),
        ("::7f00:1", false), ("::127.0.0.1", false), ("::a00:1", false), ("::8.8.8.8", true), ("::0.0.0.2", false),
        ("::ffff:0:127.0.0.1", false), ("::ffff:0:192.168.0.1", false), ("::ffff:0:8.8.8.8", true),
        ("64:ff9b::7f00:1", false), ("64:ff9b::10.1.1.1", false), ("64:ff9b::8.8.8.8", true), ("64:ff9b:1::8.8.8.8", false),
        ("2002:7f00:1::", false), ("2002:c0a8:101::1", false), ("2002:a9fe:a9fe::", false), ("2002:808:808::1", true),
        // Teredo: server 65.54.227.120 (public) and the client inverted in the last 32 bits.
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", false),    // client 192.0.2.45 (documentation)
        ("2001:0:7f00:1:8000:63bf:3fff:fdd2", false),      // server 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", false),   // client 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", true),    // client 8.8.8.8
    ]

    @Test(arguments: embedded)
    func embeddedIPv4DecidesTheForm(address: String, global: Bool) {
        #expect(OutboundAddressPolicy.isPublic(address) == global, "\(address): \(OutboundAddressPolicy.refusal(of: address) ?? "public")")
    }

    @Test(arguments: ["not-an-ip", "", "1.2.3", "::g", "[::1]", "fe80::1%eth0", "[::ffff:7f00:1]"])
    func unparsableAndBracketedLiterals(address: String) {
        #expect(!OutboundAddressPolicy.isPublic(address))
    }

    @Test func aRefusalNamesTheRangeAndTheAllowFlag() {
        guard case .failure(let refusal) = OutboundAddressPolicy().judge(host: "hooks.example", resolved: ["93.184.216.34", "::7f00:1"]) else {
            Issue.record("one inner address among public ones must refuse the host")
            return
        }
        #expect(refusal.reason.contains("resolves to ::7f00:1") && refusal.reason.contains("127.0.0.1, loopback"))
        #expect(refusal.reason.contains("--outbound-allow hooks.example"))
        #expect(OutboundAddressPolicy().judge(host: "x", resolved: []) == .failure(.init(reason: "the host x does not resolve")))
        #expect(OutboundAddressPolicy().judge(host: "x", resolved: ["8.8.8.8", "2606:4700::1111"]) == .success(["8.8.8.8", "2606:4700::1111"]))
        #expect(OutboundAddressPolicy(allowedHosts: ["LocalHost", "[::1]"]).allowsHost("localhost"))
        #expect(OutboundAddressPolicy(allowedHosts: ["[::1]"]).allowsHost("::1"))
    }
}

@Suite struct WebhookSubscriptionTests {
    @Test func aURLAndAFilterParse() throws {
        let hook = try #require(try WebhookSubscription.parse(url: .string("https://example.com/h"), filter: .string("completed, start"), baseURL: "http://b"))
        #expect(hook.url == "https://example.com/h" && hook.events == [.completed, .start] && hook.baseURL == "http://b")
        #expect(try WebhookSubscription.parse(url: .string("https://example.com/h"), filter: nil, baseURL: "")?.events == [.start, .completed])
        #expect(try WebhookSubscription.parse(url: nil, filter: nil, baseURL: "") == nil)
        #expect(try WebhookSubscription.parse(url: .string(""), filter: .null, baseURL: "") == nil)
    }

    @Test(arguments: [
        ("ftp://example.com/h", "", "invalid_url"), ("not a url", "", "invalid_url"), ("https://u:p@example.com/h", "", "invalid_url"),
        ("https://example.com/h", "finish", "invalid_choice"), ("https://example.com/h", " , ", "invalid_choice"),
        ("", "completed", "requires_webhook"),
    ])
    func badValuesNameTheParameter(url: String, filter: String, code: String) {
        #expect(throws: (any Error).self) {
            try WebhookSubscription.parse(url: .string(url), filter: filter.isEmpty ? nil : .string(filter), baseURL: "")
        }
        do {
            _ = try WebhookSubscription.parse(url: .string(url), filter: filter.isEmpty ? nil : .string(filter), baseURL: "")
        } catch {
            guard case .invalidParameters(let problems) = error else { Issue.record("\(error)"); return }
            #expect(problems.map(\.code) == [code])
        }
    }
}
