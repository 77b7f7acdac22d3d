import Foundation

/// The stand-in worker (contracts/fake_worker, a real Python file checked against the protocol fixtures by
/// worker/tests/test_fake_worker.py), copied to a temporary folder for the supervisor's unit tests: it speaks the
/// real protocol without loading any model, so crashes, hangs and missing weights are cheap and exact. Its modes
/// (`FAKE_WORKER_MODE`: ok, slow, hang, die, die-once, weights-missing, config-invalid) are described in the file.
public enum FakeWorkerPackage {
    public static let source = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("contracts/fake_worker/atelier_worker")

    /// A folder to put on `PYTHONPATH`: `python -m atelier_worker` then runs the fake.
    public static func write() throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("fake-worker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: source, to: root.appendingPathComponent("atelier_worker"))
        return root
    }
}
