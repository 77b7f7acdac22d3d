import AsyncHTTPClient
import AtelierCore
import AtelierS3
import AtelierStorage
import Foundation
import Logging
import NIOCore
import Testing

/// The stores every image test runs against: the same tests prove both implementations.
enum StorageBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case folder
    case s3
    var testDescription: String { rawValue }
}

/// The S3 peer `make test` starts (scripts/test-s3.sh: rclone serve s3, which checks signatures). Without its
/// variables the S3 cases fail, never skip.
enum TestBucket {
    static func location(endpoint: String? = nil) throws -> (S3Location, AWSCredentials) {
        let env = ProcessInfo.processInfo.environment
        guard let url = endpoint ?? env["ATELIER_TEST_S3_ENDPOINT"], let bucket = env["ATELIER_TEST_S3_BUCKET"],
              let key = env["ATELIER_TEST_S3_KEY"], let secret = env["ATELIER_TEST_S3_SECRET"] else {
            throw TestSetupError("ATELIER_TEST_S3_ENDPOINT, _BUCKET, _KEY and _SECRET are not set: run the tests with `make test`, which starts the S3 peer (scripts/test-s3.sh)")
        }
        return (S3Location(endpoint: URL(string: url)!, bucket: bucket, region: "us-east-1", addressing: .path),
                AWSCredentials(accessKeyID: key, secretAccessKey: secret))
    }

    static func storage(kind: String = "outputs", secret: String? = nil, endpoint: String? = nil, attempts: Int = 4,
                        timeout: Duration = .seconds(5), guarded: StorageGuard? = nil) throws -> S3Storage {
        var (location, credentials) = try location(endpoint: endpoint)
        if let secret { credentials.secretAccessKey = secret }
        if endpoint != nil { location.endpoint = URL(string: endpoint!)! }
        var client = S3Client(location: location, credentials: credentials, http: S3StorageTests.http)
        client.deadlines.attempts = attempts
        client.deadlines.firstBackoff = .milliseconds(10)
        client.deadlines.request = timeout
        return try S3Storage(client: client, prefix: "conformance-\(UUID().uuidString.prefix(8))", kind: kind,
                             staging: temporaryFolder(), guarded: guarded ?? StorageGuard(breaker: CircuitBreaker(failures: 3, cooldown: .seconds(5))),
                             logger: Logger(label: "test"))
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func temporaryFolder() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("atelier-images-\(UUID().uuidString)")
}

func makeStorage(_ backend: StorageBackend) throws -> any ImageStorage {
    switch backend {
    case .folder: try LocalFolderStorage(root: temporaryFolder())
    case .s3: try TestBucket.storage()
    }
}

func readAll(_ storage: any ImageStorage, _ name: String, range: ClosedRange<Int>? = nil) async throws -> [UInt8]? {
    guard let image = try await storage.read(name: name, range: range) else { return nil }
    var bytes: [UInt8] = []
    for try await chunk in image.chunks { bytes += chunk }
    return bytes
}

@Suite struct ImageStorageConformanceTests {
    static let bytes: [UInt8] = (0..<70_000).map { UInt8($0 % 251) }

    @Test(arguments: StorageBackend.allCases)
    func aStagedImageIsReadableOnceItIsPublished(_ backend: StorageBackend) async throws {
        let storage = try makeStorage(backend)
        let name = storage.newName(format: .webp)
        let staged = try #require(storage.stagingPath(for: name))
        try Data(Self.bytes).write(to: URL(fileURLWithPath: staged))
        try await storage.publish(name: name)
        #expect(try await readAll(storage, name) == Self.bytes)
        let copy = try await storage.localCopy(of: name)
        #expect(FileManager.default.contents(atPath: copy).map(Array.init) == Self.bytes)
        storage.releaseLocalCopy(of: name)
        #expect(try await readAll(storage, name) == Self.bytes)  // releasing a copy never deletes the image
        // A bucket's staged file is gone once uploaded; a folder's staged file is the image.
        #expect(FileManager.default.fileExists(atPath: staged) == (backend == .folder))
    }

