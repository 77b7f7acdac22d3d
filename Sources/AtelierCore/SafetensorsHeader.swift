import Foundation

/// Checks that a file is a well-formed safetensors file before any node stores or loads it: an 8-byte length,
/// a JSON header naming every tensor's dtype, shape and byte range, and the ranges tiling the rest of the file
/// exactly. A pickle (`.bin`, `.ckpt`, `.pt`) fails the first test and is never unpickled anywhere; a header that
/// lies about its sizes (ranges that overlap, leave holes, run past the end or disagree with a shape) fails the
/// last. Pure: it reads the bytes it is given.
public struct SafetensorsHeader: Sendable, Equatable {
    /// Tensor names, sorted.
    public var tensors: [String]
    /// Bytes before the first tensor's data (8 + the header's length).
    public var dataStart: Int

    /// The largest header read (safetensors' own limit is 100 MB).
    public static let maxHeaderBytes = 100_000_000

    static let dtypeBytes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
    ]

    /// How many leading bytes `parse` needs: the length prefix first, then 8 + that length.
    public static func headerLength(_ first8: [UInt8]) -> Int? {
        guard first8.count >= 8 else { return nil }
        var n: UInt64 = 0
        for i in (0..<8).reversed() { n = n << 8 | UInt64(first8[i]) }
        return n <= UInt64(maxHeaderBytes) ? Int(n) : nil
    }

    /// `prefix`: at least the file's first 8 + header-length bytes; `fileSize`: the whole file's length.
    public static func parse(_ prefix: [UInt8], fileSize: Int) throws(LoRAFileProblem) -> SafetensorsHeader {
        let notSafetensors = LoRAFileProblem.notSafetensors(
            "it is not a safetensors file (a .bin, .ckpt or .pt pickle is never loaded: convert it to .safetensors)")
        guard let n = headerLength(prefix), n >= 2, 8 + n <= fileSize, prefix.count >= 8 + n else { throw notSafetensors }
        guard prefix[8] == UInt8(ascii: "{"),
              let object = try? JSONSerialization.jsonObject(with: Data(prefix[8..<(8 + n)])) as? [String: Any] else {
            throw notSafetensors
        }
        var ranges: [(start: Int, end: Int, name: String)] = []
        for (name, value) in object where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String, let size = dtypeBytes[dtype],
                  let shape = info["shape"] as? [Int], shape.allSatisfy({ $0 >= 0 }),
                  let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw .lyingHeader("tensor \"\(name.prefix(120))\" has no valid dtype, shape and data_offsets")
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let (m, o) = acc.0.multipliedReportingOverflow(by: d)
                return (m, acc.1 || o)
            }
            guard !overflow, offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] - offsets[0] == count * size else {
                throw .lyingHeader("tensor \"\(name.prefix(120))\" claims \(shape) of \(dtype) but a byte range of \(offsets)")
            }
            ranges.append((offsets[0], offsets[1], name))
        }
        guard !ranges.isEmpty else { throw .lyingHeader("its header lists no tensors") }
        ranges.sort { ($0.start, $0.end) < ($1.start, $1.end) }
        var expected = 0
        for r in ranges {
            guard r.start == expected else {
                throw .lyingHeader("tensor \"\(r.name.prefix(120))\" starts at byte \(r.start) of the data, where \(expected) was expected (overlapping or missing data)")
            }
            expected = r.end
        }
        guard 8 + n + expected == fileSize else {
            throw .lyingHeader("its header accounts for \(8 + n + expected) bytes but the file has \(fileSize)")
        }
        return SafetensorsHeader(tensors: ranges.map(\.name).sorted(), dataStart: 8 + n)
    }
}

/// Why a LoRA file cannot be used. Each ends the run (nothing charged) with a failure code and a message that
/// names the parameter (`LoRAFileProblem.failure(parameter:)`).
public enum LoRAFileProblem: Error, Sendable, Equatable {
    /// The address was refused (the outbound policy, on any hop), did not answer, or answered other than 200.
    case unavailable(String)
    case notSafetensors(String)
    case lyingHeader(String)
    case tooLarge(limit: Int)

    public var code: RunFailureCode {
        switch self {
        case .unavailable: RunFailureCode.loraUnavailable
        case .notSafetensors, .lyingHeader, .tooLarge: RunFailureCode.loraInvalid
        }
    }

    public var reason: String {
        switch self {
        case .unavailable(let why), .notSafetensors(let why): why
        case .lyingHeader(let why): "its safetensors header does not match the file: \(why)"
        case .tooLarge(let limit): "it is larger than the limit of \(limit) bytes (--lora-max-bytes)"
        }
    }

    public func failure(parameter: String) -> JobFailure {
        JobFailure(code: code, message: "\(parameter): the LoRA cannot be used: \(reason)")
    }
}
