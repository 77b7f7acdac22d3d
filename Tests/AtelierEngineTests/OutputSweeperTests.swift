import AtelierCore
import AtelierEngine
import AtelierPersistence
import AtelierStorage
import Foundation
import Logging
import Synchronization
import Testing

/// A wall clock a test sets.
final class SetClock: WallClock {
    let time: Mutex<Date>
    init(_ date: Date) { time = Mutex(date) }
    func now() -> Date { time.withLock { $0 } }
    func set(_ date: Date) { time.withLock { $0 = date } }
}

/// The retention sweeper on the real SQLite store and folder store (PostgreSQL's half of the store protocol is in
/// the conformance suite; both backends run end to end in tests/e2e/test_output_retention.py).
@Suite struct OutputSweeperTests {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweeper-\(UUID().uuidString)")
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    /// A succeeded run with `images` stored images, finished at `finished`.
    func succeeded(_ store: SQLiteStore, _ storage: LocalFolderStorage, id: Int64, finished: Date, images: Int = 2) async throws -> Job {
        let account = try await store.ensureAccount(named: "a")
        let request = RunRequest(
            modelID: "m", prompt: "p", aspectRatio: "1:1", megapixels: "1", size: .init(width: 8, height: 8),
            numOutputs: images, numInferenceSteps: 1, guidance: 3, seed: 1, outputFormat: .webp, outputQuality: 80,
            loraScale: 1, goFast: false, promptStrength: 0.8, disableSafetyChecker: false)
        let names = (0..<images).map { _ in storage.newName(format: .webp) }
        _ = try await store.addCredit(accountID: account, amount: 100, kind: .credit, reason: "test", now: finished)
        try await store.insert(Job(id: id, accountID: account, request: request, outputNames: names, pricePerImage: 5, createdAt: finished))
        let claimed = try #require(try await store.claimNext(now: finished, lease: 60))
        for name in names { try Data("image".utf8).write(to: URL(fileURLWithPath: storage.localPath(for: name)!)) }
        let outputs = names.map { JobOutput(name: $0, seed: 1, width: 8, height: 8, bytes: 5) }
        #expect(try await store.complete(id: id, attempt: claimed.attempts,
                                         result: JobResult(outputs: outputs, path: "standard", pathReason: "", inferenceMs: 1, encodeMs: 1),
                                         now: finished))
        return try #require(try await store.job(id: id))
    }

    func stored(_ storage: LocalFolderStorage, _ job: Job) -> [Bool] {
        (job.result?.outputs ?? []).map { FileManager.default.fileExists(atPath: storage.localPath(for: $0.name)!) }
    }

    @Test func imagesOlderThanTheRetentionAreDeletedAndTheRunIsMarkedOnce() async throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try SQLiteStore(path: dir.appendingPathComponent("db.sqlite").path)
        let storage = try LocalFolderStorage(root: dir.appendingPathComponent("outputs"))
        let old = try await succeeded(store, storage, id: 700_000_000_000_001, finished: start)
        let young = try await succeeded(store, storage, id: 700_000_000_000_002, finished: start.addingTimeInterval(3_000))
        let clock = SetClock(start.addingTimeInterval(3_700))  // old is 3700 s old, young 700 s: retention 1 h
        let sweeper = OutputSweeper(store: store, storage: storage, retention: .seconds(3_600), wallClock: clock, logger: Logger(label: "test"))
        let ledger = try await store.ledger(accountID: old.accountID)
        #expect(ledger.filter { $0.kind == .capture }.map(\.amount) == [10, 10])

        #expect(await sweeper.sweepOnce() == .init(runs: 1, images: 2, complete: true))
        #expect(stored(storage, old) == [false, false] && stored(storage, young) == [true, true])
        let expired = try #require(try await store.job(id: old.id))
        #expect(expired.outputsExpiredAt == clock.now() && expired.status == .succeeded && expired.result == old.result)
        #expect(try await store.job(id: young.id)?.outputsExpiredAt == nil)
        // A second sweep has nothing to do; the young run goes when it is due.
        #expect(await sweeper.sweepOnce() == .init(runs: 0, images: 0, complete: true))
        clock.set(start.addingTimeInterval(6_601))
        #expect(await sweeper.sweepOnce() == .init(runs: 1, images: 2, complete: true))
        #expect(stored(storage, young) == [false, false])
        // The charge stays: the ledger is what it was before any sweep.
        #expect(try await store.ledger(accountID: old.accountID) == ledger)
    }

    /// A store that does not answer leaves the run unmarked (its links still say where the image is, and the
    /// next sweep deletes it): no run says "expired" while an image of it is still stored.
    @Test func aStoreThatFailsADeleteLeavesTheRunForTheNextSweep() async throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try SQLiteStore(path: dir.appendingPathComponent("db.sqlite").path)
        let folder = try LocalFolderStorage(root: dir.appendingPathComponent("outputs"))
        let run = try await succeeded(store, folder, id: 700_000_000_000_003, finished: start)
        let flaky = UnreachableUploads(folder, failures: 0, deleteFailures: 1)
        let clock = SetClock(start.addingTimeInterval(120))
        let sweeper = OutputSweeper(store: store, storage: flaky, retention: .seconds(60), wallClock: clock, logger: Logger(label: "test"))

        #expect(await sweeper.sweepOnce() == .init(runs: 0, images: 0, complete: false))
        #expect(try await store.job(id: run.id)?.outputsExpiredAt == nil)
        #expect(await sweeper.sweepOnce() == .init(runs: 1, images: 2, complete: true))
        #expect(stored(folder, run) == [false, false])
        #expect(try await store.job(id: run.id)?.outputsExpiredAt != nil)
    }

    @Test func theSweepIntervalIsAQuarterOfTheRetentionBetweenOneSecondAndAMinute() {
        #expect(OutputSweeper.defaultInterval(for: .seconds(2)) == .seconds(1))
        #expect(OutputSweeper.defaultInterval(for: .seconds(8)) == .seconds(2))
        #expect(OutputSweeper.defaultInterval(for: .seconds(30 * 86_400)) == .seconds(60))
    }
}
