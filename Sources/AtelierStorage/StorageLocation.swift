import Foundation

/// What `--storage` names: a folder (`file:PATH`, the default `./data`) or a bucket (`s3://BUCKET[/PREFIX]`).
public enum StorageLocation: Sendable, Equatable {
    case folder(path: String)
    case s3(bucket: String, prefix: String)

    public struct Invalid: Error, Sendable {
        public let why: String
    }

    public static func parse(_ text: String) throws(Invalid) -> StorageLocation {
        if text.hasPrefix("file:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw Invalid(why: "file: needs a folder, as in file:./data or file:/srv/atelier") }
            return .folder(path: path)
        }
        if text.hasPrefix("s3://") {
            let rest = text.dropFirst(5)
            let parts = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let bucket = String(parts[0])
            // S3's bucket naming rules: 3–63 lowercase letters, digits, dots and hyphens, starting and ending alphanumeric.
            let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-")
            guard (3...63).contains(bucket.count), bucket.allSatisfy(allowed.contains),
                  bucket.first!.isLetter || bucket.first!.isNumber, bucket.last!.isLetter || bucket.last!.isNumber else {
                throw Invalid(why: "\"\(bucket)\" is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens); write s3://BUCKET or s3://BUCKET/PREFIX")
            }
            let prefix = parts.count > 1 ? parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "/")) : ""
            guard !prefix.contains("//"), !prefix.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else {
                throw Invalid(why: "the prefix \"\(prefix)\" has empty, . or .. segments")
            }
            return .s3(bucket: bucket, prefix: prefix)
        }
        throw Invalid(why: "must be file:PATH or s3://BUCKET[/PREFIX]; got \"\(text)\"")
    }

    public var summary: String {
        switch self {
        case .folder(let path): "folder \(path)"
        case .s3(let bucket, let prefix): "S3 bucket \(bucket)" + (prefix.isEmpty ? "" : ", prefix \(prefix)/")
        }
    }
}
