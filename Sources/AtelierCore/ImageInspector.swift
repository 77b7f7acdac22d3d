/// Bounds on an input image, checked before anything decodes it.
public struct ImageLimits: Sendable, Equatable {
    /// Largest encoded file accepted.
    public var maxBytes: Int = 20_000_000
    /// Largest width × height accepted; checked from the header, so a decompression bomb is refused unopened.
    public var maxPixels: Int = 40_000_000
    public init(maxBytes: Int = 20_000_000, maxPixels: Int = 40_000_000) {
        self.maxBytes = maxBytes
        self.maxPixels = maxPixels
    }
}

/// What an input image's bytes say about it, read from its header and structure without decoding pixels.
public struct ImageHeader: Sendable, Equatable {
    public var format: OutputFormat
    public var width: Int
    public var height: Int
}

/// Recognises PNG, JPEG and WebP by their bytes (never by a file name or Content-Type), reads the size from the
/// header and walks the container far enough to notice a truncated file. Pixels are decoded by the worker, after
/// the pixel count was bounded here; a file that passes here but is corrupt inside fails there.
public enum ImageInspector {
    public static func inspect(_ bytes: [UInt8], param: String, limits: ImageLimits) throws(AtelierError) -> ImageHeader {
        func problem(_ code: String, _ message: String) -> AtelierError { .invalid(param, code, "\(param): \(message)") }
        if bytes.isEmpty { throw problem("empty_image", "the image is empty (0 bytes)") }
        if bytes.count > limits.maxBytes {
            throw problem("image_too_large", "the image is \(bytes.count) bytes; at most \(limits.maxBytes) are accepted. Send a smaller or more compressed file")
        }
        let header: ImageHeader?
        switch sniff(bytes) {
        case .png: header = png(bytes)
        case .jpg: header = jpeg(bytes)
        case .webp: header = webp(bytes)
        case nil:
            let what = otherFormat(bytes).map { "a \($0) file" } ?? "not a PNG, JPEG or WebP image"
            throw problem("unsupported_format", "the data is \(what); send PNG, JPEG or WebP")
        }
        guard let header else {
            throw problem("truncated_image", "the \(sniff(bytes)!.label) data is truncated or malformed (its structure ends early); send the whole file")
        }
        guard header.width > 0, header.height > 0 else {
            throw problem("invalid_image_size", "the \(header.format.label) header gives a size of \(header.width)×\(header.height)")
        }
        let pixels = header.width.multipliedReportingOverflow(by: header.height)
        if pixels.overflow || pixels.partialValue > limits.maxPixels {
            throw problem("too_many_pixels", "the image is \(header.width)×\(header.height) pixels; at most \(limits.maxPixels / 1_000_000) megapixels are accepted (checked before decoding). Send a smaller image")
        }
        return header
    }

    /// The format the magic bytes name, if one of the three accepted.
    public static func sniff(_ b: [UInt8]) -> OutputFormat? {
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if b.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpg }
        if b.count >= 12, b.starts(with: Array("RIFF".utf8)), Array(b[8..<12]) == Array("WEBP".utf8) { return .webp }
        return nil
    }

    /// Names a few formats people send by mistake, for the error message.
    static func otherFormat(_ b: [UInt8]) -> String? {
        if b.starts(with: Array("GIF8".utf8)) { return "GIF" }
        if b.starts(with: Array("BM".utf8)) { return "BMP" }
        if b.starts(with: [0x49, 0x49, 0x2A, 0x00]) || b.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) { return "TIFF" }
        if b.count >= 12, Array(b[4..<8]) == Array("ftyp".utf8) { return "HEIF/AVIF" }
        if b.starts(with: Array("%PDF".utf8)) { return "PDF" }
        if b.starts(with: Array("<".utf8)) || b.starts(with: [0xEF, 0xBB, 0xBF, 0x3C]) { return "HTML/XML/SVG" }
        return nil
    }

    static func be32(_ b: [UInt8], _ i: Int) -> Int {
        Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
    }
    static func be16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
    static func le16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
    static func le24(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 }
    static func le32(_ b: [UInt8], _ i: Int) -> Int { le24(b, i) | Int(b[i + 3]) << 24 }

    /// IHDR first, then chunk by chunk to IEND; nil if the chunks run past the end of the data.
    static func png(_ b: [UInt8]) -> ImageHeader? {
        guard b.count >= 33, be32(b, 8) == 13, Array(b[12..<16]) == Array("IHDR".utf8) else { return nil }
        let header = ImageHeader(format: .png, width: be32(b, 16), height: be32(b, 20))
        var i = 8
        while i + 8 <= b.count {
            let length = be32(b, i)
            let type = Array(b[(i + 4)..<(i + 8)])
            let next = i + 12 + length
            guard length >= 0, next <= b.count else { return nil }
            if type == Array("IEND".utf8) { return header }
            i = next
        }
        return nil
    }

    /// Segment by segment to a start-of-frame (the size), then through the entropy-coded data to end-of-image.
    static func jpeg(_ b: [UInt8]) -> ImageHeader? {
        var size: (Int, Int)?
        var i = 2
        while i + 4 <= b.count {
            guard b[i] == 0xFF else { return nil }
            let marker = b[i + 1]
            if marker == 0xFF { i += 1; continue }  // fill byte
            if marker == 0xD9 { break }
            if (0xD0...0xD7).contains(marker) || marker == 0x01 { i += 2; continue }  // no length
            let length = be16(b, i + 2)
            guard length >= 2, i + 2 + length <= b.count else { return nil }
            // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
            if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker), length >= 7 {
                size = (be16(b, i + 7), be16(b, i + 5))
            }
            i += 2 + length
            if marker == 0xDA {
                // Entropy-coded data: skip to the next marker that is not a stuffed 0x00 or a restart.
                while i + 1 < b.count, !(b[i] == 0xFF && b[i + 1] != 0x00 && !(0xD0...0xD7).contains(b[i + 1])) { i += 1 }
                if i + 1 >= b.count { return nil }
            }
        }
        guard i + 1 < b.count, b[i] == 0xFF, b[i + 1] == 0xD9, let (w, h) = size else { return nil }
        return ImageHeader(format: .jpg, width: w, height: h)
    }

    /// The RIFF length must fit the data; the size comes from the VP8, VP8L or VP8X chunk.
    static func webp(_ b: [UInt8]) -> ImageHeader? {
        guard b.count >= 30 else { return nil }
        let riffEnd = 8 + le32(b, 4)
        guard riffEnd <= b.count else { return nil }
        switch String(decoding: b[12..<16], as: UTF8.self) {
        case "VP8 ":
            guard b[23] == 0x9D, b[24] == 0x01, b[25] == 0x2A else { return nil }
            return ImageHeader(format: .webp, width: le16(b, 26) & 0x3FFF, height: le16(b, 28) & 0x3FFF)
        case "VP8L":
            guard b[20] == 0x2F else { return nil }
            let bits = le32(b, 21)
            return ImageHeader(format: .webp, width: (bits & 0x3FFF) + 1, height: ((bits >> 14) & 0x3FFF) + 1)
        case "VP8X":
            return ImageHeader(format: .webp, width: le24(b, 24) + 1, height: le24(b, 27) + 1)
        default:
            return nil
        }
    }
}

extension OutputFormat {
    /// The format's name for people.
    public var label: String {
        switch self {
        case .png: "PNG"
        case .jpg: "JPEG"
        case .webp: "WebP"
        }
    }
}
