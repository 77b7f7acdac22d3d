import AtelierCore
import Foundation

/// A strict multipart/form-data reader (RFC 7578 over RFC 2046 §5.1.1). A lenient parser runs a body whose end
/// was cut off or whose closing boundary is missing or misspelled, and such a run is charged; this one accepts a
/// body only if every part is closed by a delimiter and the body ends with the close delimiter `--boundary--`.
/// Preamble and epilogue are ignored, as the RFC says.
struct MultipartBody {
    struct Part {
        var headers: [String: String]
        var body: ArraySlice<UInt8>
    }

    static func parts(_ bytes: [UInt8], boundary: String) throws(AtelierError) -> [Part] {
        // RFC 2046: 1 to 70 characters; the last may not be a space.
        guard (1...70).contains(boundary.utf8.count), !boundary.hasSuffix(" "),
              boundary.unicodeScalars.allSatisfy({ $0.isASCII && $0.value >= 0x20 }) else {
            throw .malformedBody("the multipart boundary in Content-Type must be 1 to 70 ASCII characters; got \"\(boundary.prefix(80))\"")
        }
        let dashBoundary = Array("--\(boundary)".utf8)
        let delimiter = [0x0D, 0x0A] + dashBoundary
        // The first boundary line opens the body, or follows a preamble and a line break.
        var cursor: Int
        if bytes.starts(with: dashBoundary) {
            cursor = dashBoundary.count
        } else if let at = find(delimiter, in: bytes, from: 0) {
            cursor = at + delimiter.count
        } else {
            throw .malformedBody("the multipart body does not contain its boundary \"\(boundary)\"; the boundary in Content-Type must be the one the body uses")
        }
        var parts: [Part] = []
        while true {
            // After a boundary: "--" closes the body; otherwise optional padding and a line break open a part.
            if bytes[cursor...].starts(with: [0x2D, 0x2D]) { return parts }
            while cursor < bytes.count, bytes[cursor] == 0x20 || bytes[cursor] == 0x09 { cursor += 1 }
            guard bytes[cursor...].starts(with: [0x0D, 0x0A]) else {
                let line = String(decoding: bytes[max(0, cursor - dashBoundary.count)..<min(bytes.count, cursor + 20)], as: UTF8.self)
                if cursor >= bytes.count {
                    throw .malformedBody("the multipart body ends without its closing boundary --\(boundary)--; the body is truncated")
                }
                throw .malformedBody("the multipart boundary line \"\(line.prefix(100))\" does not match the boundary \"\(boundary)\" in Content-Type")
            }
            let start = cursor + 2
            guard let end = find(delimiter, in: bytes, from: start) else {
                let name = (try? header(of: bytes, start..<bytes.count)).flatMap { $0?.headers["content-disposition"] }
                    .flatMap { BodyParser.parameter("name", in: $0) }
                let which = name.map { "the part \"\($0)\"" } ?? "a part"
                throw .malformedBody("\(which) of the multipart body is not closed by the boundary --\(boundary); the body is truncated or its closing boundary --\(boundary)-- is missing")
            }
            guard let part = try header(of: bytes, start..<end) else {
                throw .malformedBody("a part of the multipart body has no blank line after its headers")
            }
            parts.append(part)
            cursor = end + delimiter.count
        }
    }

    /// Splits a part into its headers and body; nil when the blank line that ends the headers is missing.
    static func header(of bytes: [UInt8], _ range: Range<Int>) throws(AtelierError) -> Part? {
        let part = bytes[range]
        let blank: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A]
        let bodyStart: Int
        let headerBytes: ArraySlice<UInt8>
        if part.starts(with: [0x0D, 0x0A]) {
            headerBytes = []
            bodyStart = part.startIndex + 2
        } else if let at = find(blank, in: bytes, from: range.lowerBound, to: range.upperBound) {
            headerBytes = part[part.startIndex..<at]
            bodyStart = at + 4
        } else {
            return nil
        }
        var headers: [String: String] = [:]
        for line in String(decoding: headerBytes, as: UTF8.self).components(separatedBy: "\r\n") where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":"), !line.hasPrefix(" "), !line.hasPrefix("\t") else {
                throw .malformedBody("a multipart part has a malformed header line \"\(line.prefix(80))\"")
            }
            headers[line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()] =
                line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Part(headers: headers, body: part[bodyStart...])
    }

    /// The first index of `needle` in `haystack[from..<to]`: memchr to the next candidate first byte, memcmp for
    /// the rest (bodies run to tens of megabytes; a byte loop in a debug build took seconds).
    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int, to: Int? = nil) -> Int? {
        let end = to ?? haystack.count
        guard end - from >= needle.count, let first = needle.first else { return nil }
        return haystack.withUnsafeBytes { hay in
            needle.withUnsafeBytes { pin in
                let base = hay.baseAddress!
                var i = from
                let last = end - needle.count
                while i <= last {
                    guard let hit = memchr(base + i, Int32(first), last - i + 1) else { return nil }
                    let at = base.distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + at, pin.baseAddress!, pin.count) == 0 { return at }
                    i = at + 1
                }
                return nil
            }
        }
    }
}
