import Crypto
import Foundation

/// AWS credentials as the usual environment variables give them. `description` never shows the secret.
public struct AWSCredentials: Sendable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    /// Temporary credentials (STS) carry a token that is signed as `x-amz-security-token`.
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; nil when either of the first two is missing.
    public static func fromEnvironment(_ environment: [String: String]) -> AWSCredentials? {
        guard let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty,
              let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else { return nil }
        let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }

    public var description: String { "access key \(accessKeyID) (secret not shown)" }
}

/// AWS Signature Version 4 for S3: the `Authorization` header of a request, or a presigned URL. Pure: the date is
/// a parameter, so AWS's published examples are its tests.
///
/// S3 differs from the other services in two ways that matter here: the path is encoded once (not twice), and
/// every request signs `x-amz-content-sha256`, which may be `UNSIGNED-PAYLOAD` for a body not hashed up front.
public struct SigV4Signer: Sendable {
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    public static let emptyPayloadHash = SHA256.hash(data: Data()).hex

    public var credentials: AWSCredentials
    public var region: String
    public var service: String

    public init(credentials: AWSCredentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// A request to sign: the path as sent (already percent-encoded), its query items unencoded.
    public struct Request: Sendable {
        public var method: String
        public var host: String
        public var encodedPath: String
        public var query: [(String, String)]
        public var headers: [(String, String)]

        public init(method: String, host: String, encodedPath: String, query: [(String, String)] = [], headers: [(String, String)] = []) {
            self.method = method
            self.host = host
            self.encodedPath = encodedPath
            self.query = query
            self.headers = headers
        }
    }

    /// The headers to add to `request`: `x-amz-date`, `x-amz-content-sha256`, the session token if any, and
    /// `Authorization`. `host` is signed but not returned (the HTTP client sends it).
    public func sign(_ request: Request, payloadHash: String, date: Date) -> [(String, String)] {
        let stamp = Self.timestamp(date)
        var added = [("x-amz-date", stamp), ("x-amz-content-sha256", payloadHash)]
        if let token = credentials.sessionToken { added.append(("x-amz-security-token", token)) }
        var signedRequest = request
        signedRequest.headers += added
        let (signedHeaders, signature) = signature(of: signedRequest, payloadHash: payloadHash, stamp: stamp)
        added.append(("Authorization", "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope(stamp)), SignedHeaders=\(signedHeaders), Signature=\(signature)"))
        return added
    }

    /// The query string (without `?`) that makes `request` a URL anyone may use until `expires` seconds after
    /// `date`. Only `host` is signed and the payload is `UNSIGNED-PAYLOAD`, as S3 requires of presigned URLs.
    public func presignedQuery(_ request: Request, expires: Int, date: Date) -> String {
        let stamp = Self.timestamp(date)
        var query = request.query + [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope(stamp))"),
            ("X-Amz-Date", stamp),
            ("X-Amz-Expires", String(expires)),
            ("X-Amz-SignedHeaders", "host"),
        ]
        if let token = credentials.sessionToken { query.append(("X-Amz-Security-Token", token)) }
        var signedRequest = request
        signedRequest.query = query
        signedRequest.headers = []
        let (_, signature) = signature(of: signedRequest, payloadHash: Self.unsignedPayload, stamp: stamp)
        return "\(Self.canonicalQuery(query))&X-Amz-Signature=\(signature)"
    }

    // MARK: - The steps AWS documents, exposed for the tests

    /// Signed header names (`a;b;c`) and the hex signature.
    func signature(of request: Request, payloadHash: String, stamp: String) -> (String, String) {
        let (canonical, signedHeaders) = Self.canonicalRequest(request, payloadHash: payloadHash)
        let toSign = stringToSign(canonical: canonical, stamp: stamp)
        return (signedHeaders, HMAC<SHA256>.authenticationCode(for: Data(toSign.utf8), using: signingKey(day: String(stamp.prefix(8)))).hex)
    }

    func stringToSign(canonical: String, stamp: String) -> String {
        "AWS4-HMAC-SHA256\n\(stamp)\n\(scope(stamp))\n\(SHA256.hash(data: Data(canonical.utf8)).hex)"
    }

    static func canonicalRequest(_ request: Request, payloadHash: String) -> (String, String) {
        var headers: [String: String] = ["host": request.host]
        for (name, value) in request.headers {
            let key = name.lowercased()
            // Values are trimmed and inner runs of spaces folded, as the specification says.
            let folded = value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            headers[key] = headers[key].map { "\($0),\(folded)" } ?? folded
        }
        let names = headers.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(headers[$0]!)\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let path = request.encodedPath.isEmpty ? "/" : request.encodedPath
        let canonical = [request.method, path, canonicalQuery(request.query), canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        return (canonical, signedHeaders)
    }

    /// Query items encoded with AWS's rules and sorted by encoded name, then value.
    static func canonicalQuery(_ items: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = items.map { (uriEncode($0.0), uriEncode($0.1)) }
        let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        return sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    private func scope(_ stamp: String) -> String {
        "\(stamp.prefix(8))/\(region)/\(service)/aws4_request"
    }

    private func signingKey(day: String) -> SymmetricKey {
        var key = SymmetricKey(data: Data("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        return key
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: date)
    }

    /// RFC 3986 unreserved characters stay; every other byte is `%XX` (uppercase). `/` is kept only in paths.
    public static func uriEncode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            if unreserved.contains(byte) || (keepSlash && byte == slash) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    private static let slash = UInt8(ascii: "/")
    private static let unreserved: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~".utf8))
}

extension Sequence where Element == UInt8 {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}

extension SHA256.Digest {
    var hex: String { Array(self).hex }
}

extension HashedAuthenticationCode {
    var hex: String { Array(self).hex }
}
