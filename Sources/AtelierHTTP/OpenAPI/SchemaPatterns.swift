/// Regular expressions for the text forms of the catalog's values. Form and multipart clients send every value as
/// text, so each number, boolean and choice has a string form whose pattern says exactly what the decoder accepts
/// (ranges included): schemathesis then finds no request the document calls valid that the server refuses, and
/// none it calls invalid that the server takes.
enum SchemaPatterns {
    /// Text: no control characters but tab and line feed (TextRules). The server also takes CR LF as a line
    /// break; the document leaves CR out to keep its patterns simple to generate from.
    static let textChar = "[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]"
    static let text = "^\(textChar)*$"
    static let textNonBlank = "^\(textChar)*[^\\s\\u0000-\\u001f\\u007f-\\u009f]\(textChar)*$"
    static let custom = "^[cC][uU][sS][tT][oO][mM]$"
    /// A LoRA's address as `LoRASource` reads it: an http(s) URL, or a Hugging Face or CivitAI address without
    /// its scheme.
    static let loraAddress = "(?:[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][!-~]*)?"
        + "|(?:[hH][uU][gG][gG][iI][nN][gG][fF][aA][cC][eE]\\.[cC][oO]|[hH][fF]\\.[cC][oO]|[cC][iI][vV][iI][tT][aA][iI]\\.[cC][oO][mM])/[!-~]*)"

    /// An alternation (no anchors) of the decimal integers lo...hi, 0 ≤ lo, without leading zeros.
    static func intRange(_ lo: Int, _ hi: Int) -> String {
        if lo > hi { return "(?!)" }
        var parts: [String] = []
        for digits in String(lo).count...String(hi).count {
            let a = max(lo, digits > 1 ? pow10(digits - 1) : 0)
            let b = min(hi, pow10(digits) - 1)
            if a <= b { parts += sameLength(Array(String(a)), Array(String(b))) }
        }
        return "(?:" + parts.joined(separator: "|") + ")"
    }

    private static func pow10(_ n: Int) -> Int { (0..<n).reduce(1) { r, _ in r * 10 } }

    /// Patterns for the numbers a...b of the same length.
    private static func sameLength(_ a: [Character], _ b: [Character]) -> [String] {
        if a == b { return [String(a)] }
        if a.count == 1 { return ["[\(a[0])-\(b[0])]"] }
        let rest = a.count - 1
        let tailA = Array(a.dropFirst()), tailB = Array(b.dropFirst())
        if tailA.allSatisfy({ $0 == "0" }) && tailB.allSatisfy({ $0 == "9" }) { return ["[\(a[0])-\(b[0])][0-9]{\(rest)}"] }
        if a[0] == b[0] { return wrap(sameLength(tailA, tailB)).map { "\(a[0])\($0)" } }
        var out = wrap(sameLength(tailA, Array(repeating: "9", count: rest))).map { "\(a[0])\($0)" }
        let first = Int(String(a[0]))!, last = Int(String(b[0]))!
        if last - first > 1 { out.append("[\(first + 1)-\(last - 1)][0-9]{\(rest)}") }
        out += wrap(sameLength(Array(repeating: "0", count: rest), tailB)).map { "\(b[0])\($0)" }
        return out
    }

    private static func wrap(_ parts: [String]) -> [String] {
        parts.count > 1 ? ["(?:" + parts.joined(separator: "|") + ")"] : parts
    }

    /// What the decoder reads as an integer from text: -?digits(.0+)? within lo...hi (leading zeros allowed).
    static func integerText(_ lo: Int, _ hi: Int) -> String {
        var alternatives: [String] = []
        if hi >= max(lo, 0) { alternatives.append("0*" + intRange(max(lo, 0), hi)) }
        if lo < 0 { alternatives.append("-0*" + intRange(0, -lo)) } else if lo == 0 { alternatives.append("-0+") }
        return "(?:" + alternatives.joined(separator: "|") + ")(?:\\.0+)?"
    }

    /// What the decoder reads as a number from text: -?digits(.digits)? within lo...hi (integer bounds).
    static func decimalText(_ lo: Int, _ hi: Int) -> String {
        var alternatives: [String] = []
        if hi >= max(lo, 0) { alternatives.append("0*(?:\(intRange(max(lo, 0), hi - 1))(?:\\.[0-9]+)?|\(hi)(?:\\.0+)?)") }
        if lo < 0 {
            alternatives.append("-0*(?:\(intRange(0, -lo - 1))(?:\\.[0-9]+)?|\(-lo)(?:\\.0+)?)")
        } else {
            alternatives.append("-0+(?:\\.0+)?")
        }
        return "(?:" + alternatives.joined(separator: "|") + ")"
    }

    /// A word in any letter case, other characters escaped as Python's re.escape does.
    static func caseless(_ word: String) -> String {
        word.map { c in
            if c.isLetter { return "[\(c.lowercased())\(c.uppercased())]" }
            return "()[]{}?*+-|^$\\.&~# \t\n\r\u{0B}\u{0C}".contains(c) ? "\\\(c)" : String(c)
        }.joined()
    }
}
