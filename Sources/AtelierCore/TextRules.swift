import Foundation

/// What a text parameter may hold, in every body encoding and the query string: valid UTF-8 (checked where the
/// bytes are decoded) without control characters other than tab and line feed. A NUL or an escape sequence in
/// a prompt or a model id is never meant, and parsers downstream (tokenizers, logs, SQL drivers, C strings)
/// disagree about what it does. CR LF, which browsers send for every line break of a multipart form, counts as
/// a line break and becomes LF, so a prompt means the same whichever encoding carried it.
public enum TextRules {
    /// The text with CR LF as LF, or an error naming the parameter and the first offending character.
    public static func checked(_ text: String, param: String) throws(AtelierError) -> String {
        var needsNormalizing = false
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            let v = scalar.value
            if previousWasCR && v != 0x0A { throw refusal(0x0D, param) }
            previousWasCR = v == 0x0D
            if v == 0x0D { needsNormalizing = true; continue }
            if (v < 0x20 && v != 0x09 && v != 0x0A) || (0x7F...0x9F).contains(v) { throw refusal(v, param) }
        }
        if previousWasCR { throw refusal(0x0D, param) }
        return needsNormalizing ? text.replacingOccurrences(of: "\r\n", with: "\n") : text
    }

    static func refusal(_ value: UInt32, _ param: String) -> AtelierError {
        let code = String(value, radix: 16, uppercase: true)
        let padded = String(repeating: "0", count: max(0, 4 - code.count)) + code
        return .invalid(param, "invalid_text",
                        "\(param) holds the control character U+\(padded); only tab and line breaks are allowed in text, so remove it")
    }
}
