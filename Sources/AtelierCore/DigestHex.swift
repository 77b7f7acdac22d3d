import Crypto

extension Digest {
    /// Lowercase hex, the form every content hash and key hash is stored and shown in.
    public var hex: String { map { String(format: "%02x", $0) }.joined() }
}
