import AtelierCore
import AtelierEngine
import AtelierMetrics
import AtelierRuns
import Foundation

/// Per-request LoRAs: how many a run may stack, how large a file may be, the worker node's disk and the worker's
/// memory budgets, and the operator's tokens for gated files (read from the environment only, never logged).
public struct LoRASettings: Sendable, Equatable {
    public var maxPerRun = 3
    public var maxMegabytes = 2_000
    public var diskCacheMegabytes = 20_000
    public var memoryMegabytes = 4_000
    /// `ATELIER_HF_TOKEN` (or `HF_TOKEN`): sent as a bearer token to huggingface.co only.
    public var huggingFaceToken: String?
    /// `ATELIER_CIVITAI_TOKEN` (or `CIVITAI_TOKEN`): sent as a bearer token to civitai.com only.
    public var civitaiToken: String?

    public var limits: LoRALimits { LoRALimits(maxPerRun: maxPerRun, maxBytes: maxMegabytes * 1_000_000) }

    var tokens: [LoRASource.TokenHost: String] {
        var out: [LoRASource.TokenHost: String] = [:]
        out[.huggingFace] = huggingFaceToken
        out[.civitai] = civitaiToken
        return out
    }

    static func resolve(_ flags: ServeSettings.Flags, _ source: SettingSource) throws(SettingError) -> LoRASettings {
        var s = LoRASettings()
        s.maxPerRun = try source.int(flags.maxLoras, "MAX_LORAS", 0...16, s.maxPerRun)
        s.maxMegabytes = try source.int(flags.loraMaxMB, "LORA_MAX_MB", 1...20_000, s.maxMegabytes)
        s.diskCacheMegabytes = try source.int(flags.loraDiskCacheMB, "LORA_DISK_CACHE_MB", 0...10_000_000, s.diskCacheMegabytes)
        s.memoryMegabytes = try source.int(flags.loraMemoryMB, "LORA_MEMORY_MB", 0...1_000_000, s.memoryMegabytes)
        func secret(_ names: [String]) -> String? {
            names.lazy.compactMap { source.environment[$0] }.first { !$0.isEmpty }
        }
        s.huggingFaceToken = secret(["ATELIER_HF_TOKEN", "HF_TOKEN"])
        s.civitaiToken = secret(["ATELIER_CIVITAI_TOKEN", "CIVITAI_TOKEN"])
        return s
    }
}

extension ServeSettings {
    /// Where this node's worker slots get per-request LoRAs: the shared store, downloads through the outbound
    /// policy (a LoRA may take minutes to download: 10 minutes at most), and the disk cache in the data folder.
    func loraSources(_ store: any LoRAStore, leases: any LoRAFetchLeases, node: String, metrics: AtelierMetrics) -> LoRASources {
        var limits = OutboundLimits()
        limits.totalTimeout = .seconds(600)
        let client = OutboundClient(policy: OutboundAddressPolicy(allowedHosts: outboundAllow), purpose: "lora", metrics: metrics)
        return LoRASources(store: store, downloader: OutboundLoRADownloader(client: client, limits: limits, tokens: loras.tokens),
                           cacheDirectory: URL(fileURLWithPath: dataDirectory).appendingPathComponent("lora-cache"),
                           diskBudget: loras.diskCacheMegabytes * 1_000_000, limits: loras.limits, leases: leases, node: node)
    }
}
