import AtelierCore
import AtelierMetrics
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

public enum SupervisorError: Error, CustomStringConvertible {
    /// Restarting cannot help (weights missing, bad configuration): start-up stops with the worker's explanation.
    case fatal(String)
    public var description: String {
        switch self { case .fatal(let m): m }
    }
}

/// Starts the configured number of workers, waits for them to be ready, gives each idle worker the oldest queued
/// job (the database is the queue), restarts a worker that dies (with backoff), fails the job it held with a clear
/// error, and kills a worker whose job overruns the timeout, so no client waits forever.
public final class WorkerSupervisor: Service, Sendable {
    let launch: WorkerLaunch
    let config: SupervisorConfiguration
    let store: any JobStore
    let storage: any ImageStorage
    /// Where a run's input images are kept until it ends (nil: no image inputs configured).
    let inputs: (any ImageStorage)?
    public let events: JobEvents
    public let wake: WakeSignal
    let clock: any WallClock
    let logger: Logger
    let metrics: AtelierMetrics
    private let stopping = Atomic<Bool>(false)
    private let shutdownRequested = Atomic<Bool>(false)
    /// Set when the drain timeout passed: workers still busy are stopped and their jobs requeued.
    let drainExpired = Atomic<Bool>(false)
    /// The worker and attempt of each running job, so a cancel reaches the right process.
    private let running = Mutex<[Int64: (worker: WorkerProcess, attempt: Int)]>([:])
    private let slots: Mutex<[WorkerSlotStatus]>
    private let firstReady = Mutex<[CheckedContinuation<Void, Never>]>([])
    /// Runs whose attempt this node stopped because it could not renew their lease: back to the queue, not failed.
    let leaseLost = Mutex<Set<Int64>>([])
    /// When each running job's progress was last stored (shared databases only).
    let progressSharedAt = Mutex<[Int64: Date]>([:])

    public init(
        launch: WorkerLaunch, config: SupervisorConfiguration, store: any JobStore, storage: any ImageStorage,
        inputs: (any ImageStorage)? = nil, events: JobEvents? = nil, wake: WakeSignal? = nil,
        clock: any WallClock = SystemWallClock(), metrics: AtelierMetrics = AtelierMetrics(), logger: Logger
    ) {
        self.metrics = metrics
        self.inputs = inputs
        self.launch = launch
        self.config = config
        self.store = store
        self.storage = storage
        self.events = events ?? JobEvents(clock: config.clock)
        self.wake = wake ?? WakeSignal(clock: config.clock)
        self.clock = clock
        self.logger = logger
        slots = Mutex((0..<config.workerCount).map {
            WorkerSlotStatus(slot: $0, state: .starting, pid: nil, device: nil, jobID: nil, restarts: 0)
        })
    }

    public var status: [WorkerSlotStatus] { slots.withLock { $0 } }

    /// False on an API-only node: no slots of its own, only the sweeper.
    public var runsWorkers: Bool { config.workerCount > 0 }

    public var readyWorkerCount: Int { status.filter { $0.state == .idle || $0.state == .busy }.count }

    /// Queues are woken here by the HTTP layer after it stored a job.
    public func jobQueued() async {
        await wake.signal()
    }

