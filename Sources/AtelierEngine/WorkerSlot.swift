import AtelierCore
import AtelierMetrics
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// One worker process and its state machine: start it (waiting for ready), serve runs on it (claim, run, store
/// the images, record), and restart it with backoff when it dies, until the node stops. A worker that cannot
/// start for a reason restarting cannot fix stops the supervisor (`SupervisorError.fatal`).
struct WorkerSlot: Sendable {
    let index: Int
    let board: SlotBoard
    let launch: WorkerLaunch
    let config: SupervisorConfiguration
    let dispatcher: RunDispatcher
    let recorder: OutcomeRecorder
    let files: RunFiles
    let clock: any WallClock
    let metrics: AtelierMetrics
    let logger: Logger

    var events: JobEvents { recorder.events }

    func update(_ change: (inout WorkerSlotStatus) -> Void) { board.update(index, change) }

    func run() async throws {
        var backoff = config.restartBackoff.lowerBound
        while !board.isStopping {
            update { $0.state = .starting; $0.pid = nil; $0.jobID = nil; $0.compiledPaths = nil; $0.stats = nil }
            let worker: WorkerProcess
            let ready: WorkerReady
            do {
                (worker, ready) = try await startWorker()
            } catch let error as WorkerStartError {
                if error.isFatal {
                    throw SupervisorError.fatal(error.description)
                }
                logger.error("worker slot \(index): \(error); retrying in \(backoff)")
                update { $0.state = .restarting; $0.restarts += 1 }
                metrics.workerRestarted(slot: index)
                await pause(for: backoff)
                backoff = min(backoff * 2, config.restartBackoff.upperBound)
                continue
            }
            backoff = config.restartBackoff.lowerBound
            update {
                $0.state = .idle
                $0.pid = worker.pid
                $0.device = ready.device
                $0.randomWeights = ready.model.randomWeights
                $0.fastPathAvailable = ready.fastPath.available
            }
            logger.info("worker slot \(index) ready: pid \(worker.pid) on \(ready.device), loaded in \(Int(ready.loadMs)) ms")
            if await serve(on: worker) {
                worker.requestShutdown()
                update { $0.state = .stopped }
                return
            }
            // Its gauges go before the slot says it restarts, so whoever waits for that finds them gone.
            forgetStats()
            update { $0.state = .restarting; $0.restarts += 1 }
            metrics.workerRestarted(slot: index)
            await pause(for: backoff)
        }
        update { $0.state = .stopped }
    }

    /// Backoff between restarts; ends early on graceful shutdown so stopping never waits out a 30 s backoff.
    private func pause(for duration: Duration) async {
        let clock = config.clock
        try? await cancelWhenGracefulShutdown { try await clock.sleep(for: duration) }
    }

    /// Serves runs until shutdown (true: the worker is still alive) or the worker can no longer be trusted (false).
    private func serve(on worker: WorkerProcess) async -> Bool {
        let board = self.board
        while !board.isStopping {
            guard await dispatcher.storageUsable() else {
                // The bucket is not answering: the runs wait in the queue (their holds kept) until it does.
                try? await config.clock.sleep(for: config.pollInterval)
                continue
            }
            let claimed: Job?
            do {
                claimed = try await dispatcher.claimNext()
            } catch {
                // The database is unreachable (a restart, a failover): nothing was claimed; look again later.
                logger.warning("worker slot \(index): cannot claim from the queue: \(error)")
                try? await config.clock.sleep(for: config.pollInterval)
                continue
            }
            guard let first = claimed else {
                await recorder.wake.wait(upTo: config.pollInterval)
                continue
            }
            let batch = await dispatcher.gatherBatch(after: first) { board.isStopping }
            if await !execute(batch, on: worker) {
                worker.kill()
                return false
            }
        }
        return true
    }

