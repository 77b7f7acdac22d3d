import AtelierCore
import Foundation

/// A strict reader for the one JSON shape a request body may have: an object of parameters. Foundation's decoder
/// keeps one of two values under a repeated key (which one is undefined between parsers) and cannot say which
/// parameter held invalid UTF-8, so the body is read here, once, by RFC 8259's grammar: a key given twice and
/// invalid text are refused naming the parameter; nesting is bounded so no body can exhaust the stack.
struct JSONBody {
    /// A parsed JSON value. Objects below the top level are kept for the dialects' bodies (Replicate's `input`);
    /// no /api/v4 parameter takes one.
    enum Value: Equatable {
        case string(String)
        case number(Double)
        case bool(Bool)
        case null
        case array([Value])
        case object([Member])
    }

    struct Member: Equatable {
        var key: String
        var value: Value
    }

    static let maxDepth = 32

    private let bytes: [UInt8]
    private var i = 0
    /// The top-level key being read, so a problem deep inside a value is reported against its parameter.
    private var currentKey: String?


    private init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The body's members in order, each key once.
    static func parameters(_ bytes: [UInt8]) throws(AtelierError) -> [(key: String, value: Value)] {
        var reader = JSONBody(bytes)
        reader.skipWhitespace()
        guard reader.peek == UInt8(ascii: "{") else {
            throw .malformedBody("the body is not a JSON object of parameters; send e.g. {\"model_id\": \"flux-cute-3d-kawaii\", \"prompt\": \"…\"}")
        }
        let members = try reader.object(depth: 0, topLevel: true)
        reader.skipWhitespace()
        guard reader.i == bytes.count else { throw reader.syntax("nothing may follow the JSON object") }
        return members
    }

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    private func syntax(_ what: String) -> AtelierError {
        .malformedBody("the body is not valid JSON: \(what) (at byte \(i)); send one JSON object of parameters")
    }

    private mutating func skipWhitespace() {
        while let b = peek, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { i += 1 }
    }

    private mutating func expect(_ c: Character) throws(AtelierError) {
        skipWhitespace()
        guard peek == c.asciiValue else { throw syntax("expected '\(c)'") }
        i += 1
    }

