import AsyncHTTPClient
import AtelierCore
import AtelierMetrics
import Foundation
import NIOCore
import NIOHTTP1

/// Limits of one outbound call (an image fetch or a webhook delivery).
public struct OutboundLimits: Sendable {
    public var connectTimeout: TimeAmount = .seconds(5)
    /// The whole call, redirects and body included.
    public var totalTimeout: Duration = .seconds(20)
    /// The body is cut off (and the call failed) past this many bytes, while it streams.
    public var maxBytes: Int = 20_000_000
    /// Redirects followed, each re-checked; 0 treats a redirect as the answer.
    public var maxRedirects: Int = 3
    public init() {}
}

/// Why an outbound call did not get an answer. `message` is written for the client whose URL it was.
public enum OutboundFailure: Error, Sendable, Equatable {
    case invalidURL(String)
    /// The address policy refused the host (or a redirect's host) before any connection was made.
    case refused(String)
    case tooManyRedirects(Int)
    case tooLarge(limit: Int)
    case timedOut(Duration)
    case connection(String)

    public var message: String {
        switch self {
        case .invalidURL(let why): why
        case .refused(let why): why
        case .tooManyRedirects(let n): "it redirected more than \(n) times"
        case .tooLarge(let limit): "its body is larger than \(limit) bytes (cut off while downloading)"
        case .timedOut(let d): "it did not answer in full within \(d.components.seconds) s"
        case .connection(let why): "it could not be reached (\(why))"
        }
    }

    /// The `reason` label of `atelier_outbound_refused_total`.
    public var reason: String {
        switch self {
        case .invalidURL: "invalid_url"
        case .refused: "address"
        case .tooManyRedirects: "redirects"
        case .tooLarge: "too_large"
        case .timedOut: "timeout"
        case .connection: "connection"
        }
    }
}

public struct OutboundResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// The URL that answered, after redirects.
    public var url: URL
}

/// The one way the server calls a URL a client gave it (input images, webhooks). Server-side request forgery is
/// closed here: only http and https; every address the host resolves to must be public (`OutboundAddressPolicy`,
/// which reads decimal, octal and hex IPv4 spellings as the resolver does) unless the operator allow-listed the
/// host; the connection then goes to the address that was checked (AsyncHTTPClient's DNS override, keeping the
/// host name for TLS and the Host header), so a DNS answer that changes between check and connect reaches nothing
/// new; redirects are followed by hand, each hop checked again; time and bytes are bounded while streaming.
public struct OutboundClient: Sendable {
    public var policy: OutboundAddressPolicy
    /// What the calls are for (`input_image`, `webhook`): the `purpose` label of refusals in /metrics.
    public var purpose: String
    public var metrics: AtelierMetrics

    public init(policy: OutboundAddressPolicy, purpose: String = "other", metrics: AtelierMetrics = AtelierMetrics()) {
        self.policy = policy
        self.purpose = purpose
        self.metrics = metrics
    }