    public func run() async throws {
        // Alone on its store, no lease from a previous process is still held: whatever it left running is retried
        // or failed now. On a shared database the other nodes' leases are live; only lapsed ones are taken.
        let recovered = try await recoverAbandoned(store.sharedByNodes ? .expired : .all)
        if !recovered.isEmpty {
            logger.warning("recovered runs left running by a previous server process: \(recovered.requeued.count) requeued, \(recovered.failed.count) failed")
        }
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.sweepLoop() }
                try await withThrowingTaskGroup(of: Void.self) { slots in
                    for slot in 0..<config.workerCount {
                        slots.addTask { try await self.slotLoop(slot) }
                    }
                    try await slots.waitForAll()
                }
                // An API-only node has no slots, but its sweeper serves the shared queue until shutdown.
                if config.workerCount == 0, !isStopping { try? await gracefulShutdown() }
                // The slots are done (drained, or one failed fatally): the sweeper stops too.
                group.cancelAll()
            }
            // Drained by `beginDrain` before the service group asked: a service may not return before it is told.
            if !shutdownRequested.load(ordering: .relaxed) { try? await gracefulShutdown() }
        } onGracefulShutdown: {
            self.shutdownRequested.store(true, ordering: .relaxed)
            self.beginDrain()
        }
    }

    /// Stops intake of new jobs; running jobs get `drainTimeout` to finish, then their workers are stopped and
    /// the jobs requeued. Idempotent.
    public func beginDrain() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        logger.info("draining: no new jobs start; running jobs have \(config.drainTimeout) to finish")
        let clock = config.clock
        let timeout = config.drainTimeout
        Task {
            await self.wake.releaseAll()
            try? await clock.sleep(for: timeout)
            self.drainExpired.store(true, ordering: .relaxed)
            let left = self.running.withLock { $0 }
            for (id, entry) in left {
                self.logger.warning("drain timeout: stopping the worker of run \(id); the run goes back to the queue")
                entry.worker.kill()
            }
        }
    }

    public var isDraining: Bool { isStopping }

    /// Asks the worker running this job to stop at its next step. The store already marked it canceled; this only
    /// saves the GPU time.
    public func cancel(_ id: Int64) {
        guard let entry = running.withLock({ $0[id] }) else { return }
        try? entry.worker.send(.cancel(jobID: String(id)))
    }

    /// Retries or fails running jobs whose lease expired, every lease period: a claimer that stopped renewing
    /// (hung, or a server that died while another serves the same database) does not hold a job forever.
    private func sweepLoop() async throws {
        let clock = config.clock
        while !isStopping {
            // Cancelled by `run` once the slots are done.
            // Half a lease: a run whose claimer died is back in the queue at most 1.5 leases after its last renewal.
            do { try await clock.sleep(for: config.lease / 2) } catch { return }
            if isStopping { return }
            // A database outage must not stop the sweeper: it tries again next period.
            guard let report = try? await recoverAbandoned(.expired) else { continue }
            if !report.isEmpty {
                logger.warning("runs whose lease expired: \(report.requeued.count) requeued, \(report.failed.count) failed")
            }
        }
    }

    private func recoverAbandoned(_ scope: LeaseScope) async throws -> RecoveryReport {
        let report = try await store.recoverAbandoned(
            scope, maxAttempts: config.maxAttempts,
            failure: JobFailure(code: .workerLost, message: "the worker running this request stopped \(config.maxAttempts) times; no image was made and nothing was charged"),
            now: clock.now()
        )
        for id in report.requeued { await events.jobRequeued(id) }
        for id in report.failed {
            if let job = try? await store.job(id: id) { await removeInputs(of: job) }
            await events.jobFinished(id)
        }
        if !report.requeued.isEmpty { await wake.signal() }
        return report
    }

    /// A run's inputs are kept while it may still be run again, and deleted once it ended.
    func removeInputs(of job: Job) async {
        guard let inputs else { return }
        for input in job.request.inputImages { await inputs.remove(name: input.file) }
    }

    /// A worker's compiled path changed state: shown in /healthz, and logged (warming sizes at debug level).
    func update(_ slot: Int, _ change: (inout WorkerSlotStatus) -> Void) {
        slots.withLock { change(&$0[slot]) }
    }

    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    private func slotLoop(_ slot: Int) async throws {
        var backoff = config.restartBackoff.lowerBound
        while !isStopping {
            update(slot) { $0.state = .starting; $0.pid = nil; $0.jobID = nil; $0.compiledPaths = nil; $0.stats = nil }
            let worker: WorkerProcess
            let ready: WorkerReady
            do {
                (worker, ready) = try await startWorker(slot: slot)
            } catch let error as WorkerStartError {
                if error.isFatal {
                    throw SupervisorError.fatal(error.description)
                }
                logger.error("worker slot \(slot): \(error); retrying in \(backoff)")
                update(slot) { $0.state = .restarting; $0.restarts += 1 }
                metrics.workerRestarted(slot: slot)
                await pause(for: backoff)
                backoff = min(backoff * 2, config.restartBackoff.upperBound)
                continue
            }
            backoff = config.restartBackoff.lowerBound
            update(slot) {
                $0.state = .idle
                $0.pid = worker.pid
                $0.device = ready.device
                $0.randomWeights = ready.model.randomWeights
                $0.fastPathAvailable = ready.fastPath.available
            }
            logger.info("worker slot \(slot) ready: pid \(worker.pid) on \(ready.device), loaded in \(Int(ready.loadMs)) ms")
            let alive = try await serveJobs(slot: slot, worker: worker)
            if alive {
                worker.requestShutdown()
                update(slot) { $0.state = .stopped }
                return
            }
            update(slot) { $0.state = .restarting; $0.restarts += 1 }
            forgetStats(slot: slot)
            metrics.workerRestarted(slot: slot)
            await pause(for: backoff)
        }
        update(slot) { $0.state = .stopped }
    }

    /// Backoff between restarts; ends early on graceful shutdown so stopping never waits out a 30 s backoff.
    private func pause(for duration: Duration) async {
        let clock = config.clock
        try? await cancelWhenGracefulShutdown { try await clock.sleep(for: duration) }
    }

    private func serveJobs(slot: Int, worker: WorkerProcess) async throws -> Bool {
        while !isStopping {
            let claimed: Job?
            do {
                claimed = try await store.claimNext(now: clock.now(), lease: config.lease.timeInterval)
            } catch {
                // The database is unreachable (a restart, a failover): nothing was claimed; look again later.
                logger.warning("worker slot \(slot): cannot claim from the queue: \(error)")
                try? await config.clock.sleep(for: config.pollInterval)
                continue
            }
            guard let first = claimed else {
                await wake.wait(upTo: config.pollInterval)
                continue
            }
            let batch = await gatherBatch(after: first)
            update(slot) { $0.state = .busy; $0.jobID = first.id }
            running.withLock { for job in batch { $0[job.id] = (worker, job.attempts) } }
            let startedAt = clock.now()
            for job in batch {
                await events.jobStarted(job.id, attempt: job.attempts)
                metrics.runStarted(model: job.request.modelID, waited: startedAt.timeIntervalSince(job.createdAt))
            }
            metrics.batch(images: batch.reduce(0) { $0 + $1.request.numOutputs })
            if batch.count > 1 { logger.info("runs \(batch.map { String($0.id) }.joined(separator: ", ")) share one pipeline call") }
            let outcomes = await withTaskGroup(of: [Int64: Outcome]?.self) { group in
                group.addTask { await self.runAndStore(batch, on: worker) }
                group.addTask { await self.renewLeases(of: batch, on: worker); return nil }
                let done = await group.next() ?? nil
                group.cancelAll()
                return done ?? [:]
            }
            running.withLock { for job in batch { $0[job.id] = nil } }
            var workerBroken = false
            for job in batch {
                let outcome = outcomes[job.id] ?? .protocolBroken("the run ended without an outcome")
                await recordDurably(outcome, for: job)
                switch outcome {
                case .crashed, .timedOut, .protocolBroken: workerBroken = true
                case .succeeded, .failed, .storageFailed: break
                }
            }
            update(slot) { $0.state = .idle; $0.jobID = nil }
            if workerBroken {
                worker.kill()
                return false
            }
        }
        return true
    }

    enum Outcome {
        case succeeded(WorkerResult)
        case failed(WorkerErrorReport)
        case crashed(status: Int32, signaled: Bool, log: [String])
        case timedOut
        case protocolBroken(String)
        /// The worker made the images but they could not be stored (or the inputs could not be read): the run is
        /// retried, never recorded as succeeded without its images.
        case storageFailed(String)
    }

    /// Runs the batch on the worker and stores the images it made, while the leases are renewed alongside: a
    /// run is succeeded only once its images are in the store.
    private func runAndStore(_ batch: [Job], on worker: WorkerProcess) async -> [Int64: Outcome] {
        var inputPaths: [Int64: [String]] = [:]
        var outcomes: [Int64: Outcome] = [:]
        for job in batch {
            switch await localInputs(of: job) {
            case .success(let paths): inputPaths[job.id] = paths
            case .failure(let problem): outcomes[job.id] = problem.outcome(jobID: job.id)
            }
        }
        let runnable = batch.filter { inputPaths[$0.id] != nil }
        if !runnable.isEmpty {
            outcomes.merge(await run(runnable, inputPaths: inputPaths, on: worker)) { $1 }
        }
        for job in batch { releaseInputs(of: job) }
        return await storeImages(of: batch, outcomes)
    }

    /// Sends the jobs as one command (`generate` alone, `generate_batch` for several) and waits until each has its
    /// answer; a crash, a broken protocol or the timeout (`jobTimeout` per run in the call) ends all that are left.
    private func run(_ batch: [Job], inputPaths: [Int64: [String]], on worker: WorkerProcess) async -> [Int64: Outcome] {
        var outcomes: [Int64: Outcome] = [:]
        var commands: [(id: Int64, command: GenerateCommand)] = []
        for job in batch {
            var paths: [String] = []
            for name in job.outputNames(forAttempt: job.attempts) {
                guard let path = storage.stagingPath(for: name) else {
                    outcomes[job.id] = .failed(WorkerErrorReport(jobID: String(job.id), code: RunFailureCode.storageError.rawValue, message: "invalid output name \(name)"))
                    break
                }
                paths.append(path)
            }
            if outcomes[job.id] != nil { continue }
            commands.append((job.id, GenerateCommand(job: job, paths: paths, inputPaths: inputPaths[job.id] ?? [])))
        }
        guard !commands.isEmpty else { return outcomes }
        do {
            try worker.send(commands.count == 1 ? .generate(commands[0].command) : .generateBatch(commands.map(\.command)))
        } catch {
            for c in commands { outcomes[c.id] = .protocolBroken("writing to the worker failed: \(error)") }
            return outcomes
        }
        // The worker names jobs by the string it was sent.
        let waiting = Dictionary(uniqueKeysWithValues: commands.map { ($0.command.jobID, $0.id) })
        let attempts = Dictionary(uniqueKeysWithValues: batch.map { ($0.id, $0.attempts) })
        let events = self.events
        let timeout = config.jobTimeout * commands.count
        let sleeper = config.clock
        let answered = await withTaskGroup(of: [Int64: Outcome]?.self) { group in
            group.addTask {
                var got: [Int64: Outcome] = [:]
                func endAll(_ outcome: Outcome) -> [Int64: Outcome] {
                    for id in waiting.values where got[id] == nil { got[id] = outcome }
                    return got
                }
                for await event in worker.events {
                    switch event {
                    case .message(.progress(let p)):
                        if let id = waiting[p.jobID] {
                            await events.jobProgressed(id, step: p.step, total: p.total)
                            self.shareProgress(id, attempt: attempts[id] ?? 0, step: p.step, total: p.total)
                        }
                    case .message(.result(let r)):
                        if let id = waiting[r.jobID] { got[id] = .succeeded(r) }
                    case .message(.error(let e)):
                        if let key = e.jobID, let id = waiting[key] { got[id] = .failed(e) }
                        else if e.jobID == nil { return endAll(.failed(e)) }
                    case .exited(let status, let signaled):
                        return endAll(.crashed(status: status, signaled: signaled, log: worker.lastLogLines))
                    case .garbage(let line):
                        self.logger.warning("worker \(worker.pid) wrote a non-protocol line: \(line.prefix(200))")
                    default:
                        continue
                    }
                    if got.count == waiting.count { return got }
                }
                return endAll(.crashed(status: -1, signaled: false, log: worker.lastLogLines))
            }
            group.addTask {
                try? await sleeper.sleep(for: timeout)
                return Task.isCancelled ? nil : [:]
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? [:]
        }
        for id in waiting.values { outcomes[id] = answered[id] ?? .timedOut }
        return outcomes
    }

    /// On a shared database, progress is stored so requests on other nodes see it: at most every
    /// `progressInterval` per run, and the last step always. Fire and forget: a slow database must not hold up
    /// reading the worker's answers.
    private func shareProgress(_ id: Int64, attempt: Int, step: Int, total: Int) {
        guard store.sharedByNodes else { return }
        let now = clock.now()
        let due = progressSharedAt.withLock { sent -> Bool in
            if step < total, let last = sent[id], now.timeIntervalSince(last) < config.progressInterval.timeInterval { return false }
            sent[id] = step < total ? now : nil
            return true
        }
        guard due else { return }
        let store = self.store
        Task { _ = try? await store.recordProgress(id: id, attempt: attempt, step: step, total: total) }
    }

}

extension Duration {
    /// Seconds as a `TimeInterval`, for wall-clock arithmetic.
    var timeInterval: TimeInterval {
        let c = components
        return TimeInterval(c.seconds) + TimeInterval(c.attoseconds) / 1e18
    }
}