    private mutating func object(depth: Int, topLevel: Bool) throws(AtelierError) -> [(key: String, value: Value)] {
        try expect("{")
        var members: [(key: String, value: Value)] = []
        var seen = Set<String>()
        skipWhitespace()
        if peek == UInt8(ascii: "}") { i += 1; return members }
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw syntax("expected a quoted key") }
            let key = try string()
            if topLevel { currentKey = key }
            guard seen.insert(key).inserted else {
                let name = topLevel ? key : currentKey ?? key
                throw .invalid(name, "duplicate_parameter", "\(key) is given twice in the JSON body; send it once")
            }
            try expect(":")
            let v = try value(depth: depth + 1)
            members.append((key, v))
            skipWhitespace()
            if peek == UInt8(ascii: ",") { i += 1; continue }
            try expect("}")
            return members
        }
    }

    private mutating func value(depth: Int) throws(AtelierError) -> Value {
        guard depth <= Self.maxDepth else { throw syntax("values are nested more than \(Self.maxDepth) deep") }
        skipWhitespace()
        switch peek {
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "{"): return .object(try object(depth: depth, topLevel: false).map { Member(key: $0.key, value: $0.value) })
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case let b? where b == UInt8(ascii: "-") || (0x30...0x39).contains(b): return .number(try number())
        default: throw syntax("expected a value")
        }
    }

    private mutating func array(depth: Int) throws(AtelierError) -> Value {
        try expect("[")
        var items: [Value] = []
        skipWhitespace()
        if peek == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            items.append(try value(depth: depth + 1))
            skipWhitespace()
            if peek == UInt8(ascii: ",") { i += 1; continue }
            try expect("]")
            return .array(items)
        }
    }

    private mutating func literal(_ word: String) throws(AtelierError) {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<i + w.count]) == w else { throw syntax("expected \(word)") }
        i += w.count
    }

    /// RFC 8259 §6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    private mutating func number() throws(AtelierError) -> Double {
        let start = i
        func digits() -> Int {
            let s = i
            while let b = peek, (0x30...0x39).contains(b) { i += 1 }
            return i - s
        }
        if peek == UInt8(ascii: "-") { i += 1 }
        if peek == UInt8(ascii: "0") { i += 1 } else if digits() == 0 { throw syntax("expected a digit") }
        if peek == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw syntax("expected a digit after the decimal point") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            i += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw syntax("expected an exponent") }
        }
        // Valid JSON that no double holds (1e400) reads as ±infinity: the parameter's own check then refuses it as
        // out of its range, naming both, as it refuses 1e300.
        guard let d = Double(String(decoding: bytes[start..<i], as: UTF8.self)) else { throw syntax("expected a number") }
        return d
    }

    private func badText(_ why: String) -> AtelierError {
        guard let key = currentKey else { return .malformedBody("a parameter name in the JSON body \(why)") }
        return .invalid(key, "invalid_text", "\(key) \(why)")
    }

    private mutating func string() throws(AtelierError) -> String {
        i += 1  // the opening quote
        var out: [UInt8] = []
        while true {
            guard let b = peek else { throw syntax("a string is not closed") }
            i += 1
            switch b {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else { throw badText("is not valid UTF-8; send it as UTF-8 text") }
                return text
            case UInt8(ascii: "\\"):
                try escape(into: &out)
            case 0..<0x20:
                // Invalid JSON (RFC 8259 §7), but most likely a pasted line break: say which parameter.
                throw badText("holds a raw control character (U+\(String(format: "%04X", b))); JSON strings must escape it, e.g. \\n")
            default:
                out.append(b)
            }
        }
    }

    private mutating func hex4() throws(AtelierError) -> UInt32 {
        guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16) else {
            throw syntax("\\u needs four hex digits")
        }
        i += 4
        return v
    }

    private mutating func escape(into out: inout [UInt8]) throws(AtelierError) {
        guard let e = peek else { throw syntax("a string is not closed") }
        i += 1
        let simple: [UInt8: UInt8] = [0x22: 0x22, 0x5C: 0x5C, 0x2F: 0x2F, 0x62: 0x08, 0x66: 0x0C, 0x6E: 0x0A, 0x72: 0x0D, 0x74: 0x09]
        if let c = simple[e] { out.append(c); return }
        guard e == UInt8(ascii: "u") else { throw syntax("unknown escape \\\(Character(UnicodeScalar(e)))") }
        var code = try hex4()
        if (0xD800...0xDBFF).contains(code) {
            guard peek == UInt8(ascii: "\\"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "u") else {
                throw badText("holds an unpaired UTF-16 surrogate escape; send valid UTF-8 text")
            }
            i += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw badText("holds an unpaired UTF-16 surrogate escape; send valid UTF-8 text") }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(code) {
            throw badText("holds an unpaired UTF-16 surrogate escape; send valid UTF-8 text")
        }
        guard let scalar = Unicode.Scalar(code) else { throw badText("holds an invalid code point escape") }
        out.append(contentsOf: Array(String(Character(scalar)).utf8))
    }
}

extension JSONBody.Value {
    /// The value written back as JSON text (for a parameter kept as text, such as `loras`).
    var jsonText: String {
        switch self {
        case .string(let s):
            let data = (try? JSONSerialization.data(withJSONObject: [s], options: [.fragmentsAllowed])) ?? Data("[\"\"]".utf8)
            return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
        case .bool(let b): return String(b)
        case .null: return "null"
        case .array(let items): return "[" + items.map(\.jsonText).joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.map { JSONBody.Value.string($0.key).jsonText + ":" + $0.value.jsonText }.joined(separator: ",") + "}"
        }
    }
}
