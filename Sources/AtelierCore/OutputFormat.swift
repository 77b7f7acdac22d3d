public enum OutputFormat: String, Sendable, Codable, CaseIterable {
    case webp
    case jpg
    case png

    /// Accepts the documented names and `jpeg`, case-insensitively.
    public init?(parameter: String) {
        switch parameter.lowercased() {
        case "webp": self = .webp
        case "jpg", "jpeg": self = .jpg
        case "png": self = .png
        default: return nil
        }
    }

    public var fileExtension: String { rawValue }

    public var contentType: String {
        switch self {
        case .webp: "image/webp"
        case .jpg: "image/jpeg"
        case .png: "image/png"
        }
    }
}
