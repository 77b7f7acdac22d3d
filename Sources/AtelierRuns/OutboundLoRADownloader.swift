import AtelierCore
import Foundation
import NIOHTTP1

/// Downloads a LoRA through the `OutboundClient`: the same address policy as input images and webhooks, checked
/// on every hop; the file streamed to disk within the size limit; an operator's Hugging Face or CivitAI token sent
/// as a bearer token to that host only, never to a redirect's CDN host, and never logged.
public struct OutboundLoRADownloader: LoRADownloader {
    public let client: OutboundClient
    public var limits: OutboundLimits
    let tokens: [LoRASource.TokenHost: String]

    public init(client: OutboundClient, limits: OutboundLimits, tokens: [LoRASource.TokenHost: String]) {
        self.client = client
        self.limits = limits
        self.tokens = tokens
    }

    public func download(_ url: URL, maxBytes: Int, to path: String,
                         progress: @escaping @Sendable (LoRAFetchProgress) -> Void) async throws(LoRAFileProblem) -> Int {
        var limits = self.limits
        limits.maxBytes = maxBytes
        let tokens = self.tokens
        let response: OutboundResponse
        do {
            response = try await client.send(.GET, url: url, headers: ["User-Agent": "Atelier/1 (LoRA fetch)"], limits: limits,
                                             hopHeaders: { hop in
                                                 guard let host = hop.host.flatMap(LoRASource.TokenHost.init(host:)), let token = tokens[host] else { return [:] }
                                                 return ["Authorization": "Bearer \(token)"]
                                             },
                                             file: path, fileProgress: { done, total in progress(LoRAFetchProgress(bytesDone: done, bytesTotal: total)) })
        } catch {
            if case .tooLarge(let limit) = error { throw .tooLarge(limit: limit) }
            throw .unavailable("its URL was not fetched: \(error.message)")
        }
        guard response.status == 200 else {
            let hint = response.status == 401 || response.status == 403 ? " (a gated or private file needs the operator's token: ATELIER_HF_TOKEN or ATELIER_CIVITAI_TOKEN)" : ""
            throw .unavailable("its URL answered HTTP \(response.status), not 200 with the file\(hint)")
        }
        return ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }
}