    /// Runs one pipeline call's runs to their recorded ends; false when the worker broke doing it.
    private func execute(_ batch: [Job], on worker: WorkerProcess) async -> Bool {
        // Reachable by a cancel and the drain before the slot says it is busy: whoever sees it busy can stop it.
        board.running.withLock { for job in batch { $0[job.id] = (worker, job.attempts) } }
        update { $0.state = .busy; $0.jobID = batch[0].id }
        let startedAt = clock.now()
        for job in batch {
            await events.jobStarted(job.id, attempt: job.attempts)
            metrics.runStarted(model: job.request.modelID, waited: startedAt.timeIntervalSince(job.createdAt))
        }
        metrics.batch(images: batch.reduce(0) { $0 + $1.request.numOutputs })
        if batch.count > 1 { logger.info("runs \(batch.map { String($0.id) }.joined(separator: ", ")) share one pipeline call") }
        let lost = LostLeases()
        let outcomes = await withTaskGroup(of: [Int64: Outcome]?.self) { group in
            group.addTask { await self.runAndStore(batch, on: worker) }
            group.addTask {
                await self.dispatcher.keepLeases(of: batch, lost: lost) { try? worker.send(.cancel(jobID: String($0))) }
                return nil
            }
            let done = await group.next() ?? nil
            group.cancelAll()
            return done ?? [:]
        }
        board.running.withLock { for job in batch { $0[job.id] = nil } }
        var workerBroken = false
        for job in batch {
            let outcome = settled(outcomes[job.id] ?? .protocolBroken("the run ended without an outcome"), job: job, lost: lost)
            await recorder.recordDurably(outcome, for: job)
            board.progressSharedAt.withLock { $0[job.id] = nil }
            workerBroken = workerBroken || outcome.workerBroken
        }
        update { $0.state = .idle; $0.jobID = nil }
        return !workerBroken
    }

    /// What ended an attempt that this node stopped itself: a cancel the worker answered because the lease was
    /// lost is not the client's, and a worker killed by the drain timeout did not fail the run.
    private func settled(_ outcome: Outcome, job: Job, lost: LostLeases) -> Outcome {
        let leaseLost = lost.contains(job.id)
        switch outcome {
        case .failed(let e) where RunFailureCode(worker: e.code) == .canceled && leaseLost: return .leaseLost
        // Killed by the drain timeout: it died under the run, or before the run's command could be written to it.
        case .crashed where board.isDrainExpired, .protocolBroken where board.isDrainExpired: return .drained
        default: return outcome
        }
    }

    /// Runs the batch on the worker and stores the images it made: a run is succeeded only once its images are
    /// in the store.
    private func runAndStore(_ batch: [Job], on worker: WorkerProcess) async -> [Int64: Outcome] {
        var inputPaths: [Int64: [String]] = [:]
        var loras: [Int64: [LoRAFiles.Local]] = [:]
        var outcomes: [Int64: Outcome] = [:]
        for job in batch {
            switch await files.localInputs(of: job) {
            case .success(let paths): inputPaths[job.id] = paths
            case .failure(let problem): outcomes[job.id] = problem.outcome(jobID: job.id); continue
            }
            switch await files.localLoRAs(of: job) {
            case .ready(let local): loras[job.id] = local
            case .ended(let outcome):
                outcomes[job.id] = outcome
                inputPaths[job.id] = nil
                files.releaseInputs(of: job)
            }
        }
        let runnable = batch.filter { inputPaths[$0.id] != nil }
        if !runnable.isEmpty {
            outcomes.merge(await generate(runnable, inputPaths: inputPaths, loras: loras, on: worker)) { $1 }
        }
        for job in batch {
            files.releaseInputs(of: job)
            files.loras?.release(loras[job.id] ?? [])
            if case .succeeded(var result)? = outcomes[job.id], let local = loras[job.id], !local.isEmpty {
                result.applied = LoRAFiles.applied(local, report: result.loras)
                outcomes[job.id] = .succeeded(result)
            }
        }
        return await files.storeImages(of: batch, outcomes)
    }
}
