import AsyncHTTPClient
import AtelierCore
import AtelierMetrics
import AtelierS3
import AtelierStorage
import Foundation
import Logging

/// The output and input stores `--storage` names, for one node.
struct ImageStores {
    var outputs: any ImageStorage
    var inputs: any ImageStorage
    /// The cluster's LoRA files and URL index, in the same folder or bucket.
    var loras: any LoRAStore
    /// Set for a bucket: probed at start so a wrong secret or endpoint stops start-up with S3's own reason.
    var client: S3Client?
    var prefix = ""
    /// The bucket's connection pool, shut down by `close` when the node stops.
    var http: HTTPClient?
    /// The bucket's circuit breaker: /readyz reports it, and worker slots claim nothing while it is open.
    var breaker: CircuitBreaker?

    static func open(_ settings: ServeSettings, nodeID: String, metrics: AtelierMetrics, logger: Logger) async throws -> ImageStores {
        switch settings.storage {
        case .folder:
            return ImageStores(outputs: try LocalFolderStorage(root: settings.outputsDirectory),
                               inputs: try LocalFolderStorage(root: settings.inputsDirectory),
                               loras: try FolderLoRAStore(root: settings.outputsDirectory.deletingLastPathComponent().appendingPathComponent("loras")))
        case .s3(_, let prefix):
            guard let location = settings.s3Location, let credentials = settings.credentials else {
                throw SettingError(setting: "--storage", why: "an s3:// store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            }
            let staging = try stagingFolder(settings.stagingDirectory, nodeID: nodeID)
            let limits = settings.storageLimits
            let http = S3Client.makeHTTPClient(limits.deadlines)
            let client = S3Client(location: location, credentials: credentials, http: http, deadlines: limits.deadlines)
            let guarded = StorageGuard.make(failures: limits.breakerFailures, cooldown: .seconds(limits.breakerCooldownSeconds),
                                            metrics: metrics, logger: logger)
            do {
                return ImageStores(
                    outputs: try S3Storage(client: client, prefix: prefix, kind: "outputs", staging: staging.appendingPathComponent("outputs"),
                                           guarded: guarded, logger: logger),
                    inputs: try S3Storage(client: client, prefix: prefix, kind: "inputs", staging: staging.appendingPathComponent("inputs"),
                                          guarded: guarded, logger: logger),
                    loras: S3LoRAStore(client: client, prefix: prefix, guarded: guarded),
                    client: client, prefix: prefix, http: http, breaker: guarded.breaker)
            } catch {
                try? await http.shutdown()
                throw error
            }
        }
    }

    func close() async {
        try? await http?.shutdown()
    }

    /// Reads a key that is not there: 404 means the endpoint, bucket and credentials all work.
    func probe() async throws {
        guard let client else { return }
        _ = try await client.get(key: (prefix.isEmpty ? "" : "\(prefix)/") + ".atelier-probe")
    }

    /// This process's own staging folder, so nodes that share a data folder never touch each other's files.
    /// Folders a killed process left behind are removed once they are a day old (a live node's is never that
    /// old without a write: every image it stages refreshes it).
    static func stagingFolder(_ root: URL, nodeID: String) throws -> URL {
        let files = FileManager.default
        try files.createDirectory(at: root, withIntermediateDirectories: true)
        let dayAgo = Date().addingTimeInterval(-86_400)
        for entry in (try? files.contentsOfDirectory(at: root, includingPropertiesForKeys: [.contentModificationDateKey])) ?? [] {
            let modified = (try? entry.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
            if modified < dayAgo { try? files.removeItem(at: entry) }
        }
        return root.appendingPathComponent(nodeID)
    }
}
