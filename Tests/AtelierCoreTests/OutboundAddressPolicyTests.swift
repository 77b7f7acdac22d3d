import AtelierCore
import Testing

@Suite struct OutboundAddressPolicyTests {
    @Test(arguments: ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
                      "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00::1",
                      "::ffff:127.0.0.1", "::ffff:10.0.0.1", "[::1]", "2001:db8::1", "not-an-ip"])
    func internalAddressesAreNotPublic(address: String) {
        #expect(!OutboundAddressPolicy.isPublic(address))
    }

    @Test(arguments: ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"])
    func publicAddressesArePublic(address: String) {
        #expect(OutboundAddressPolicy.isPublic(address))
    }

    @Test func namesResolvingInsideAreRefusedUnlessAllowed() {
        guard case .refused(let why) = OutboundAddressPolicy().check(host: "localhost") else {
            Issue.record("localhost must be refused")
            return
        }
        #expect(why.contains("--outbound-allow localhost"))
        #expect(OutboundAddressPolicy(allowedHosts: ["LocalHost"]).check(host: "localhost") == .allowed)
        #expect(OutboundAddressPolicy().check(host: "127.0.0.1") != .allowed)
        #expect(OutboundAddressPolicy(allowedHosts: ["127.0.0.1"]).check(host: "127.0.0.1") == .allowed)
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
