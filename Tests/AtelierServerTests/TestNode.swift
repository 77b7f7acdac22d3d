import AtelierCore
import AtelierServer
import AtelierTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore

/// The real application, built by `buildApplication` as `atelier serve` builds it, on a temporary SQLite file and
/// output folder, with the stand-in worker (contracts/fake_worker) in place of the diffusers one: every layer from
/// the router to the store and the worker protocol is the production code, and no socket is opened.
struct TestNode {
    let node: AtelierNode
    let key: APIKey
    let accountID: Int64
    let directory: URL

    /// The repository's catalog (`models/`): the production profile, so no tiny model is built.
    static func make(workerMode: String = "ok", credit: Int64 = 1_000, configure: (inout ServeSettings) -> Void = { _ in }) async throws -> TestNode {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("atelier-node-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // The worker's mode travels in its own launcher, so nodes of different modes can run in one test process.
        let python = directory.appendingPathComponent("python")
        try "#!/bin/sh\nFAKE_WORKER_MODE=\(workerMode) exec /usr/bin/python3 \"$@\"\n".write(to: python, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: python.path)
        var settings = ServeSettings()
        settings.profile = .production
        settings.dataDirectory = directory.path
        settings.modelsDirectory = RepositoryCatalog.modelsDirectory.path
        settings.python = python.path
        settings.workerDirectory = try FakeWorkerPackage.write().path
        settings.metricsEnabled = false
        settings.port = 0
        settings.workerReadyTimeoutSeconds = 30
        configure(&settings)
        var logger = Logger(label: "test-node")
        logger.logLevel = .warning
        let node = try await buildApplication(settings, logger: logger)
        let account = try await node.store.ensureAccount(named: "t")
        _ = try await node.store.addCredit(accountID: account, amount: credit, kind: .credit, reason: "test", now: Date())
        let key = APIKey.generate()
        try await node.store.addKey(key, accountID: account)
        return TestNode(node: node, key: key, accountID: account, directory: directory)
    }

    /// Runs `body` against the application's router, with its services (the workers) running.
    func test<Value: Sendable>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
        try await node.application.test(.router, body)
    }

    var bearer: HTTPFields { [.authorization: "Bearer \(key.plaintext)", .contentType: "application/json"] }

    func available() async throws -> Int64 { try await node.store.balance(accountID: accountID).available }
}

func json(_ buffer: ByteBuffer) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any] ?? [:]
}

func body(_ object: [String: Any]) throws -> ByteBuffer {
    ByteBuffer(data: try JSONSerialization.data(withJSONObject: object))
}
