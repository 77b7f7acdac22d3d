import AtelierCore
import Foundation

/// Outputs in one local folder, named by 128 random bits in hex. A name is accepted only if it has exactly that
/// shape, so `..`, encoded traversal, slashes and absolute paths never reach the file system.
public struct LocalFolderStorage: OutputStorage {
    public let root: URL

    public init(root: URL) throws {
        self.root = root.standardizedFileURL
        try FileManager.default.createDirectory(at: self.root, withIntermediateDirectories: true)
    }

    public func newName(format: OutputFormat) -> String {
        var rng = SystemRandomNumberGenerator()
        let hex = (0..<2).map { _ in String(rng.next() as UInt64, radix: 16) }
            .map { String(repeating: "0", count: 16 - $0.count) + $0 }.joined()
        return "\(hex).\(format.fileExtension)"
    }

    public func localPath(for name: String) -> String? {
        guard Self.isValidName(name) else { return nil }
        return root.appendingPathComponent(name).path
    }

    public func remove(name: String) {
        if let path = localPath(for: name) { try? FileManager.default.removeItem(atPath: path) }
    }

    public static func isValidName(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 32, OutputFormat(rawValue: String(parts[1])) != nil else { return false }
        return parts[0].allSatisfy { $0.isHexDigit && ($0.isNumber || $0.isLowercase) }
    }
}
