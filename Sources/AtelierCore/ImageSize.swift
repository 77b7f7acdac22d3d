/// Output sizes for FLUX models: the hosted service's size table (docs/architecture.md, "Sizes"). Sides are multiples of 16
/// because FLUX packs 2×2 patches of a latent that the VAE downsamples ×8.
public struct ImageSize: Sendable, Equatable, Codable, CustomStringConvertible {
    public var width: Int
    public var height: Int
    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }
    public var description: String { "\(width)×\(height)" }
}

public enum SizeTable {
    /// The aspect ratios in the order the API documents them (error messages list them in this order).
    public static let aspectRatios = ["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]
    public static let custom = "custom"
    /// A run with an input image takes its size: its aspect_ratio reads this.
    public static let input = "input"
    public static let megapixels = ["1", "0.25"]
    public static let customSideRange = 256...1440

    private static let oneMegapixel: [String: ImageSize] = [
        "1:1": .init(width: 1024, height: 1024),
        "16:9": .init(width: 1344, height: 768),
        "21:9": .init(width: 1536, height: 640),
        "3:2": .init(width: 1216, height: 832),
        "2:3": .init(width: 832, height: 1216),
        "4:5": .init(width: 896, height: 1088),
        "5:4": .init(width: 1088, height: 896),
        "3:4": .init(width: 896, height: 1152),
        "4:3": .init(width: 1152, height: 896),
        "9:16": .init(width: 768, height: 1344),
        "9:21": .init(width: 640, height: 1536),
    ]

    /// The size for a named aspect ratio; "0.25" megapixels halves each side. Nil for an unknown ratio or megapixels.
    /// Every size the table gives, 1:1 at 1 MP first: the sizes the compiled go_fast path is warmed up at, so that
    /// no client's request waits for a compile.
    public static var allSizes: [ImageSize] {
        megapixels.flatMap { mp in aspectRatios.compactMap { size(aspectRatio: $0, megapixels: mp) } }
    }

    public static func size(aspectRatio: String, megapixels: String) -> ImageSize? {
        guard let base = oneMegapixel[aspectRatio] else { return nil }
        switch megapixels {
        case "1": return base
        case "0.25": return ImageSize(width: base.width / 2, height: base.height / 2)
        default: return nil
        }
    }

    /// A custom side rounded up to a multiple of 16 (1000 → 1008). Range checks happen before rounding.
    public static func roundUpToMultipleOf16(_ side: Int) -> Int {
        (side + 15) / 16 * 16
    }
}
