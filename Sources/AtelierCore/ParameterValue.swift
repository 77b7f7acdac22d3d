/// A request parameter as it arrived, before typing. Form and multipart bodies carry only strings ("28", "true",
/// "" for a random seed); JSON may carry numbers and booleans. One decoder (`RunRequestDecoder`) types all three,
/// so every rule is written once.
public enum ParameterValue: Sendable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    /// A multipart file part (used by the image inputs of a later issue).
    case file(bytes: [UInt8], filename: String?, contentType: String?)

    /// How the value is quoted back in an error message.
    public var display: String {
        switch self {
        case .string(let s): "\"\(s)\""
        case .number(let d) where !d.isFinite: d > 0 ? "a number beyond any (over 1.8e308)" : "a number beyond any (under -1.8e308)"
        case .number(let d): d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
        case .bool(let b): String(b)
        case .null: "null"
        case .file(let bytes, let name, _): "a file (\(name ?? "unnamed"), \(bytes.count) bytes)"
        }
    }
}
