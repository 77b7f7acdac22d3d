@testable import AtelierS3
import Foundation
import Testing

/// AWS's published examples: "Signature Calculations for the Authorization Header" and "Authenticating Requests:
/// Using Query Parameters" in the S3 API reference (bucket examplebucket, 24 May 2013), and the generic
/// `get-vanilla` cases of the SigV4 test suite (service "service", 30 Aug 2015).
@Suite struct SigV4SignerTests {
    /// Only for building clients whose addressing is checked; nothing is sent.
    static let http = S3Client.makeHTTPClient()

    static let docs = SigV4Signer(
        credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1")
    static let docsDate = Date(timeIntervalSince1970: 1_369_353_600)  // 20130524T000000Z
    static let host = "examplebucket.s3.amazonaws.com"

    static func signature(_ signer: SigV4Signer, _ request: SigV4Signer.Request, payloadHash: String, date: Date) -> String {
        let auth = signer.sign(request, payloadHash: payloadHash, date: date).first { $0.0 == "Authorization" }!.1
        return String(auth.split(separator: "=").last!)
    }

    @Test func getObjectWithARange() {
        let request = SigV4Signer.Request(method: "GET", host: Self.host, encodedPath: "/test.txt", headers: [("Range", "bytes=0-9")])
        let headers = Self.docs.sign(request, payloadHash: SigV4Signer.emptyPayloadHash, date: Self.docsDate)
        let auth = headers.first { $0.0 == "Authorization" }!.1
        #expect(auth == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(headers.contains { $0 == ("x-amz-date", "20130524T000000Z") })
    }

    @Test func putObjectWithAnEncodedKeyAndAHashedPayload() {
        let key = "test$file.text"
        #expect(SigV4Signer.uriEncode(key, keepSlash: true) == "test%24file.text")
        let request = SigV4Signer.Request(method: "PUT", host: Self.host, encodedPath: "/test%24file.text", headers: [
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ])
        let payload = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"  // SHA-256("Welcome to Amazon S3.")
        #expect(Self.signature(Self.docs, request, payloadHash: payload, date: Self.docsDate) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test func getWithAnEmptyQueryValue() {
        let request = SigV4Signer.Request(method: "GET", host: Self.host, encodedPath: "/", query: [("lifecycle", "")])
        #expect(Self.signature(Self.docs, request, payloadHash: SigV4Signer.emptyPayloadHash, date: Self.docsDate) == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test func queryItemsAreSortedAfterEncoding() {
        let request = SigV4Signer.Request(method: "GET", host: Self.host, encodedPath: "/", query: [("prefix", "J"), ("max-keys", "2")])
        #expect(Self.signature(Self.docs, request, payloadHash: SigV4Signer.emptyPayloadHash, date: Self.docsDate) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func presignedURL() {
        let request = SigV4Signer.Request(method: "GET", host: Self.host, encodedPath: "/test.txt")
        let query = Self.docs.presignedQuery(request, expires: 86_400, date: Self.docsDate)
        #expect(query.hasPrefix("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature="))
        #expect(query.hasSuffix("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"))
    }

    // The generic suite signs for a made-up service; its paths need no normalisation, so S3's single encoding agrees.
    static let suite = SigV4Signer(
        credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "service")
    static let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)  // 20150830T123600Z

    /// The suite signs `x-amz-date` and `host` only; S3 always adds `x-amz-content-sha256`, so these go through
    /// the documented steps directly.
    @Test(arguments: [
        ([(String, String)](), "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ([("Param2", "value2"), ("Param1", "value1")], "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ])
    func getVanilla(query: [(String, String)], expected: String) {
        let request = SigV4Signer.Request(method: "GET", host: "example.amazonaws.com", encodedPath: "/", query: query,
                                          headers: [("X-Amz-Date", "20150830T123600Z")])
        #expect(Self.suite.signature(of: request, payloadHash: SigV4Signer.emptyPayloadHash, stamp: "20150830T123600Z").1 == expected)
    }

    @Test func theSessionTokenIsSignedAndTheSecretNeverShown() {
        var signer = Self.docs
        signer.credentials.sessionToken = "token-value"
        let headers = signer.sign(.init(method: "GET", host: Self.host, encodedPath: "/a"), payloadHash: SigV4Signer.unsignedPayload, date: Self.docsDate)
        #expect(headers.contains { $0 == ("x-amz-security-token", "token-value") })
        #expect(headers.first { $0.0 == "Authorization" }!.1.contains("x-amz-security-token"))
        #expect(!signer.credentials.description.contains(signer.credentials.secretAccessKey))
        #expect(!headers.contains { $0.1.contains(signer.credentials.secretAccessKey) })
    }

    @Test func environmentCredentials() {
        #expect(AWSCredentials.fromEnvironment([:]) == nil)
        #expect(AWSCredentials.fromEnvironment(["AWS_ACCESS_KEY_ID": "a"]) == nil)
        let c = AWSCredentials.fromEnvironment(["AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_SESSION_TOKEN": ""])
        #expect(c?.accessKeyID == "a" && c?.secretAccessKey == "b" && c?.sessionToken == nil)
    }

    @Test func pathAndVirtualHostAddressing() {
        let credentials = AWSCredentials(accessKeyID: "a", secretAccessKey: "b")
        let path = S3Client(location: S3Location(endpoint: URL(string: "http://127.0.0.1:9000")!, bucket: "bk", region: "us-east-1", addressing: .path), credentials: credentials, http: Self.http)
        #expect(path.target(method: "GET", key: "p/outputs/a b.png", headers: []).0 == "http://127.0.0.1:9000/bk/p/outputs/a%20b.png")
        let virtual = S3Client(location: S3Location(endpoint: URL(string: "https://s3.eu-west-1.amazonaws.com")!, bucket: "bk", region: "eu-west-1", addressing: .virtualHost), credentials: credentials, http: Self.http)
        let (url, request) = virtual.target(method: "GET", key: "x.png", headers: [])
        #expect(url == "https://bk.s3.eu-west-1.amazonaws.com/x.png" && request.host == "bk.s3.eu-west-1.amazonaws.com")
    }
}
