import Foundation

/// Reads a LoRA's address as clients write it and resolves it to the URL its file is downloaded from. Accepted:
/// any http(s) URL (the file's content is checked when fetched, not its name); a Hugging Face file,
/// `huggingface.co/OWNER/REPO/FILE.safetensors` with or without `https://` (and the Hub's `blob/REV/` page URL),
/// resolved to the Hub's download URL; CivitAI's download URL, or a model page naming its version
/// (`civitai.com/models/ID?modelVersionId=V`). Pure: nothing is fetched here.
public enum LoRASource {
    /// The hosts an operator's token may be sent to (never to any other host, redirects included).
    public enum TokenHost: String, Sendable, CaseIterable {
        case huggingFace = "huggingface.co"
        case civitai = "civitai.com"

        /// The token host a URL's host belongs to, if any.
        public init?(host: String) {
            let h = host.lowercased()
            if h == "huggingface.co" || h == "hf.co" || h == "www.huggingface.co" { self = .huggingFace }
            else if h == "civitai.com" || h == "www.civitai.com" { self = .civitai }
            else { return nil }
        }
    }

    /// How a LoRA address is written, for every error about one.
    public static let usage = "an https URL of a .safetensors file, huggingface.co/OWNER/REPO/FILE.safetensors, or a CivitAI download URL"

    /// The download URL for `text`; throws naming `param` (400 for what is not an address at all, 422 for an
    /// address that names no file).
    public static func resolve(_ text: String, param: String) throws(AtelierError) -> URL {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let shown = trimmed.count > 80 ? "\(trimmed.prefix(80))…" : trimmed
        let lower = trimmed.lowercased()
        var address = trimmed
        if lower.hasPrefix("huggingface.co/") || lower.hasPrefix("hf.co/") || lower.hasPrefix("civitai.com/") {
            address = "https://" + trimmed
        }
        let scheme = address.split(separator: ":", maxSplits: 1).first.map { $0.lowercased() } ?? ""
        guard scheme == "https" || scheme == "http", address.count <= 2048, !address.contains(where: \.isWhitespace) else {
            throw .invalid(param, "invalid_lora", "\(param) must be \(usage); got \"\(shown)\"")
        }
        // Shaped like a URL but not one that can be fetched (a stray % or bracket): its content, not its form.
        guard let url = URL(string: address), let host = url.host, !host.isEmpty else {
            throw .invalid(param, "lora_url_unusable", "\(param) is not a URL that can be fetched: \"\(shown)\"; send \(usage)")
        }
        switch TokenHost(host: host) {
        case .huggingFace?: return try huggingFace(url, param: param, shown: shown)
        case .civitai?: return try civitai(url, param: param, shown: shown)
        case nil: return url
        }
    }

    /// `OWNER/REPO/resolve/REV/PATH` stays; `OWNER/REPO/blob/REV/PATH` and `OWNER/REPO/PATH` become `resolve` URLs.
    static func huggingFace(_ url: URL, param: String, shown: String) throws(AtelierError) -> URL {
        let parts = url.path.split(separator: "/").map(String.init)
        guard parts.count >= 3 else {
            throw .invalid(param, "lora_url_unusable",
                           "\(param) names a Hugging Face repository but no file in it; name the file: huggingface.co/OWNER/REPO/FILE.safetensors (got \"\(shown)\")")
        }
        let (owner, repo) = (parts[0], parts[1])
        var revision = "main"
        var file = Array(parts[2...])
        if (file.first == "resolve" || file.first == "blob"), file.count >= 3 {
            revision = file[1]
            file = Array(file[2...])
        }
        var components = URLComponents()
        components.scheme = "https"
        components.host = "huggingface.co"
        components.path = "/" + ([owner, repo, "resolve", revision] + file).joined(separator: "/")
        components.query = url.query
        guard let resolved = components.url else {
            throw .invalid(param, "invalid_lora", "\(param) must be \(usage); got \"\(shown)\"")
        }
        return resolved
    }

    /// `api/download/models/V` stays; a model page with `modelVersionId=V` becomes that version's download URL.
    static func civitai(_ url: URL, param: String, shown: String) throws(AtelierError) -> URL {
        let parts = url.path.split(separator: "/").map(String.init)
        if parts.starts(with: ["api", "download", "models"]) { return url }
        let version = URLComponents(url: url, resolvingAgainstBaseURL: false)?.queryItems?
            .first { $0.name == "modelVersionId" }?.value
        guard parts.first == "models", let version, !version.isEmpty, version.allSatisfy(\.isNumber),
              let resolved = URL(string: "https://civitai.com/api/download/models/\(version)") else {
            throw .invalid(param, "lora_url_unusable",
                           "\(param) is a CivitAI page, not a file; use the version's download link (https://civitai.com/api/download/models/VERSION_ID) or a page URL with ?modelVersionId=VERSION_ID (got \"\(shown)\")")
        }
        return resolved
    }
}
