import AtelierCore
import AtelierEngine
import AtelierPersistence
import AtelierStorage
import AtelierTesting
import Foundation
import Synchronization
import Testing

/// The real folder store, except that its first `failures` uploads (and first `deleteFailures` deletes) cannot
/// reach the store, as when the bucket's server is down while the worker finishes (or the sweeper sweeps).
final class UnreachableUploads: ImageStorage {
    let base: LocalFolderStorage
    let failuresLeft: Mutex<Int>
    let deleteFailuresLeft: Mutex<Int>
    init(_ base: LocalFolderStorage, failures: Int, deleteFailures: Int = 0) {
        self.base = base
        failuresLeft = Mutex(failures)
        deleteFailuresLeft = Mutex(deleteFailures)
    }
    /// Throws, as an unreachable store does, while `left` has failures to spend.
    static func failIfLeft(_ left: borrowing Mutex<Int>) throws {
        let fail = left.withLock { n -> Bool in
            guard n > 0 else { return false }
            n -= 1
            return true
        }
        if fail { throw StorageUnavailable("connection refused (test)") }
    }
    func publish(name: String) async throws {
        try Self.failIfLeft(failuresLeft)
        try await base.publish(name: name)
    }
    func newName(format: OutputFormat) -> String { base.newName(format: format) }
    func stagingPath(for name: String) -> String? { base.stagingPath(for: name) }
    func put(name: String, bytes: [UInt8]) async throws { try await base.put(name: name, bytes: bytes) }
    func localCopy(of name: String) async throws -> String { try await base.localCopy(of: name) }
    func releaseLocalCopy(of name: String) { base.releaseLocalCopy(of: name) }
    func localPath(for name: String) -> String? { base.localPath(for: name) }
    func read(name: String, range: ClosedRange<Int>?) async throws -> StoredImage? { try await base.read(name: name, range: range) }
    func presignedURL(for name: String, expires: Int) -> String? { nil }
    func objectKey(for name: String) -> String? { base.objectKey(for: name) }
    func remove(name: String) async { await base.remove(name: name) }
    func probe() async throws { try await base.probe() }
    func delete(name: String) async throws {
        try Self.failIfLeft(deleteFailuresLeft)
        try await base.delete(name: name)
    }
}

extension WorkerSupervisorTests {
    /// Images that cannot be stored are never delivered: the attempt's files are deleted and the run goes back to
    /// the queue; the next attempt stores its own (differently named) images and is charged once.
    @Test func anUploadThatFailsRequeuesTheRunAndTheNextAttemptIsChargedOnce() async throws {
        // Two failures: both tries of the first attempt's first image.
        let (supervisor, sqlite, storage) = try makeSupervisor(mode: "ok", wrapStorage: { UnreachableUploads($0, failures: 2) })
        try await withRunning(supervisor) {
            let (job, done) = try await runToItsEnd(supervisor, sqlite, storage, id: 600_000_000_000_100)
            #expect(done.status == .succeeded && done.attempts == 2, "\(done.status) \(done.attempts) \(String(describing: done.failure))")
            #expect(done.result?.outputs.map(\.name) == job.outputNames(forAttempt: 2))
            #expect(try await sqlite.balance(accountID: job.accountID) == Balance(balance: 0, held: 0))
            for name in job.outputNames(forAttempt: 1) { #expect(!FileManager.default.fileExists(atPath: storage.localPath(for: name)!)) }
            for name in job.outputNames(forAttempt: 2) { #expect(FileManager.default.fileExists(atPath: storage.localPath(for: name)!)) }
        }
    }

    /// A store that stays down: after the last attempt the run fails as storage_unavailable with nothing charged
    /// and no image left behind.
    @Test func aStoreThatStaysDownFailsTheRunWithNothingCharged() async throws {
        let (supervisor, sqlite, storage) = try makeSupervisor(mode: "ok", configure: { $0.maxAttempts = 2 },
                                                               wrapStorage: { UnreachableUploads($0, failures: .max) })
        try await withRunning(supervisor) {
            let (job, done) = try await runToItsEnd(supervisor, sqlite, storage, id: 600_000_000_000_101)
            #expect(done.status == .failed && done.failure?.code == .storageUnavailable, "\(done.status) \(String(describing: done.failure))")
            #expect(try await sqlite.balance(accountID: job.accountID) == Balance(balance: 20, held: 0))
            for attempt in 1...2 {
                for name in job.outputNames(forAttempt: attempt) { #expect(!FileManager.default.fileExists(atPath: storage.localPath(for: name)!)) }
            }
        }
    }
}
