import AtelierCore
import AtelierEngine
import AtelierMetrics
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

    func makeSupervisor(
        mode: String, jobTimeout: Duration = .seconds(300), clock: any Clock<Duration> = ContinuousClock(),
        environment: [String: String] = [:], metrics: AtelierMetrics = AtelierMetrics(),
        configure: (inout SupervisorConfiguration) -> Void = { _ in },
        wrap: (SQLiteStore) -> any JobStore = { $0 },
        wrapStorage: (LocalFolderStorage) -> any ImageStorage = { $0 }
    ) throws -> (WorkerSupervisor, SQLiteStore, LocalFolderStorage) {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: dir.appendingPathComponent("db.sqlite").path)
        let storage = try LocalFolderStorage(root: dir.appendingPathComponent("outputs"))
        let launch = WorkerLaunch(python: "/usr/bin/python3", workerDirectory: try FakeWorkerPackage.write().path,
                                  arguments: [], environment: ["FAKE_WORKER_MODE": mode,
                                                                "FAKE_WORKER_MARKER": dir.appendingPathComponent("died-once").path]
                                      .merging(environment) { $1 })
        var config = SupervisorConfiguration()
        config.jobTimeout = jobTimeout
        config.clock = clock
        config.readyTimeout = .seconds(30)
        config.restartBackoff = .milliseconds(10)...(.milliseconds(100))
        config.pollInterval = .milliseconds(50)
        configure(&config)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return (WorkerSupervisor(launch: launch, config: config, store: wrap(store), storage: wrapStorage(storage), metrics: metrics,
                                 logger: logger), store, storage)
    }

    func enqueue(_ store: SQLiteStore, _ storage: LocalFolderStorage, id: Int64, steps: Int = 3) async throws -> Job {
        let account = try await store.ensureAccount(named: "t")
        let request = RunRequest(
            modelID: "m", prompt: "p", aspectRatio: "1:1", megapixels: "0.25", size: .init(width: 512, height: 512),
            numOutputs: 2, numInferenceSteps: steps, guidance: 3, seed: 7, outputFormat: .webp, outputQuality: 80,
            loraScale: 1, goFast: true, promptStrength: 0.8, disableSafetyChecker: false
        )
        _ = try await store.addCredit(accountID: account, amount: 20, kind: .credit, reason: "test", now: Date())
        let job = Job(id: id, accountID: account, request: request, outputNames: [storage.newName(format: .webp), storage.newName(format: .webp)],
                      pricePerImage: 10, createdAt: Date())
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

    /// Queues a run once a worker is ready, and returns it as queued and as stored once it ended.
    func runToItsEnd(_ supervisor: WorkerSupervisor, _ store: SQLiteStore, _ storage: LocalFolderStorage, id: Int64) async throws -> (Job, Job) {
        await supervisor.waitForSlots(Self.ready)
        let job = try await enqueue(store, storage, id: id)
        await supervisor.events.subscribe(job.id)
        await supervisor.jobQueued()
        #expect(await supervisor.events.wait(job.id, timeout: .seconds(60)))
        return (job, try #require(try await store.job(id: job.id)))
    }

    /// A slot with a live worker (idle or busy).
    static let ready: @Sendable ([WorkerSlotStatus]) -> Bool = { $0.contains(where: \.isReady) }

    @Test func runsAQueuedJobAndRecordsEachImage() async throws {
        let (supervisor, store, storage) = try makeSupervisor(mode: "ok")
        try await withRunning(supervisor) {
            await supervisor.waitForSlots { $0[0].compiledPaths?["fast"]?.state == .building }
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
            // The report that came between the job's progress lines reached the slot, not the job.
            let fast = try #require(supervisor.status[0].compiledPaths?["fast"])
            #expect(fast.state == .ready && fast.warm == 2 && fast.cache["fxgraph_hits"] == 4)
        }
    }

    @Test func aWorkerThatDiesEveryTimeFailsItsJobAfterMaxAttemptsAndIsRestarted() async throws {
        let (supervisor, store, storage) = try makeSupervisor(mode: "die") { $0.maxAttempts = 2 }
        try await withRunning(supervisor) {
            await supervisor.waitForSlots(Self.ready)
            let firstPid = supervisor.status[0].pid
            await supervisor.events.subscribe(600_000_000_000_002)
            let job = try await enqueue(store, storage, id: 600_000_000_000_002)
            await supervisor.jobQueued()
            #expect(await supervisor.events.wait(job.id, timeout: .seconds(30)))
            let failed = try #require(try await store.job(id: job.id))
            #expect(failed.status == .failed && failed.failure?.code == .workerCrashed)
            #expect(failed.failure?.message.contains("exited with status 1 (attempt 2 of 2)") == true)
            #expect(failed.attempts == 2)
            #expect(failed.failure?.message.contains("nothing was charged") == true)
            await supervisor.waitForSlots { $0[0].restarts >= 2 && Self.ready($0) }
            #expect(supervisor.status[0].pid != firstPid)
        }
    }

    /// A dead worker's GPU gauges go with it: while its successor waits out the backoff, a scrape shows no memory
    /// that the dead process no longer holds.
    @Test func aDeadWorkersGPUGaugesGoWithIt() async throws {
        let exporter = PrometheusExporter()
        let (supervisor, store, storage) = try makeSupervisor(mode: "die", environment: ["FAKE_WORKER_GPU": "1"],
                                                              metrics: AtelierMetrics(factory: exporter.factory)) {
            $0.maxAttempts = 1
            $0.restartBackoff = .seconds(30)...(.seconds(30))
        }
        let gauge = #"atelier_gpu_memory_used_bytes{device="cuda:0",name="Fake GPU"} 1000.0"#
        try await withRunning(supervisor) {
            await supervisor.waitForSlots { $0[0].stats != nil }
            #expect(exporter.render().contains(gauge))
            let job = try await enqueue(store, storage, id: 600_000_000_000_010)
            await supervisor.events.subscribe(job.id)
            await supervisor.jobQueued()
            #expect(await supervisor.events.wait(job.id, timeout: .seconds(30)))
            #expect(try await store.job(id: job.id)?.status == .failed)
            // Its gauges go before the slot says it restarts.
            await supervisor.waitForSlots { $0[0].state == .restarting }
            let text = exporter.render()
            #expect(!text.contains("atelier_gpu_memory_used_bytes{"))
            #expect(!text.contains("atelier_gpu_memory_total_bytes{") && !text.contains("atelier_gpu_utilization_ratio{"))
            #expect(supervisor.status[0].stats == nil && supervisor.status[0].state == .restarting)
        }
    }

    /// The clock is manual: the 300 s timeout passes when the test says so, not after 300 s.
    @Test func aJobThatOverrunsItsTimeoutFailsAndTheWorkerIsReplaced() async throws {
        let clock = ManualClock()
        let (supervisor, store, storage) = try makeSupervisor(mode: "hang", clock: clock)
        try await withRunning(supervisor) {
            await supervisor.waitForSlots(Self.ready)
            let firstPid = try #require(supervisor.status[0].pid)
            let job = try await enqueue(store, storage, id: 600_000_000_000_003)
            await supervisor.events.subscribe(job.id)
            await supervisor.jobQueued()
            await supervisor.waitForSlots { $0[0].state == .busy }
            // The job's timer has started (nothing else on this clock sleeps 300 s).
            await clock.waitForSleeper { $0 == .seconds(300) }
            // Short of the timeout nothing happens: the worker is still busy with the job.
            clock.advance(by: .seconds(299))
            #expect(supervisor.status[0].state == .busy)
            #expect(try await store.job(id: job.id)?.status == .running)
            // Past it, the job fails and the worker is killed and replaced (its backoff also runs on the clock).
            clock.advance(by: .seconds(2))
            #expect(await supervisor.events.wait(job.id, timeout: .seconds(30)))
            #expect(try await store.job(id: job.id)?.failure?.code == .timeout)
            await supervisor.waitForSlots { $0[0].state == .restarting }
            // The restart backoff (10 ms here) is the only sleep under a second while no worker runs.
            await clock.waitForSleeper { $0 > .zero && $0 <= .milliseconds(100) }
            clock.advance(by: .milliseconds(100))
            await supervisor.waitForSlots { $0[0].restarts >= 1 && Self.ready($0) }
            #expect(kill(firstPid, 0) != 0)  // the hung worker was killed, not left behind
        }
    }

    @Test func aJobWhoseWorkerDiedOnceIsRetriedOnTheNextWorkerAndSucceeds() async throws {
        let (supervisor, store, storage) = try makeSupervisor(mode: "die-once")
        try await withRunning(supervisor) {
            await supervisor.events.subscribe(600_000_000_000_004)
            let job = try await enqueue(store, storage, id: 600_000_000_000_004)
            await supervisor.jobQueued()
            #expect(await supervisor.events.wait(job.id, timeout: .seconds(30)))
            let done = try #require(try await store.job(id: job.id))
            #expect(done.status == .succeeded && done.attempts == 2)
            #expect(supervisor.status[0].restarts == 1)
        }
    }

    @Test func cancelStopsARunningJobAtItsNextStepAndTheWorkerServesTheNext() async throws {
        let (supervisor, store, storage) = try makeSupervisor(mode: "slow")
        try await withRunning(supervisor) {
            await supervisor.waitForSlots(Self.ready)
            let pid = supervisor.status[0].pid
            let job = try await enqueue(store, storage, id: 600_000_000_000_005, steps: 50)
            let stream = await supervisor.events.events(job.id)
            await supervisor.jobQueued()
            var seen: [JobEvents.Event] = []
            for await event in stream {
                seen.append(event)
                if case .progress(let p) = event, p.step == 2 {
                    #expect(try await store.cancel(id: job.id, accountID: job.accountID, now: Date()) == .canceled(wasRunning: true))
                    supervisor.cancel(job.id)
                }
            }
            #expect(seen.first == .started(attempt: 1) && seen.last == .finished)
            #expect(seen.count < 20)  // stopped within a few steps of the cancel, not after all 50
            await supervisor.waitForSlots { $0[0].state == .idle }
            #expect(try await store.job(id: job.id)?.status == .canceled)
            #expect(try await store.balance(accountID: job.accountID) == Balance(balance: 20, held: 0))
            for name in job.outputNames { #expect(!FileManager.default.fileExists(atPath: storage.localPath(for: name)!)) }
            // The same worker process takes the next job.
            await supervisor.events.subscribe(600_000_000_000_006)
            let next = try await enqueue(store, storage, id: 600_000_000_000_006, steps: 1)
            await supervisor.jobQueued()
            #expect(await supervisor.events.wait(next.id, timeout: .seconds(30)))
            #expect(try await store.job(id: next.id)?.status == .succeeded)
            #expect(supervisor.status[0].pid == pid && supervisor.status[0].restarts == 0)
        }
    }

    @Test func shutdownLetsTheRunningJobFinishAndLeavesQueuedJobsQueued() async throws {
        let (supervisor, store, storage) = try makeSupervisor(mode: "slow")
        let group = ServiceGroup(services: [supervisor], logger: Logger(label: "group"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let running = try await enqueue(store, storage, id: 600_000_000_000_007, steps: 5)
            await supervisor.jobQueued()
            await supervisor.waitForSlots { $0[0].state == .busy }
            let queued = try await enqueue(store, storage, id: 600_000_000_000_008, steps: 1)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            #expect(try await store.job(id: running.id)?.status == .succeeded)
            #expect(try await store.job(id: queued.id)?.status == .queued)
        }
    }

    @Test func aJobStillRunningAtTheDrainTimeoutGoesBackToTheQueue() async throws {
        let clock = ManualClock()
        // 7 s: no other timer of the supervisor sleeps that long, so the test can tell when the drain's has begun.
        let (supervisor, store, storage) = try makeSupervisor(mode: "hang", clock: clock) { $0.drainTimeout = .seconds(7) }
        let group = ServiceGroup(services: [supervisor], logger: Logger(label: "group"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            await supervisor.waitForSlots(Self.ready)
            let job = try await enqueue(store, storage, id: 600_000_000_000_009)
            let updates = await supervisor.events.events(job.id)
            await supervisor.jobQueued()
            await supervisor.waitForSlots { $0[0].state == .busy }
            await group.triggerGracefulShutdown()
            await clock.waitForSleeper { $0 == .seconds(7) }
            clock.advance(by: .seconds(7))
            for await event in updates where event == .requeued { break }
            try await tasks.waitForAll()
            let requeued = try #require(try await store.job(id: job.id))
            #expect(requeued.status == .queued && requeued.attempts == 1 && requeued.sparedAttempts == 1)
            #expect(try await store.balance(accountID: job.accountID) == Balance(balance: 20, held: 20))  // still owed its images
        }
    }

    @Test func onStartRunsLeftRunningByADeadServerAreRunAgain() async throws {
        let (supervisor, store, storage) = try makeSupervisor(mode: "ok")
        let job = try await enqueue(store, storage, id: 600_000_000_000_010)
        // A previous server claimed it and died without a word.
        _ = try await store.claimNext(now: Date(), lease: 30)
        await supervisor.events.subscribe(job.id)
        try await withRunning(supervisor) {
            #expect(await supervisor.events.wait(job.id, timeout: .seconds(30)))
            let done = try #require(try await store.job(id: job.id))
            #expect(done.status == .succeeded && done.attempts == 2)
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
