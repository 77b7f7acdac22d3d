import AtelierCore

/// How clients reach a finished image. Every mode answers with the same shape (a URL per image); only the URL's
/// host and what it does differ.
public enum OutputURLMode: Sendable, Equatable {
    /// `BASE/storage/outputs/NAME` on this API, which streams the image from the store (the default).
    case proxy
    /// `BASE/storage/outputs/NAME` redirects (307) to a presigned URL of the bucket valid for `expires` seconds,
    /// so image bytes never pass through the API nodes. Needs a store with presigned URLs (S3).
    case presigned(expires: Int)
    /// `BASE/OBJECT-KEY`: a CDN or a public bucket serves the images directly.
    case publicBase(String)
}

/// Builds the URL of each output image, for answers and webhooks alike.
public struct OutputLinks: Sendable {
    public let mode: OutputURLMode
    let storage: any ImageStorage

    public init(mode: OutputURLMode, storage: any ImageStorage) {
        self.mode = mode
        self.storage = storage
    }

    public func url(for name: String, apiBaseURL: String) -> String {
        if case .publicBase(let base) = mode, let key = storage.objectKey(for: name) { return "\(base)/\(key)" }
        return Self.apiURL(for: name, apiBaseURL: apiBaseURL)
    }

    /// The image's route on the API (`proxy` and `presigned` modes, and views built without links).
    public static func apiURL(for name: String, apiBaseURL: String) -> String {
        "\(apiBaseURL)/storage/outputs/\(name)"
    }
}
