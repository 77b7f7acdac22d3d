import AtelierCore
@testable import AtelierEngine
import AtelierMetrics
import AtelierPersistence
import AtelierStorage
import AtelierTesting
import Foundation
import Logging
import Synchronization
import Testing

/// The engine's roles one by one, on a real SQLite file and output folder, every wait on the manual clock: the
/// test advances it only once the sleep it means to end has begun (`ManualClock.waitForSleeper`), so nothing here
/// sleeps or polls.
@Suite(.timeLimit(.minutes(1))) struct EngineRoleTests {
    let store: SQLiteStore
    let storage: LocalFolderStorage
    let clock = ManualClock()
    let account: Int64
    let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()

    init() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atelier-roles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        store = try SQLiteStore(path: dir.appendingPathComponent("db.sqlite").path)
        storage = try LocalFolderStorage(root: dir.appendingPathComponent("outputs"))
        account = try await store.ensureAccount(named: "t")
        _ = try await store.addCredit(accountID: account, amount: 1_000, kind: .credit, reason: "test", now: Date())
    }

    @discardableResult
    func enqueue(_ id: Int64, size: Int = 512, images: Int = 1) async throws -> Job {
        let request = RunRequest(
            modelID: "m", prompt: "p", aspectRatio: "1:1", megapixels: "0.25", size: .init(width: size, height: size),
            numOutputs: images, numInferenceSteps: 4, guidance: 3, seed: 7, outputFormat: .webp, outputQuality: 80,
            loraScale: 1, goFast: true, promptStrength: 0.8, disableSafetyChecker: false
        )
        let job = Job(id: id, accountID: account, request: request, outputNames: (0..<images).map { _ in storage.newName(format: .webp) },
                      pricePerImage: 10, createdAt: Date())
        try await store.insert(job)
        return job
    }

    func dispatcher(_ store: any JobStore, batchSize: Int = 1, window: Duration = .zero) -> RunDispatcher {
        var config = SupervisorConfiguration()
        config.lease = .seconds(30)
        config.batchSize = batchSize
        config.batchWindow = window
        config.clock = clock
        return RunDispatcher(store: store, config: config, clock: SystemWallClock(), storage: nil, probe: nil, logger: logger)
    }

    func recorder(events: JobEvents = JobEvents(), maxAttempts: Int = 2) -> OutcomeRecorder {
        OutcomeRecorder(store: store, storage: storage, inputs: nil, events: events, wake: WakeSignal(clock: clock),
                        maxAttempts: maxAttempts, jobTimeout: .seconds(300), clock: SystemWallClock(), sleeper: clock,
                        metrics: AtelierMetrics(), logger: logger)
    }

    // MARK: RunDispatcher

    @Test func aBatchTakesTheCompatibleQueuedRunsUpToItsSize() async throws {
        try await enqueue(700_000_000_000_001)
        try await enqueue(700_000_000_000_002, size: 1024)  // another size: another call
        try await enqueue(700_000_000_000_003, images: 2)
        try await enqueue(700_000_000_000_004)
        let dispatch = dispatcher(store, batchSize: 3)
        let first = try #require(try await dispatch.claimNext())
        let batch = await dispatch.gatherBatch(after: first) { false }
        #expect(batch.map(\.id) == [700_000_000_000_001, 700_000_000_000_003])
        #expect(try await store.job(id: 700_000_000_000_004)?.status == .queued)
        #expect(try await store.job(id: 700_000_000_000_002)?.status == .queued)
    }

    @Test func aBatchThatIsNotFullWaitsItsWindowOnceForMore() async throws {
        try await enqueue(700_000_000_000_011)
        let dispatch = dispatcher(store, batchSize: 4, window: .milliseconds(40))
        let first = try #require(try await dispatch.claimNext())
        let gathering = Task { await dispatch.gatherBatch(after: first) { false } }
        await clock.waitForSleeper { $0 == .milliseconds(40) }
        try await enqueue(700_000_000_000_012)
        clock.advance(by: .milliseconds(40))
        #expect(await gathering.value.map(\.id) == [700_000_000_000_011, 700_000_000_000_012])
    }

    @Test func aLeaseThatCannotBeRenewedForAWholeLeaseStopsTheAttempt() async throws {
        try await enqueue(700_000_000_000_021)
        let dispatch = dispatcher(FaultyJobStore(store, failsRenewal: { $0 == 1 }))
        let job = try #require(try await dispatch.claimNext())
        let lost = LostLeases()
        let (stopped, stop) = AsyncStream<Int64>.makeStream()
        let keeping = Task { await dispatch.keepLeases(of: [job], lost: lost) { stop.yield($0) } }
        // Each renewal waits a third of the lease; two unreachable ones in a row are not yet a whole lease.
        for _ in 0..<2 {
            await clock.waitForSleeper { $0 == .seconds(10) }
            clock.advance(by: .seconds(10))
        }
        await clock.waitForSleeper { $0 == .seconds(10) }
        #expect(!lost.contains(job.id))
        clock.advance(by: .seconds(10))
        var iterator = stopped.makeAsyncIterator()
        #expect(await iterator.next() == job.id)
        #expect(lost.contains(job.id))
        keeping.cancel()
    }

    @Test func aRefusedRenewalStopsTheRunButIsNotALostLease() async throws {
        let queued = try await enqueue(700_000_000_000_031)
        let dispatch = dispatcher(store)
        let job = try #require(try await dispatch.claimNext())
        _ = try await store.cancel(id: queued.id, accountID: account, now: Date())
        let lost = LostLeases()
        let (stopped, stop) = AsyncStream<Int64>.makeStream()
        let keeping = Task { await dispatch.keepLeases(of: [job], lost: lost) { stop.yield($0) } }
        await clock.waitForSleeper { $0 == .seconds(10) }
        clock.advance(by: .seconds(10))
        var iterator = stopped.makeAsyncIterator()
        #expect(await iterator.next() == job.id)
        #expect(!lost.contains(job.id))
        keeping.cancel()
    }

    // MARK: OutcomeRecorder

    @Test func aCrashRequeuesUntilTheLastAttemptThenFailsWithNothingCharged() async throws {
        let events = JobEvents(clock: clock)
        let record = recorder(events: events, maxAttempts: 2)
        try await enqueue(700_000_000_000_041)
        let updates = await events.events(700_000_000_000_041)
        let first = try #require(try await store.claimNext(now: Date(), lease: 30))
        try await record.record(.crashed(status: 1, signaled: false, log: []), for: first)
        #expect(try await store.job(id: first.id)?.status == .queued)
        #expect(try await store.balance(accountID: account) == Balance(balance: 1_000, held: 10))
        let second = try #require(try await store.claimNext(now: Date(), lease: 30))
        try await record.record(.crashed(status: 9, signaled: true, log: []), for: second)
        let failed = try #require(try await store.job(id: first.id))
        #expect(failed.status == .failed && failed.failure?.code == .workerCrashed)
        #expect(failed.failure?.message.contains("killed by signal 9 (attempt 2 of 2)") == true)
        #expect(try await store.balance(accountID: account) == Balance(balance: 1_000, held: 0))
        var seen: [JobEvents.Event] = []
        for await event in updates { seen.append(event) }
        #expect(seen == [.requeued, .finished])
    }

    /// The reported case: with a limit of 2, a run drained once and then crashed once is tried again, and the
    /// failure after that says "attempt 2 of 2", counting only the attempts that failed.
    @Test func aDrainedAttemptGoesBackToTheQueueWithoutCountingAgainstTheLimit() async throws {
        let record = recorder(maxAttempts: 2)
        try await enqueue(700_000_000_000_051)
        let drained = try #require(try await store.claimNext(now: Date(), lease: 30))
        try await record.record(.drained, for: drained)
        #expect(try await store.job(id: drained.id)?.status == .queued)
        let crashed = try #require(try await store.claimNext(now: Date(), lease: 30))
        try await record.record(.crashed(status: 9, signaled: true, log: []), for: crashed)
        #expect(try await store.job(id: drained.id)?.status == .queued)
        let last = try #require(try await store.claimNext(now: Date(), lease: 30))
        #expect(last.attempts == 3 && last.countedAttempts == 2)
        try await record.record(.crashed(status: 9, signaled: true, log: []), for: last)
        let failed = try #require(try await store.job(id: drained.id))
        #expect(failed.status == .failed && failed.failure?.message.contains("(attempt 2 of 2)") == true)
        #expect(try await store.balance(accountID: account) == Balance(balance: 1_000, held: 0))
    }

    @Test func aResultAfterACancelIsNeitherDeliveredNorChargedAndItsImagesGo() async throws {
        let record = recorder()
        try await enqueue(700_000_000_000_061)
        let job = try #require(try await store.claimNext(now: Date(), lease: 30))
        _ = try await store.cancel(id: job.id, accountID: account, now: Date())
        let name = job.outputNames(forAttempt: job.attempts)[0]
        let path = try #require(storage.stagingPath(for: name))
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        try await storage.publish(name: name)
        let image = WorkerResult.Image(path: path, seed: 7, width: 512, height: 512, bytes: 3, format: "webp")
        try await record.record(.succeeded(WorkerResult(jobID: String(job.id), images: [image], path: "standard", pathReason: "",
                                                        timings: [:], safety: nil, batchSize: 1)), for: job)
        #expect(try await store.job(id: job.id)?.status == .canceled)
        #expect(try await store.balance(accountID: account) == Balance(balance: 1_000, held: 0))
        #expect(try await storage.read(name: name, range: nil) == nil)
    }

    @Test func anOutcomeIsWrittenOnceTheDatabaseAnswersAgain() async throws {
        let failing = FaultyJobStore(store, failingWrites: 2)
        let record = OutcomeRecorder(store: failing, storage: storage, inputs: nil, events: JobEvents(), wake: WakeSignal(clock: clock),
                                     maxAttempts: 2, jobTimeout: .seconds(300), clock: SystemWallClock(), sleeper: clock,
                                     metrics: AtelierMetrics(), logger: logger)
        try await enqueue(700_000_000_000_071)
        let job = try #require(try await store.claimNext(now: Date(), lease: 30))
        let recording = Task { await record.recordDurably(.failed(WorkerErrorReport(jobID: String(job.id), code: "generation_failed", message: "m")), for: job) }
        // 200 ms, then twice that, between tries.
        for backoff in [Duration.milliseconds(200), .milliseconds(400)] {
            await clock.waitForSleeper { $0 == backoff }
            #expect(try await store.job(id: job.id)?.status == .running)
            clock.advance(by: backoff)
        }
        await recording.value
        #expect(try await store.job(id: job.id)?.status == .failed)
    }

    // MARK: LeaseSweeper

    @Test func theSweeperRequeuesARunWhoseLeaseLapsedEveryHalfLease() async throws {
        let events = JobEvents(clock: clock)
        let sweeper = LeaseSweeper(lease: .seconds(30), recorder: recorder(events: events, maxAttempts: 3))
        try await enqueue(700_000_000_000_081)
        // Claimed with a lease that lapsed at once: its claimer stopped renewing.
        _ = try await store.claimNext(now: Date(), lease: 0)
        let updates = await events.events(700_000_000_000_081)
        let sweeping = Task { await sweeper.run { false } }
        await clock.waitForSleeper { $0 == .seconds(15) }
        clock.advance(by: .seconds(15))
        var iterator = updates.makeAsyncIterator()
        #expect(await iterator.next() == .requeued)
        #expect(try await store.job(id: 700_000_000_000_081)?.status == .queued)
        sweeping.cancel()
    }

    @Test func atStartUpEveryRunLeftRunningIsTakenBackOrFailedAtItsLimit() async throws {
        let sweeper = LeaseSweeper(lease: .seconds(30), recorder: recorder(maxAttempts: 1))
        try await enqueue(700_000_000_000_091)
        _ = try await store.claimNext(now: Date(), lease: 600)
        let report = try await sweeper.sweep(.all)
        #expect(report.failed == [700_000_000_000_091] && report.requeued.isEmpty)
        #expect(try await store.job(id: 700_000_000_000_091)?.failure?.code == .workerLost)
        #expect(try await store.balance(accountID: account) == Balance(balance: 1_000, held: 0))
    }
}

