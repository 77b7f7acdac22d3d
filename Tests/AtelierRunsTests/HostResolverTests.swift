import AtelierCore
@testable import AtelierRuns
import Testing

@Suite struct HostResolverTests {
    @Test func namesResolvingInsideAreRefusedUnlessAllowed() async {
        guard case .failure(let refusal) = await HostResolver.checked(host: "localhost", policy: OutboundAddressPolicy()) else {
            Issue.record("localhost must be refused")
            return
        }
        #expect(refusal.reason.contains("--outbound-allow localhost"))
        #expect(await HostResolver.checked(host: "localhost", policy: OutboundAddressPolicy(allowedHosts: ["LocalHost"])) == .success(nil))
        // Every spelling the resolver accepts is judged as the address it means.
        for spelled in ["127.0.0.1", "2130706433", "0x7f.1", "0177.0.0.1", "::7f00:1", "[::ffff:127.0.0.1]", "0"] {
            guard case .failure = await HostResolver.checked(host: spelled, policy: OutboundAddressPolicy()) else {
                Issue.record("\(spelled) must be refused")
                continue
            }
        }
    }
}
