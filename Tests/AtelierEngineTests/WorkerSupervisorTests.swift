import AtelierCore
import AtelierEngine
import AtelierPersistence
import AtelierStorage
import AtelierTesting
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// The supervisor with real processes (a canned worker that speaks the protocol), a real SQLite file and a real
/// output folder.
@Suite(.serialized, .timeLimit(.minutes(1))) struct WorkerSupervisorTests {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atelier-sup-\(UUID().uuidString)")

    func makeSupervisor(mode: String, jobTimeout: Duration = .seconds(300), clock: any Clock<Duration> = ContinuousClock()) throws -> (WorkerSupervisor, SQLiteStore, LocalFolderStorage) {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: dir.appendingPathComponent("db.sqlite").path)
        let storage = try LocalFolderStorage(root: dir.appendingPathComponent("outputs"))
        let launch = WorkerLaunch(python: "/usr/bin/python3", workerDirectory: try FakeWorkerPackage.write().path,
                                  arguments: [], environment: ["FAKE_WORKER_MODE": mode])
        var config = SupervisorConfiguration()
        config.jobTimeout = jobTimeout
        config.clock = clock
        config.readyTimeout = .seconds(30)
        config.restartBackoff = .milliseconds(10)...(.milliseconds(100))
        config.pollInterval = .milliseconds(50)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return (WorkerSupervisor(launch: launch, config: config, store: store, storage: storage, logger: logger), store, storage)
    }

    func enqueue(_ store: SQLiteStore, _ storage: LocalFolderStorage, id: Int64) async throws -> Job {
        let account = try await store.ensureAccount(named: "t")
        let request = RunRequest(
            modelID: "m", prompt: "p", aspectRatio: "1:1", megapixels: "0.25", size: .init(width: 512, height: 512),
            numOutputs: 2, numInferenceSteps: 3, guidance: 3, seed: 7, outputFormat: .webp, outputQuality: 80,
            loraScale: 1, goFast: true, promptStrength: 0.8, disableSafetyChecker: false
        )
        let job = Job(id: id, accountID: account, request: request, outputNames: [storage.newName(format: .webp), storage.newName(format: .webp)], createdAt: Date())
        try await store.insert(job)
        return job
    }

    /// Runs the supervisor in a service group while `body` runs, then shuts it down.
    func withRunning(_ supervisor: WorkerSupervisor, _ body: () async throws -> Void) async throws {
        let group = ServiceGroup(services: [supervisor], logger: Logger(label: "group"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    func waitUntil(_ condition: () async throws -> Bool) async throws {
        for _ in 0..<600 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("condition not met in 30 s")
    }

    @Test func runsAQueuedJobAndRecordsEachImage() async throws {
        let (supervisor, store, storage) = try makeSupervisor(mode: "ok")
        try await withRunning(supervisor) {
            await supervisor.events.subscribe(600_000_000_000_001)
            let job = try await enqueue(store, storage, id: 600_000_000_000_001)
            await supervisor.jobQueued()
            #expect(await supervisor.events.wait(job.id, timeout: .seconds(30)))
            let done = try #require(try await store.job(id: job.id))
            #expect(done.status == .succeeded)
            #expect(done.result?.outputs.map(\.name) == job.outputNames)
            #expect(done.result?.outputs.map(\.seed) == [7, 8])
            for name in job.outputNames {
                #expect(FileManager.default.fileExists(atPath: storage.localPath(for: name)!))
            }
        }
    }

    @Test func aWorkerThatDiesFailsItsJobAndIsRestarted() async throws {
        let (supervisor, store, storage) = try makeSupervisor(mode: "die")
        try await withRunning(supervisor) {
            try await waitUntil { supervisor.readyWorkerCount == 1 }
            let firstPid = supervisor.status[0].pid
            await supervisor.events.subscribe(600_000_000_000_002)
            let job = try await enqueue(store, storage, id: 600_000_000_000_002)
            await supervisor.jobQueued()
            #expect(await supervisor.events.wait(job.id, timeout: .seconds(30)))
            let failed = try #require(try await store.job(id: job.id))
            #expect(failed.status == .failed && failed.failure?.code == "worker_crashed")
            #expect(failed.failure?.message.contains("exited with status 1") == true)
            #expect(failed.failure?.message.contains("nothing was charged") == true)
            try await waitUntil { supervisor.status[0].restarts >= 1 && supervisor.readyWorkerCount == 1 }
            #expect(supervisor.status[0].pid != firstPid)
        }
    }

    /// The clock is manual: the 300 s timeout passes when the test says so, not after 300 s.
    @Test func aJobThatOverrunsItsTimeoutFailsAndTheWorkerIsReplaced() async throws {
        let clock = ManualClock()
        let (supervisor, store, storage) = try makeSupervisor(mode: "hang", clock: clock)
        try await withRunning(supervisor) {
            try await waitUntil { supervisor.readyWorkerCount == 1 }
            let firstPid = try #require(supervisor.status[0].pid)
            let job = try await enqueue(store, storage, id: 600_000_000_000_003)
            await supervisor.jobQueued()
            try await waitUntil { supervisor.status[0].state == .busy }
            // Short of the timeout nothing happens: the worker is still busy with the job.
            clock.advance(by: .seconds(299))
            try await Task.sleep(for: .milliseconds(100))
            #expect(supervisor.status[0].state == .busy)
            #expect(try await store.job(id: job.id)?.status == .running)
            // Past it, the job fails and the worker is killed and replaced (its backoff also runs on the clock).
            try await waitUntil {
                clock.advance(by: .seconds(2))
                return try await store.job(id: job.id)?.status == .failed
            }
            #expect(try await store.job(id: job.id)?.failure?.code == "timeout")
            try await waitUntil {
                clock.advance(by: .seconds(1))
                return supervisor.status[0].restarts >= 1 && supervisor.readyWorkerCount == 1
            }
            #expect(kill(firstPid, 0) != 0)  // the hung worker was killed, not left behind
        }
    }

    @Test(arguments: [("weights-missing", "download black-forest-labs/FLUX.1-dev"), ("config-invalid", "unknown safety checker")])
    func unfixableStartFailuresStopStartUpWithTheWorkersExplanation(mode: String, expected: String) async throws {
        let (supervisor, _, _) = try makeSupervisor(mode: mode)
        do {
            try await supervisor.run()
            Issue.record("the supervisor should have stopped")
        } catch let error as SupervisorError {
            #expect(error.description.contains(expected))
        }
    }
}
