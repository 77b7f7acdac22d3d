import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// Where a bucket is and how to address it.
public struct S3Location: Sendable, Equatable {
    public enum Addressing: String, Sendable, CaseIterable {
        /// `https://endpoint/bucket/key`: every S3-compatible server (MinIO, SeaweedFS, rclone, Ceph).
        case path
        /// `https://bucket.endpoint/key`: AWS's default.
        case virtualHost = "virtual-host"
    }
    public var endpoint: URL
    public var bucket: String
    public var region: String
    public var addressing: Addressing

    public init(endpoint: URL, bucket: String, region: String, addressing: Addressing) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.addressing = addressing
    }
}

/// Why an S3 call did not succeed.
public enum S3Error: Error, CustomStringConvertible, Sendable {
    /// No answer, a timeout, or 5xx after the retries: the bucket may be back soon.
    case unavailable(String)
    /// The server refused the request (4xx other than 404): wrong credentials, no such bucket, a policy.
    case refused(status: Int, code: String, message: String)

    public var description: String {
        switch self {
        case .unavailable(let why): "the S3 server cannot be reached: \(why)"
        case .refused(let status, let code, let message): "the S3 server refused the request: HTTP \(status) \(code): \(message)"
        }
    }
}

/// An object's bytes as the server streams them.
public struct S3Object: Sendable {
    public var status: Int
    /// Bytes in this answer (of the range when one was asked for).
    public var contentLength: Int?
    /// `bytes a-b/total` for a range answer.
    public var contentRange: String?
    public var body: HTTPClientResponse.Body
}

/// How long an S3 call may take, and how often it is tried.
public struct S3Deadlines: Sendable, Equatable {
    /// To open a connection. A refused connection is retried by the HTTP client until this, so one attempt
    /// against a server that is down takes about this long.
    public var connect: Duration = .seconds(2)
    /// For an answer to a call without a body (HEAD, DELETE, a GET's headers), and the longest silence while a
    /// body streams.
    public var request: Duration = .seconds(5)
    /// The slowest upload accepted: a PUT may take `request` plus its size at this rate (bytes per second).
    public var minimumRate = 1_000_000
    /// Tries per call, for failures that come fast (a refused connection, a 5xx, a 429); a call that got no
    /// answer in time is not tried again at once (a bucket that did not answer seldom answers the next try, and
    /// the circuit breaker above needs to hear of it).
    public var attempts = 3
    /// The pause before the second try; it doubles, with jitter, before each later one.
    public var firstBackoff: Duration = .milliseconds(200)

    public init() {}

    /// One attempt's deadline for a body of `bytes`.
    func deadline(bytes: Int) -> TimeAmount {
        let seconds = Double(request.components.seconds) + Double(request.components.attoseconds) / 1e18
            + Double(bytes) / Double(max(1, minimumRate))
        return .nanoseconds(Int64(seconds * 1e9))
    }
}

/// Put, get (streamed, optionally a range), head and delete on one bucket, signed with SigV4, each attempt under a
/// deadline (`S3Deadlines`) and retried with backoff on fast failures. Every request's payload hash is sent: bodies
/// are images of a few MB, hashed in memory before the request (cheaper than an unsigned payload's extra TLS
/// requirement on AWS).
public struct S3Client: Sendable {
    public let location: S3Location
    let signer: SigV4Signer
    public var deadlines: S3Deadlines

    /// The connection pool, owned by whoever made it (`makeHTTPClient`), who shuts it down.
    let http: HTTPClient

    public init(location: S3Location, credentials: AWSCredentials, http: HTTPClient, deadlines: S3Deadlines = S3Deadlines()) {
        self.location = location
        self.http = http
        self.deadlines = deadlines
        signer = SigV4Signer(credentials: credentials, region: location.region)
    }

