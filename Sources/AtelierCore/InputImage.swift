import Foundation

/// Where an `image` or `mask` parameter's bytes come from, as the client sent it. Uploads and data URIs carry the
/// bytes; a URL is fetched by the HTTP layer (with the outbound address checks) before the run is queued.
public enum ImageSource: Sendable, Equatable {
    case bytes([UInt8], origin: InputImage.Origin)
    case url(URL)

    /// The parameter's value as an image source; nil when absent or empty.
    public static func parse(_ value: ParameterValue?, param: String) throws(AtelierError) -> ImageSource? {
        let usage = "\(param) must be an uploaded file (multipart), a data: URI (data:image/png;base64,…) or an http(s) URL"
        switch value {
        case nil, .null?: return nil
        case .file(let bytes, _, _)?: return .bytes(bytes, origin: .upload)
        case .number?, .bool?: throw .invalid(param, "invalid_type", "\(usage); got \(value!.display)")
        case .string(let raw)?:
            let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if text.isEmpty { return nil }
            if text.lowercased().hasPrefix("data:") { return try dataURI(text, param: param) }
            // A URL's scheme: letters first, then letters, digits, + - . (RFC 3986); anything else is no URL at all.
            let head = text.contains(":") ? String(text.prefix { $0 != ":" }).lowercased() : ""
            let isScheme = head.first?.isLetter == true && head.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }
            guard head == "http" || head == "https" else {
                let shown = text.count > 60 ? "\(text.prefix(60))…" : text
                throw .invalid(param, isScheme ? "unsupported_scheme" : "invalid_image", "\(usage); got \"\(shown)\"")
            }
            guard text.count <= 2048, let url = URL(string: text), let host = url.host, !host.isEmpty else {
                throw .invalid(param, "invalid_url", "\(param) is not a valid http(s) URL with a host (at most 2048 characters)")
            }
            return .url(url)
        }
    }

    /// `data:[<media type>][;base64],<data>`. Only base64 is accepted: image bytes are binary.
    static func dataURI(_ text: String, param: String) throws(AtelierError) -> ImageSource {
        guard let comma = text.firstIndex(of: ",") else {
            throw .invalid(param, "invalid_data_uri", "\(param): a data URI needs a comma before its data (data:image/png;base64,…)")
        }
        let meta = text[text.index(text.startIndex, offsetBy: 5)..<comma].lowercased()
        guard meta.split(separator: ";").contains("base64") else {
            throw .invalid(param, "invalid_data_uri", "\(param): only base64 data URIs are accepted (data:image/png;base64,…)")
        }
        var payload = String(text[text.index(after: comma)...].filter { !$0.isWhitespace })
        // Some encoders leave the padding off; Foundation insists on it.
        if payload.count % 4 != 0 { payload += String(repeating: "=", count: 4 - payload.count % 4) }
        guard let data = Data(base64Encoded: payload), !data.isEmpty else {
            throw .invalid(param, "invalid_data_uri", "\(param): the data URI's base64 data does not decode")
        }
        return .bytes(Array(data), origin: .dataURI)
    }
}

/// An input image accepted for a run: checked, stored under `file` in the input storage until the run ends, and
/// described to the client in the run's `input`.
public struct InputImage: Sendable, Equatable, Codable {
    public enum Origin: String, Sendable, Codable {
        case upload
        case dataURI = "data_uri"
        case url
    }
    /// Which pixels of a mask are repainted: white ones (this API's and the hosted service's convention), or
    /// transparent ones (OpenAI's Images API). The worker reads the mask accordingly.
    public enum MaskConvention: String, Sendable, Codable {
        case white
        case transparent
    }
    /// The stored file's name (in the input folder; never served).
    public var file: String
    public var format: OutputFormat
    public var width: Int
    public var height: Int
    public var bytes: Int
    /// SHA-256 of the bytes, hex: identifies the content (and so an idempotent retry) without the file name.
    public var sha256: String
    public var origin: Origin
    /// A mask's convention; nil (the default, and every run stored before it existed) is `white`.
    public var convention: MaskConvention?

    public init(file: String, format: OutputFormat, width: Int, height: Int, bytes: Int, sha256: String, origin: Origin) {
        self.file = file
        self.format = format
        self.width = width
        self.height = height
        self.bytes = bytes
        self.sha256 = sha256
        self.origin = origin
    }

    enum CodingKeys: String, CodingKey {
        case file, format, width, height, bytes, sha256, origin, convention
    }
}

extension RunRequest {
    /// The stored inputs of this run.
    public var inputImages: [InputImage] { [image, mask].compactMap { $0 } }
}

extension SizeTable {
    /// The largest output side with an input image.
    public static let maxInputSide = 1440

    /// With an input image the output takes its size: scaled down (keeping its shape) so no side exceeds 1440,
    /// then each side rounded to the nearest multiple of 16 (at least 16).
    public static func size(forInput width: Int, _ height: Int) -> ImageSize {
        let scale = min(1, Double(maxInputSide) / Double(max(width, height)))
        func side(_ x: Int) -> Int { max(16, min(maxInputSide, Int((Double(x) * scale / 16).rounded()) * 16)) }
        return ImageSize(width: side(width), height: side(height))
    }

    /// Denoising steps an image-to-image run takes: diffusers skips the first (1 − strength) of the schedule,
    /// truncating as its `get_timesteps` does.
    public static func imageToImageSteps(_ steps: Int, strength: Double) -> Int {
        let initial = min(Double(steps) * strength, Double(steps))
        return steps - Int(max(Double(steps) - initial, 0))
    }
}
