import Crypto
import Foundation

/// API keys: `atl_` + 12 characters of prefix + 32 of secret, all base62. Only the SHA-256 of the whole key is
/// stored; the prefix (`atl_` + 12) is stored in clear so people can tell keys apart in lists and revoke them.
/// 44 random base62 characters carry about 262 bits, so a fast unsalted hash is enough: nobody can enumerate keys.
public struct APIKey: Sendable, Equatable {
    public static let marker = "atl_"
    static let prefixLength = 12
    static let secretLength = 32
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    public let plaintext: String

    public init(plaintext: String) {
        self.plaintext = plaintext
    }

    public static func generate<R: RandomNumberGenerator>(using rng: inout R) -> APIKey {
        var s = marker
        for _ in 0..<(prefixLength + secretLength) {
            s.append(alphabet[Int.random(in: 0..<alphabet.count, using: &rng)])
        }
        return APIKey(plaintext: s)
    }

    public static func generate() -> APIKey {
        var rng = SystemRandomNumberGenerator()
        return generate(using: &rng)
    }

    /// The public part, shown in lists and used to revoke: `atl_` + 12 characters.
    public var prefix: String { String(plaintext.prefix(Self.marker.count + Self.prefixLength)) }

    /// Whether the text has the shape of a key (checked before any lookup, so junk costs nothing).
    public var isWellFormed: Bool {
        plaintext.hasPrefix(Self.marker)
            && plaintext.count == Self.marker.count + Self.prefixLength + Self.secretLength
            && plaintext.dropFirst(Self.marker.count).allSatisfy { Self.alphabet.contains($0) }
    }

    public var hash: String { Self.hash(plaintext) }

    public static func hash(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).hex
    }
}

/// What a key lookup finds. The hash never leaves the store.
public struct KeyRecord: Sendable, Equatable {
    public var prefix: String
    public var accountID: Int64
    public var accountName: String
    public var createdAt: Date
    public var revokedAt: Date?
    public init(prefix: String, accountID: Int64, accountName: String, createdAt: Date, revokedAt: Date?) {
        self.prefix = prefix
        self.accountID = accountID
        self.accountName = accountName
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}