    @Test(arguments: StorageBackend.allCases)
    func putAndARangeRead(_ backend: StorageBackend) async throws {
        let storage = try makeStorage(backend)
        let name = storage.newName(format: .png)
        try await storage.put(name: name, bytes: Self.bytes)
        let image = try #require(try await storage.read(name: name, range: 10...19))
        #expect(image.contentRange == "bytes 10-19/\(Self.bytes.count)")
        #expect(try await readAll(storage, name, range: 10...19) == Array(Self.bytes[10...19]))
        #expect(try await readAll(storage, name, range: 69_990...(Int.max / 2)) == Array(Self.bytes[69_990...]))
    }

    @Test(arguments: StorageBackend.allCases)
    func missingImagesAndRemoval(_ backend: StorageBackend) async throws {
        let storage = try makeStorage(backend)
        let name = storage.newName(format: .jpg)
        #expect(try await storage.read(name: name, range: nil) == nil)
        await #expect(throws: ImageMissing.self) { _ = try await storage.localCopy(of: name) }
        await #expect(throws: ImageMissing.self) { try await storage.publish(name: name) }  // nothing staged
        try await storage.put(name: name, bytes: [1, 2, 3])
        await storage.remove(name: name)
        #expect(try await storage.read(name: name, range: nil) == nil)
        await storage.remove(name: name)  // removing what is gone is fine
    }

    @Test(arguments: StorageBackend.allCases)
    func onlyImageNamesReachTheStore(_ backend: StorageBackend) async throws {
        let storage = try makeStorage(backend)
        for bad in ["../x.png", "a/b.png", "0123456789abcdef0123456789abcdef.exe", "0123456789ABCDEF0123456789abcdef.png", ""] {
            #expect(storage.stagingPath(for: bad) == nil && storage.objectKey(for: bad) == nil)
            #expect(try await storage.read(name: bad, range: nil) == nil)
        }
        let name = storage.newName(format: .png)
        #expect(storage.objectKey(for: name)?.hasSuffix("outputs/\(name)") == true || storage.objectKey(for: name) == name)
    }
}

/// What only a bucket does: presigned URLs, and refusing what it should refuse.
@Suite struct S3StorageTests {
    /// One pool for the whole test process (never shut down: it lives as long as the process).
    static let http = S3Client.makeHTTPClient()

    func fetch(_ url: String) async throws -> (Int, [UInt8]) {
        let response = try await Self.http.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        return (Int(response.status.code), Array(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    @Test func aPresignedURLFetchesTheImageWithoutCredentialsAndATamperedOneIsRefused() async throws {
        let storage = try TestBucket.storage()
        let name = storage.newName(format: .png)
        try await storage.put(name: name, bytes: [9, 8, 7])
        let url = try #require(storage.presignedURL(for: name, expires: 60))
        let (status, body) = try await fetch(url)
        #expect(status == 200 && body == [9, 8, 7])
        let other = storage.newName(format: .png)
        try await storage.put(name: other, bytes: [1])
        // Another object's key with this signature, or a longer expiry: the peer recomputes the signature and refuses.
        #expect(try await fetch(url.replacingOccurrences(of: name, with: other)).0 == 403)
        #expect(try await fetch(url.replacingOccurrences(of: "X-Amz-Expires=60", with: "X-Amz-Expires=6000")).0 == 403)
    }

    @Test func headGivesTheSizeOrNothing() async throws {
        let storage = try TestBucket.storage()
        let name = storage.newName(format: .png)
        let key = try #require(storage.objectKey(for: name))
        #expect(try await storage.client.head(key: key) == nil)
        try await storage.put(name: name, bytes: [1, 2, 3, 4, 5])
        #expect(try await storage.client.head(key: key) == 5)
    }

    @Test func aWrongSecretIsRefusedByThePeer() async throws {
        let storage = try TestBucket.storage(secret: "not-the-secret")
        let error = await #expect(throws: StorageUnavailable.self) {
            try await storage.put(name: storage.newName(format: .png), bytes: [1])
        }
        #expect(error?.reason.contains("SignatureDoesNotMatch") == true || error?.reason.contains("403") == true)
        #expect(error?.reason.contains("not-the-secret") == false)
    }

    @Test func anUnreachablePeerIsUnavailableAfterTheRetries() async throws {
        let storage = try TestBucket.storage(endpoint: "http://127.0.0.1:9", attempts: 2)
        let error = await #expect(throws: StorageUnavailable.self) {
            _ = try await storage.read(name: storage.newName(format: .png), range: nil)
        }
        #expect(error?.reason.contains("failed 2 times") == true)
    }
}