    /// `hopHeaders`: headers for one hop's URL only (a token for its own host, never sent on to a redirect's host).
    /// `file`: the body is streamed into this file instead of memory (a LoRA may be gigabytes); `body` is then empty.
    public func send(
        _ method: HTTPMethod = .GET, url: URL, headers: HTTPHeaders = [:], body: [UInt8]? = nil, limits: OutboundLimits,
        hopHeaders: (@Sendable (URL) -> HTTPHeaders)? = nil, file: String? = nil,
        fileProgress: (@Sendable (Int, Int?) -> Void)? = nil
    ) async throws(OutboundFailure) -> OutboundResponse {
        let result: Result<OutboundResponse, OutboundFailure> = await withTaskGroup(of: Result<OutboundResponse, OutboundFailure>?.self) { group in
            group.addTask {
                do { return .success(try await self.follow(method, url: url, headers: headers, body: body, limits: limits, hopHeaders: hopHeaders, file: file.map { ($0, fileProgress) })) }
                catch let failure as OutboundFailure { return .failure(failure) }
                catch { return .failure(.connection("\(error)")) }
            }
            group.addTask {
                try? await Task.sleep(for: limits.totalTimeout)
                return Task.isCancelled ? nil : .failure(.timedOut(limits.totalTimeout))
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? .failure(.timedOut(limits.totalTimeout))
        }
        if case .failure(let failure) = result { metrics.outboundRefused(purpose: purpose, reason: failure.reason) }
        return try result.get()
    }

    private func follow(
        _ method: HTTPMethod, url start: URL, headers: HTTPHeaders, body: [UInt8]?, limits: OutboundLimits,
        hopHeaders: (@Sendable (URL) -> HTTPHeaders)?, file: (String, (@Sendable (Int, Int?) -> Void)?)?
    ) async throws -> OutboundResponse {
        var url = start
        var redirects = 0
        while true {
            var hop = headers
            if let extra = hopHeaders?(url) { hop.add(contentsOf: extra) }
            let response = try await once(method, url: url, headers: hop, body: body, limits: limits, file: file)
            guard (300..<400).contains(response.status), response.status != 304, limits.maxRedirects > 0,
                  let location = response.headers.first(name: "location") else {
                return response
            }
            redirects += 1
            guard redirects <= limits.maxRedirects else { throw OutboundFailure.tooManyRedirects(limits.maxRedirects) }
            guard let next = URL(string: location, relativeTo: url)?.absoluteURL else {
                throw OutboundFailure.invalidURL("it redirected to \"\(location.prefix(100))\", which is not a URL")
            }
            url = next
        }
    }

    /// One request to one URL, to the address that was checked.
    private func once(
        _ method: HTTPMethod, url: URL, headers: HTTPHeaders, body: [UInt8]?, limits: OutboundLimits,
        file: (String, (@Sendable (Int, Int?) -> Void)?)?
    ) async throws -> OutboundResponse {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw OutboundFailure.invalidURL("only http and https URLs are fetched; got \"\(url.absoluteString.prefix(100))\"")
        }
        guard let rawHost = url.host, !rawHost.isEmpty else {
            throw OutboundFailure.invalidURL("the URL \"\(url.absoluteString.prefix(100))\" has no host")
        }
        let host = rawHost.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.timeout = .init(connect: limits.connectTimeout, read: .seconds(Int64(limits.totalTimeout.components.seconds) + 1))
        switch await HostResolver.checked(host: host, policy: policy) {
        case .failure(let refusal): throw OutboundFailure.refused(refusal.reason)
        case .success(let addresses?):
            // The connection goes to an address that was judged, not to the name (which could answer differently now).
            configuration.dnsOverride = [host: addresses[0]]
        case .success(nil): break  // allow-listed by the operator
        }
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        let outcome: Result<OutboundResponse, any Error>
        do {
            var request = HTTPClientRequest(url: url.absoluteString)
            request.method = method
            request.headers = headers
            if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
            let response = try await client.execute(request, timeout: .seconds(Int64(limits.totalTimeout.components.seconds) + 1))
            if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > limits.maxBytes {
                throw OutboundFailure.tooLarge(limit: limits.maxBytes)
            }
            var bytes: [UInt8] = []
            if let (path, progress) = file, response.status == .ok {
                let length = response.headers.first(name: "content-length").flatMap(Int.init)
                try await Self.stream(response.body, to: path, maxBytes: limits.maxBytes) { progress?($0, length) }
            } else {
                for try await chunk in response.body {
                    bytes.append(contentsOf: chunk.readableBytesView)
                    if bytes.count > limits.maxBytes { throw OutboundFailure.tooLarge(limit: limits.maxBytes) }
                }
            }
            outcome = .success(OutboundResponse(status: Int(response.status.code), headers: response.headers, body: bytes, url: url))
        } catch {
            outcome = .failure(error)
        }
        try? await client.shutdown()
        switch outcome {
        case .success(let r): return r
        case .failure(let e as OutboundFailure): throw e
        case .failure(let e as HTTPClientError) where e == .connectTimeout: throw OutboundFailure.connection("no connection within \(limits.connectTimeout.nanoseconds / 1_000_000_000) s")
        case .failure(let e): throw OutboundFailure.connection(Self.describe(e))
        }
    }

    static func stream(_ body: HTTPClientResponse.Body, to path: String, maxBytes: Int, progress: (Int) -> Void) async throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: path) else { throw OutboundFailure.connection("cannot write \(path)") }
        defer { try? handle.close() }
        var written = 0
        for try await chunk in body {
            written += chunk.readableBytes
            if written > maxBytes { throw OutboundFailure.tooLarge(limit: maxBytes) }
            try handle.write(contentsOf: Array(chunk.readableBytesView))
            progress(written)
        }
    }

    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }
}