    /// A pool fit for S3: redirects are not followed; the connect timeout bounds an attempt against a server that
    /// is down, and the read timeout a body that stops streaming.
    public static func makeHTTPClient(_ deadlines: S3Deadlines = S3Deadlines()) -> HTTPClient {
        func amount(_ d: Duration) -> TimeAmount { .nanoseconds(Int64(d.components.seconds) * 1_000_000_000 + d.components.attoseconds / 1_000_000_000) }
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: .init(
            redirectConfiguration: .disallow, timeout: .init(connect: amount(deadlines.connect), read: amount(deadlines.request))
        ))
    }

    // MARK: Operations

    public func put(key: String, bytes: [UInt8], contentType: String) async throws {
        let hash = SHA256.hash(data: bytes).hex
        _ = try await send("PUT", key: key, headers: [("Content-Type", contentType)], body: bytes, payloadHash: hash)
    }

    /// The object, streaming; nil when there is no such key.
    public func get(key: String, range: ClosedRange<Int>? = nil) async throws -> S3Object? {
        var headers: [(String, String)] = []
        if let range { headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
        guard let response = try await send("GET", key: key, headers: headers, body: nil, payloadHash: SigV4Signer.emptyPayloadHash, allowNotFound: true, streaming: true)
        else { return nil }
        return S3Object(status: Int(response.status.code), contentLength: response.headers.first(name: "content-length").flatMap(Int.init),
                        contentRange: response.headers.first(name: "content-range"), body: response.body)
    }

    /// The object's size, or nil when there is no such key.
    public func head(key: String) async throws -> Int? {
        guard let response = try await send("HEAD", key: key, headers: [], body: nil, payloadHash: SigV4Signer.emptyPayloadHash, allowNotFound: true)
        else { return nil }
        return response.headers.first(name: "content-length").flatMap(Int.init) ?? 0
    }

    /// Deletes the key; deleting a key that is not there succeeds, as in S3.
    public func delete(key: String) async throws {
        _ = try await send("DELETE", key: key, headers: [], body: nil, payloadHash: SigV4Signer.emptyPayloadHash, allowNotFound: true)
    }

    /// A GET URL for the key that works without credentials for `expires` seconds.
    public func presignedGetURL(key: String, expires: Int, now: Date = Date()) -> String {
        let (base, request) = target(method: "GET", key: key, headers: [])
        return "\(base)?\(signer.presignedQuery(request, expires: expires, date: now))"
    }

    // MARK: Transport

    /// The URL up to the path, and the request to sign.
    func target(method: String, key: String, headers: [(String, String)]) -> (String, SigV4Signer.Request) {
        let scheme = location.endpoint.scheme ?? "https"
        var host = location.endpoint.host ?? "localhost"
        if let port = location.endpoint.port, !(scheme == "https" && port == 443), !(scheme == "http" && port == 80) { host += ":\(port)" }
        let encodedKey = SigV4Signer.uriEncode(key, keepSlash: true)
        let path: String
        switch location.addressing {
        case .path: path = "/\(SigV4Signer.uriEncode(location.bucket))/\(encodedKey)"
        case .virtualHost:
            host = "\(location.bucket).\(host)"
            path = "/\(encodedKey)"
        }
        return ("\(scheme)://\(host)\(path)", SigV4Signer.Request(method: method, host: host, encodedPath: path, headers: headers))
    }

    private func send(_ method: String, key: String, headers: [(String, String)], body: [UInt8]?, payloadHash: String,
                      allowNotFound: Bool = false, streaming: Bool = false) async throws -> HTTPClientResponse? {
        var backoff = deadlines.firstBackoff
        var lastProblem = ""
        let attempts = max(1, deadlines.attempts)
        for attempt in 1...attempts {
            let (url, signable) = target(method: method, key: key, headers: headers)
            var request = HTTPClientRequest(url: url)
            request.method = HTTPMethod(rawValue: method)
            request.headers.add(name: "Host", value: signable.host)
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            for (name, value) in signer.sign(signable, payloadHash: payloadHash, date: Date()) { request.headers.add(name: name, value: value) }
            if let body {
                request.headers.add(name: "Content-Length", value: String(body.count))
                request.body = .bytes(ByteBuffer(bytes: body))
            }
            do {
                let response = try await http.execute(request, timeout: deadlines.deadline(bytes: body?.count ?? 0))
                let status = Int(response.status.code)
                if (200..<300).contains(status) {
                    if !streaming { _ = try await response.body.collect(upTo: 1 << 20) }
                    return response
                }
                let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
                if status == 404, allowNotFound { return nil }
                if status >= 500 || status == 429 {
                    lastProblem = "HTTP \(status) \(Self.element("Code", in: text) ?? "")"
                } else {
                    throw S3Error.refused(status: status, code: Self.element("Code", in: text) ?? "", message: Self.element("Message", in: text) ?? text.prefix(200).description)
                }
            } catch let error as S3Error {
                throw error
            } catch let error as HTTPClientError where Self.timedOut(error) {
                throw S3Error.unavailable("\(method) \(location.bucket)/\(key) got no answer in time (\(error))")
            } catch {
                lastProblem = "\(error)"
            }
            if attempt < attempts {
                // Full jitter in the upper half: nodes that failed together do not retry together.
                try await Task.sleep(for: backoff * Double.random(in: 0.5...1))
                backoff *= 2
            }
        }
        throw S3Error.unavailable("\(method) \(location.bucket)/\(key) failed \(attempts) times; last: \(lastProblem)")
    }

    /// A call that got no answer in time (as opposed to one refused or answered with an error).
    static func timedOut(_ error: HTTPClientError) -> Bool {
        [HTTPClientError.deadlineExceeded, .readTimeout, .connectTimeout].contains(error)
    }

    /// The text of `<name>…</name>` in an S3 error document.
    static func element(_ name: String, in xml: String) -> String? {
        guard let start = xml.range(of: "<\(name)>"), let end = xml.range(of: "</\(name)>", range: start.upperBound..<xml.endIndex) else { return nil }
        return String(xml[start.upperBound..<end.lowerBound])
    }
}
