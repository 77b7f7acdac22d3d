import Foundation

/// Collects problems while typing values; each accessor returns nil after recording a problem.
public struct Problems: Sendable {
    public internal(set) var items: [ParameterProblem] = []
    public init() {}

    mutating func add(_ param: String, _ code: String, _ message: String) {
        items.append(ParameterProblem(param: param, code: code, message: message))
    }

    /// Absent, JSON null and (for optional parameters) the empty string all mean "use the default".
    private func present(_ values: [String: ParameterValue], _ name: String) -> ParameterValue? {
        guard let v = values[name], v != .null else { return nil }
        return v
    }

    mutating func string(_ values: [String: ParameterValue], _ name: String, required: Bool = false) -> String? {
        guard let v = present(values, name) else {
            if required { add(name, "required", "\(name) is required") }
            return nil
        }
        if case .string(let s) = v {
            if required && s.isEmpty { add(name, "required", "\(name) is required and must not be empty"); return nil }
            return s
        }
        add(name, "invalid_type", "\(name) must be a string; got \(v.display)")
        return nil
    }

    mutating func choice(_ values: [String: ParameterValue], _ name: String, _ allowed: [String], aliases: [String: String] = [:], default def: String?, required: Bool = false) -> String? {
        guard let v = present(values, name), v != .string("") || required else {
            if required { add(name, "required", "\(name) is required; one of \(allowed.joined(separator: ", "))") }
            return def
        }
        var text: String?
        switch v {
        case .string(let s): text = s
        case .number: text = v.display  // megapixels: 1 or 0.25 sent as a JSON number
        default: text = nil
        }
        if let t = text {
            if allowed.contains(t) { return t }
            // Case-insensitive and alias spellings (JPEG, jpeg → jpg).
            if let hit = allowed.first(where: { $0.lowercased() == t.lowercased() }) { return hit }
            if let target = aliases[t.lowercased()], allowed.contains(target) { return target }
        }
        if case .number(let d) = v, allowed.contains(String(d)) { return String(d) }
        let accepted = aliases.isEmpty ? "" : " (\(aliases.keys.sorted().joined(separator: ", ")) \(aliases.count == 1 ? "is" : "are") accepted)"
        add(name, "invalid_choice", "\(name) must be one of \(allowed.joined(separator: ", "))\(accepted); got \(v.display)")
        return nil
    }

    mutating func integer(_ values: [String: ParameterValue], _ name: String, range: ClosedRange<Int>, default def: Int?) -> Int? {
        guard let v = present(values, name), v != .string("") else { return def }
        var parsed: Int?
        switch v {
        case .number(let d) where !d.isFinite || (d == d.rounded() && abs(d) >= 1e15):
            add(name, "out_of_range", "\(name) must be from \(range.lowerBound) to \(range.upperBound); got \(v.display)")
            return nil
        case .number(let d) where d == d.rounded(): parsed = Int(d)
        case .string(let s): parsed = NumberText.integer(s)
        default: parsed = nil
        }
        guard let n = parsed else {
            add(name, "invalid_type", "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound); got \(v.display)")
            return nil
        }
        guard range.contains(n) else {
            add(name, "out_of_range", "\(name) must be from \(range.lowerBound) to \(range.upperBound); got \(n)")
            return nil
        }
        return n
    }

    mutating func number(_ values: [String: ParameterValue], _ name: String, range: ClosedRange<Double>, default def: Double?) -> Double? {
        guard let v = present(values, name), v != .string("") else { return def }
        var parsed: Double?
        switch v {
        case .number(let d): parsed = d
        case .string(let s): parsed = NumberText.decimal(s)
        default: parsed = nil
        }
        guard let x = parsed, !x.isNaN else {
            add(name, "invalid_type", "\(name) must be a number from \(Self.format(range.lowerBound)) to \(Self.format(range.upperBound)); got \(v.display)")
            return nil
        }
        // ±infinity (a JSON number beyond any double, 1e400) is out of every range.
        guard x.isFinite, range.contains(x) else {
            add(name, "out_of_range", "\(name) must be from \(Self.format(range.lowerBound)) to \(Self.format(range.upperBound)); got \(x.isFinite ? Self.format(x) : v.display)")
            return nil
        }
        return x
    }

    mutating func boolean(_ values: [String: ParameterValue], _ name: String, default def: Bool?) -> Bool? {
        guard let v = present(values, name), v != .string("") else { return def }
        switch v {
        case .bool(let b): return b
        case .number(let d) where d == 0 || d == 1: return d == 1
        case .string(let s):
            // The documented spellings, and Python's str(True)/str(False) that form clients send.
            switch s {
            case "true", "True", "1": return true
            case "false", "False", "0": return false
            default: break
            }
        default: break
        }
        add(name, "invalid_type", "\(name) must be true or false; got \(v.display)")
        return nil
    }

    /// nil: invalid (recorded); .some(nil): random; .some(n): that seed.
    mutating func seed(_ values: [String: ParameterValue]) -> UInt64?? {
        guard let v = present(values, "seed"), v != .string("") else { return .some(nil) }
        var parsed: UInt64?
        switch v {
        case .number(let d) where d >= 0 && d == d.rounded() && d <= Double(RunRequest.maxSeed): parsed = UInt64(d)
        case .string(let s) where !s.isEmpty && s.utf8.allSatisfy({ (0x30...0x39).contains($0) }): parsed = UInt64(s)
        default: parsed = nil
        }
        guard let n = parsed, n <= RunRequest.maxSeed else {
            add("seed", "invalid_seed", "seed must be an integer from 0 to \(RunRequest.maxSeed), or \"\" for a random seed; got \(v.display)")
            return nil
        }
        return .some(n)
    }

    public static func format(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
    }
}

/// The one grammar of numbers sent as text (form and multipart send nothing else), as the OpenAPI document's
/// patterns state it: `-?digits` with `.0…` allowed for integers and `.digits` for numbers; no spaces, signs,
/// exponents or words ("1e3", " 28", "+5", "inf" are refused, not guessed at).
public enum NumberText {
    /// The integer `s` spells (`28`, `-3`, `28.0`), or nil.
    public static func integer(_ s: String) -> Int? {
        let (whole, fraction) = split(s)
        guard whole, fraction.allSatisfy({ $0 == 0x30 }) else { return nil }
        return Int(s.split(separator: ".", omittingEmptySubsequences: false)[0])
    }

    /// The number `s` spells (`2.5`, `-1`), or nil.
    public static func decimal(_ s: String) -> Double? {
        split(s).whole ? Double(s) : nil
    }

    /// Whether the part before any "." is `-?digits`, and the digits after it (nil-free: empty when there is no
    /// "."; a "." with no digits after it makes `whole` false).
    private static func split(_ s: String) -> (whole: Bool, fraction: [UInt8]) {
        var bytes = Array(s.utf8)
        if bytes.first == 0x2D { bytes.removeFirst() }
        let dot = bytes.firstIndex(of: 0x2E)
        let integer = dot.map { Array(bytes[..<$0]) } ?? bytes
        let fraction = dot.map { Array(bytes[($0 + 1)...]) } ?? []
        let digits: ([UInt8]) -> Bool = { $0.allSatisfy { (0x30...0x39).contains($0) } }
        let ok = !integer.isEmpty && digits(integer) && (dot == nil || (!fraction.isEmpty && digits(fraction)))
        return (ok, fraction)
    }
}