/// A run's inputs live as long as the run: an attempt that lost the run to another (its lease lapsed and the
/// sweeper requeued it) never deletes what the next attempt reads; the attempt that ends the run does.
@Suite(.timeLimit(.minutes(1))) struct RunInputsLifetimeTests {
    @Test func aTakenOverAttemptLeavesTheInputsAndTheAttemptThatEndsTheRunRemovesThem() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atelier-inputs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: dir.appendingPathComponent("db.sqlite").path)
        let outputs = try LocalFolderStorage(root: dir.appendingPathComponent("outputs"))
        let inputs = try LocalFolderStorage(root: dir.appendingPathComponent("inputs"))
        let account = try await store.ensureAccount(named: "t")
        _ = try await store.addCredit(accountID: account, amount: 100, kind: .credit, reason: "test", now: Date())
        let name = inputs.newName(format: .png)
        try await inputs.put(name: name, bytes: [1, 2, 3])
        var request = RunRequest(
            modelID: "m", prompt: "p", aspectRatio: "1:1", megapixels: "0.25", size: .init(width: 512, height: 512),
            numOutputs: 1, numInferenceSteps: 4, guidance: 3, seed: 7, outputFormat: .webp, outputQuality: 80,
            loraScale: 1, goFast: false, promptStrength: 0.8, disableSafetyChecker: false
        )
        request.attach(image: InputImage(file: name, format: .png, width: 8, height: 8, bytes: 3, sha256: "x", origin: .upload), mask: nil)
        let job = Job(id: 700_000_000_000_101, accountID: account, request: request, outputNames: [outputs.newName(format: .webp)],
                      pricePerImage: 10, createdAt: Date())
        try await store.insert(job)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let recorder = OutcomeRecorder(store: store, storage: outputs, inputs: inputs, events: JobEvents(), wake: WakeSignal(),
                                       maxAttempts: 3, jobTimeout: .seconds(300), clock: SystemWallClock(), sleeper: ManualClock(),
                                       metrics: AtelierMetrics(), logger: logger)
        // Attempt 1 stalls past its lease; the sweeper requeues the run and attempt 2 claims it.
        let first = try #require(try await store.claimNext(now: Date(), lease: 0))
        _ = try await store.recoverAbandoned(.expired, maxAttempts: 3, failure: JobFailure(code: .workerLost, message: "m"), now: Date())
        let second = try #require(try await store.claimNext(now: Date(), lease: 60))
        #expect(second.attempts == 2)
        // Attempt 1 wakes and reports a crash: fenced, and the inputs attempt 2 reads are still there.
        try await recorder.record(.crashed(status: 1, signaled: false, log: []), for: first)
        #expect(try await inputs.read(name: name, range: nil) != nil)
        #expect(try await store.job(id: job.id)?.status == .running)
        // Attempt 2 ends the run: now they go.
        try await recorder.record(.failed(WorkerErrorReport(jobID: String(job.id), code: "generation_failed", message: "m")), for: second)
        #expect(try await inputs.read(name: name, range: nil) == nil)
    }

    /// The store was down when the run ended, so its inputs stayed: the sweeper deletes them once the run has been
    /// over for the grace period, and never touches the inputs of a run that has not ended.
    @Test func theSweeperDeletesWhatAnEndedRunLeftAndNothingOfALiveOne() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atelier-sweep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: dir.appendingPathComponent("db.sqlite").path)
        let folder = try LocalFolderStorage(root: dir.appendingPathComponent("inputs"))
        let inputs = UnreachableUploads(folder, failures: 0, deleteFailures: 1)
        let account = try await store.ensureAccount(named: "t")
        _ = try await store.addCredit(accountID: account, amount: 100, kind: .credit, reason: "test", now: Date())
        var names: [String] = []
        for id in [Int64(700_000_000_000_111), 700_000_000_000_112] {
            let name = folder.newName(format: .png)
            try await folder.put(name: name, bytes: [1])
            var request = RunRequest(
                modelID: "m", prompt: "p", aspectRatio: "1:1", megapixels: "0.25", size: .init(width: 512, height: 512),
                numOutputs: 1, numInferenceSteps: 4, guidance: 3, seed: 7, outputFormat: .webp, outputQuality: 80,
                loraScale: 1, goFast: false, promptStrength: 0.8, disableSafetyChecker: false
            )
            request.attach(image: InputImage(file: name, format: .png, width: 8, height: 8, bytes: 1, sha256: "x", origin: .upload), mask: nil)
            try await store.insert(Job(id: id, accountID: account, request: request, outputNames: [folder.newName(format: .webp)],
                                       pricePerImage: 10, createdAt: Date()))
            names.append(name)
        }
        // The first ends (its inputs left behind, as when the bucket was down then); the second is running.
        let ended = try #require(try await store.claimNext(now: Date(), lease: 60))
        _ = try await store.fail(id: ended.id, attempt: 1, failure: JobFailure(code: .generationFailed, message: "m"), now: Date())
        _ = try await store.claimNext(now: Date(), lease: 60)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let clock = SweepClock()
        let sweeper = InputSweeper(store: store, inputs: inputs, grace: .seconds(60), wallClock: clock, logger: logger)
        #expect(await sweeper.sweepOnce() == 0)  // within the grace period
        clock.offset.withLock { $0 = 61 }
        #expect(await sweeper.sweepOnce() == nil)  // the store fails the delete: nothing marked, tried again
        #expect(await sweeper.sweepOnce() == 1)
        #expect(try await folder.read(name: names[0], range: nil) == nil)
        #expect(try await folder.read(name: names[1], range: nil) != nil)
        #expect(await sweeper.sweepOnce() == 0)  // marked: not swept again
    }
}

/// Now, moved on by the test.
final class SweepClock: WallClock {
    let offset = Mutex<TimeInterval>(0)
    func now() -> Date { Date().addingTimeInterval(offset.withLock { $0 }) }
}
