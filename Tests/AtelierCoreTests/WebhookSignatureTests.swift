import AtelierCore
import Foundation
import Testing

@Suite struct WebhookSignatureTests {
    /// The Standard Webhooks reference vector (the `standardwebhooks` Python package signs it the same way).
    @Test func matchesTheReferenceVector() {
        let signature = WebhookSignature.sign(
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: 1_614_265_330, body: Data(#"{"test": 2432232314}"#.utf8)
        )
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func anyChangeChangesTheSignature() {
        let secret = WebhookSignature.newSecret()
        let base = WebhookSignature.sign(secret: secret, id: "msg_1", timestamp: 100, body: Data("{}".utf8))
        #expect(base != nil)
        #expect(WebhookSignature.sign(secret: secret, id: "msg_2", timestamp: 100, body: Data("{}".utf8)) != base)
        #expect(WebhookSignature.sign(secret: secret, id: "msg_1", timestamp: 101, body: Data("{}".utf8)) != base)
        #expect(WebhookSignature.sign(secret: secret, id: "msg_1", timestamp: 100, body: Data("{ }".utf8)) != base)
        #expect(WebhookSignature.sign(secret: WebhookSignature.newSecret(), id: "msg_1", timestamp: 100, body: Data("{}".utf8)) != base)
    }

    @Test func secretsAreFreshAndWellFormed() {
        let a = WebhookSignature.newSecret(), b = WebhookSignature.newSecret()
        #expect(a != b && a.hasPrefix("whsec_") && Data(base64Encoded: String(a.dropFirst(6)))?.count == 24)
        #expect(WebhookSignature.sign(secret: "not-a-secret", id: "m", timestamp: 1, body: Data()) == nil)
    }
}
