import AtelierHTTP
import AtelierS3
import AtelierStorage
import Foundation

extension ServeSettings {
    /// `--storage`, the S3 settings and `--output-urls`, checked together: a bucket needs credentials, presigned
    /// URLs need a bucket, a public base needs its URL.
    mutating func resolveStorage(
        flags: Flags, environment: [String: String],
        pick: (String?, String) -> (value: String, name: String)?,
        int: (String?, String, ClosedRange<Int>, Int) throws(SettingError) -> Int
    ) throws(SettingError) {
        if let (v, name) = pick(flags.storage, "STORAGE") {
            do { storageLocation = try StorageLocation.parse(v) } catch { throw SettingError(setting: name, why: error.why) }
        }
        if let (v, name) = pick(flags.s3Endpoint, "S3_ENDPOINT") {
            guard let url = URL(string: v), ["http", "https"].contains(url.scheme ?? ""), url.host != nil, url.path.isEmpty || url.path == "/" else {
                throw SettingError(setting: name, why: "must be an http(s) URL without a path, such as http://127.0.0.1:9000 or https://s3.eu-west-1.amazonaws.com; got \"\(v)\"")
            }
            s3Endpoint = url
        }
        if let (v, name) = pick(flags.s3Region, "S3_REGION") ?? environment["AWS_REGION"].flatMap({ $0.isEmpty ? nil : ($0, "AWS_REGION") }) {
            guard !v.isEmpty, v.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
                throw SettingError(setting: name, why: "must be a region name such as us-east-1; got \"\(v)\"")
            }
            s3Region = v
        }
        if let (v, name) = pick(flags.s3Addressing, "S3_ADDRESSING") {
            guard let a = S3Location.Addressing(rawValue: v) else {
                throw SettingError(setting: name, why: "must be path or virtual-host; got \"\(v)\"")
            }
            s3Addressing = a
        }
        if case .s3 = storage {
            guard let c = AWSCredentials.fromEnvironment(environment) else {
                throw SettingError(setting: "--storage", why: "an s3:// store needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones)")
            }
            credentials = c
        }
        storageLimits = try StorageLimits.resolve(flags, int: int)
        let expiry = try int(flags.presignExpiry, "PRESIGN_EXPIRY", 1...604_800, 900)
        if let (v, name) = pick(flags.outputURLs, "OUTPUT_URLS") {
            switch v {
            case "proxy": outputURLs = .proxy
            case "presigned":
                guard case .s3 = storage else {
                    throw SettingError(setting: name, why: "presigned needs an s3:// --storage; a folder is served through the API (proxy)")
                }
                outputURLs = .presigned(expires: expiry)
            case "public":
                guard let (u, uname) = pick(flags.outputPublicURL, "OUTPUT_PUBLIC_URL") else {
                    throw SettingError(setting: name, why: "public needs --output-public-url, the CDN or public bucket URL that serves the store's objects")
                }
                guard let url = URL(string: u), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                    throw SettingError(setting: uname, why: "must be an http(s) URL such as https://cdn.example.com; got \"\(u)\"")
                }
                outputURLs = .publicBase(u.hasSuffix("/") ? String(u.dropLast()) : u)
            default:
                throw SettingError(setting: name, why: "must be proxy, presigned or public; got \"\(v)\"")
            }
        }
    }

    /// The bucket as the S3 client addresses it.
    public var s3Location: S3Location? {
        guard case .s3(let bucket, _) = storage else { return nil }
        let endpoint = s3Endpoint ?? URL(string: "https://s3.\(s3Region).amazonaws.com")!
        return S3Location(endpoint: endpoint, bucket: bucket, region: s3Region,
                          addressing: s3Addressing ?? (s3Endpoint == nil ? .virtualHost : .path))
    }
}

/// How long a call to the bucket may take and what happens when it keeps failing; every value is a flag and an
/// `ATELIER_…` variable (docs/operations.md).
public struct StorageLimits: Sendable, Equatable {
    /// Seconds for an answer to a call without a body, and the longest silence while one streams.
    public var timeoutSeconds = 5
    public var connectTimeoutSeconds = 2
    /// The slowest upload accepted, in kB/s: a PUT may take the timeout plus its size at this rate.
    public var minimumRateKB = 1_000
    /// Tries per call for failures that come fast (refused connections, 5xx); a timeout is not retried at once.
    public var attempts = 3
    /// Failed calls in a row that open the breaker, and the seconds it then refuses calls before one trial.
    public var breakerFailures = 3
    public var breakerCooldownSeconds = 5

    public var deadlines: S3Deadlines {
        var d = S3Deadlines()
        d.request = .seconds(timeoutSeconds)
        d.connect = .seconds(connectTimeoutSeconds)
        d.minimumRate = minimumRateKB * 1_000
        d.attempts = attempts
        return d
    }

    static func resolve(
        _ flags: ServeSettings.Flags, int: (String?, String, ClosedRange<Int>, Int) throws(SettingError) -> Int
    ) throws(SettingError) -> StorageLimits {
        var limits = StorageLimits()
        let table: [(WritableKeyPath<StorageLimits, Int>, String?, String, ClosedRange<Int>)] = [
            (\.timeoutSeconds, flags.storageTimeout, "STORAGE_TIMEOUT", 1...300),
            (\.connectTimeoutSeconds, flags.storageConnectTimeout, "STORAGE_CONNECT_TIMEOUT", 1...60),
            (\.minimumRateKB, flags.storageMinRate, "STORAGE_MIN_RATE", 1...10_000_000),
            (\.attempts, flags.storageAttempts, "STORAGE_ATTEMPTS", 1...10),
            (\.breakerFailures, flags.storageBreakerFailures, "STORAGE_BREAKER_FAILURES", 1...1_000),
            (\.breakerCooldownSeconds, flags.storageBreakerCooldown, "STORAGE_BREAKER_COOLDOWN", 1...3_600),
        ]
        for (setting, flag, env, range) in table {
            limits[keyPath: setting] = try int(flag, env, range, limits[keyPath: setting])
        }
        return limits
    }
}
