import Crypto
import Foundation

/// Webhook signing per the Standard Webhooks spec (standardwebhooks.com): each delivery carries `webhook-id`,
/// `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256>` over
/// `"{id}.{timestamp}.{body}"`, keyed with the bytes of the account's secret (`whsec_<base64>`). Receivers verify
/// with any Standard Webhooks library and reject stale timestamps, which stops replays.
public enum WebhookSignature {
    public static let secretPrefix = "whsec_"

    /// A new secret: 24 random bytes, base64, with the `whsec_` prefix the libraries expect.
    public static func newSecret() -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
        return secretPrefix + Data(bytes).base64EncodedString()
    }

    /// The `webhook-signature` value; nil for a secret that is not `whsec_` + base64.
    public static func sign(secret: String, id: String, timestamp: Int64, body: Data) -> String? {
        guard secret.hasPrefix(secretPrefix), let key = Data(base64Encoded: String(secret.dropFirst(secretPrefix.count))) else {
            return nil
        }
        var message = Data("\(id).\(timestamp).".utf8)
        message.append(body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))
        return "v1," + Data(mac).base64EncodedString()
    }
}
