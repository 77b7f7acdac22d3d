import AtelierCore
import AtelierMetrics
import Foundation
import Logging

/// How a run's attempt on a worker ended, as the slot saw it.
enum Outcome: Sendable {
    case succeeded(WorkerResult)
    case failed(WorkerErrorReport)
    case crashed(status: Int32, signaled: Bool, log: [String])
    case timedOut
    case protocolBroken(String)
    /// The worker made the images but they could not be stored (or the inputs could not be read): the run is
    /// retried, never recorded as succeeded without its images.
    case storageFailed(String)
    /// Stopped by this node because its lease could not be renewed for a whole lease: not the client's cancel.
    case leaseLost
    /// Stopped by the drain timeout on shutdown: not the request's fault, and not an attempt.
    case drained
    /// The run cannot be run as asked (a LoRA that cannot be fetched or used): failed at once, never retried,
    /// nothing charged.
    case refused(JobFailure)

    /// Whether the worker process can be trusted with another run after this.
    var workerBroken: Bool {
        switch self {
        case .crashed, .timedOut, .protocolBroken, .drained: true
        case .succeeded, .failed, .storageFailed, .leaseLost, .refused: false
        }
    }
}

/// What is written once a run's attempt ended: the one place that turns an outcome into the store's succeeded,
/// failed or requeued (with the attempt as the fence, so a late or repeated report changes nothing), settles the
/// hold in the same transaction, deletes what the run no longer needs, and tells the waiters.
struct OutcomeRecorder: Sendable {
    let store: any JobStore
    let storage: any ImageStorage
    /// Where a run's input images are kept until it ends (nil: no image inputs configured).
    let inputs: (any ImageStorage)?
    let events: JobEvents
    let wake: WakeSignal
    let maxAttempts: Int
    let jobTimeout: Duration
    let clock: any WallClock
    let sleeper: any Clock<Duration>
    let metrics: AtelierMetrics
    let logger: Logger

    /// Records an outcome, retrying while the database cannot be reached (with backoff, up to a few seconds
    /// apart). If the outage outlasts the lease, another node may take the run over; the write, once it gets
    /// through, is then refused by the fence and nothing is charged twice.
    func recordDurably(_ outcome: Outcome, for job: Job) async {
        var backoff: Duration = .milliseconds(200)
        while true {
            do {
                try await record(outcome, for: job)
                return
            } catch {
                logger.warning("run \(job.id): cannot record its outcome yet (\(error)); retrying in \(backoff)")
                try? await sleeper.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    /// Writes the outcome, then tells the waiters: an ended run loses its inputs and is counted; a requeued one
    /// wakes the slots.
    func record(_ outcome: Outcome, for job: Job) async throws {
        var logger = self.logger  // every line about this run carries its id (--log-format json)
        logger[metadataKey: "request_id"] = "\(job.id)"
        switch try await write(outcome, for: job, logger: logger) {
        case .ended:
            await removeInputs(of: job)
            await events.jobFinished(job.id)
            await countEnd(of: job)
        case .requeued:
            metrics.runRetried(model: job.request.modelID)
            await events.jobRequeued(job.id)
            await wake.signal()
        case .fenced:
            // No longer this attempt's run: canceled, or taken over by another node after its lease lapsed. Its
            // inputs go only once it has ended; an attempt that runs it now still reads them.
            if let stored = try? await store.job(id: job.id), stored.status.isTerminal {
                await removeInputs(of: job)
                await events.jobFinished(job.id)
                await countEnd(of: job)
            }
        }
    }

    /// What an attempt's write did to its run.
    enum Written: Equatable {
        /// This write ended the run (succeeded or failed).
        case ended
        /// This write put the run back in the queue for another attempt.
        case requeued
        /// The fence refused it: the attempt no longer held the run.
        case fenced
    }

    /// The store's write for each outcome.
    private func write(_ outcome: Outcome, for job: Job, logger: Logger) async throws -> Written {
        let now = clock.now()
        let attempt = job.attempts
        func fail(_ failure: JobFailure) async throws -> Written {
            try await store.fail(id: job.id, attempt: attempt, failure: failure, now: now) ? .ended : .fenced
        }
        /// Another attempt if the run has one left, else failed with `failure`.
        func retry(_ failure: JobFailure) async throws -> Written {
            switch try await store.retryOrFail(id: job.id, attempt: attempt, maxAttempts: maxAttempts, failure: failure, now: now) {
            case .requeued: .requeued
            case .failed: .ended
            case .fenced: .fenced
            }
        }
        func next(_ written: Written) -> String {
            switch written {
            case .ended: "the run failed"
            case .requeued: "the run goes back to the queue"
            case .fenced: "another attempt holds the run, or it ended: nothing changed"
            }
        }
        switch outcome {
        case .succeeded(let r):
            return try await recordSuccess(r, for: job, now: now, logger: logger)
        case .leaseLost:
            // Stopped here because its lease could not be renewed, not by the client: another attempt runs it
            // (unless another node took it over already, and then this write is fenced).
            let written = try await retry(JobFailure(code: .workerLost, message: "the server running this request lost its database connection \(maxAttempts) times; no image was made and nothing was charged"))
            logger.warning("run \(job.id): attempt \(attempt) stopped after its lease could not be renewed; \(next(written))")
            return written
        case .failed(let e) where RunFailureCode(worker: e.code) == .canceled:
            // The store already holds the cancel; this changes nothing unless the job somehow still runs.
            logger.info("run \(job.id) stopped by its worker after a cancel")
            return try await fail(JobFailure(code: .canceled, message: e.message))
        case .failed(let e):
            logger.warning("run \(job.id) failed: \(e.code): \(e.message)")
            return try await fail(JobFailure(code: RunFailureCode(worker: e.code), message: e.message))
        case .refused(let failure):
            logger.warning("run \(job.id) failed: \(failure.code.rawValue): \(failure.message)")
            return try await fail(failure)
        case .drained:
            // Stopped by the drain timeout, not by the request: the attempt is spared from the limit.
            let written: Written = try await store.requeueSpared(id: job.id, attempt: attempt, now: now) ? .requeued : .fenced
            logger.warning("run \(job.id) was stopped by the drain timeout; \(next(written)) (not counted as an attempt)")
            return written
        case .crashed(let status, let signaled, let log):
            let how = signaled ? "was killed by signal \(status)" : "exited with status \(status)"
            let written = try await retry(JobFailure(code: .workerCrashed, message: "the worker running this request \(how) (attempt \(job.countedAttempts) of \(maxAttempts)); no image was made and nothing was charged. Send the request again."))
            logger.error("worker \(how) during run \(job.id) (attempt \(attempt)); \(next(written)); last log lines:\n\(log.suffix(10).joined(separator: "\n"))")
            return written
        case .timedOut:
            logger.error("run \(job.id) overran \(jobTimeout); killing its worker")
            return try await fail(JobFailure(code: .timeout, message: "the run took longer than \(jobTimeout.components.seconds) s and was stopped; try fewer steps or a smaller size"))
        case .storageFailed(let why):
            // An upload that timed out may still land: deleted until the store takes it, and once more after.
            janitor.deleteLater(job.outputNames(forAttempt: attempt), landing: true)
            let written = try await retry(JobFailure(code: .storageUnavailable, message: "the image store could not be reached to keep this request's images (attempt \(job.countedAttempts) of \(maxAttempts)); nothing was charged. Send the request again."))
            logger.error("run \(job.id): \(why); \(next(written))")
            return written
        case .protocolBroken(let why):
            let written = try await retry(JobFailure(code: .workerCrashed, message: "the worker stopped answering: \(why)"))
            logger.error("run \(job.id): \(why)")
            return written
        }
    }

    /// Succeeded, with its images and the charge for them, unless the fence refuses: then the run was canceled or
    /// taken over while the worker finished, and this attempt's images go.
    private func recordSuccess(_ r: WorkerResult, for job: Job, now: Date, logger: Logger) async throws -> Written {
        let attempt = job.attempts
        let attemptNames = job.outputNames(forAttempt: attempt)
        let names = Dictionary(uniqueKeysWithValues: zip(attemptNames.compactMap { storage.stagingPath(for: $0) }, attemptNames))
        let outputs = r.images.map {
            JobOutput(name: names[$0.path] ?? URL(fileURLWithPath: $0.path).lastPathComponent, seed: $0.seed,
                      width: $0.width, height: $0.height, bytes: $0.bytes)
        }
        let result = JobResult(
            outputs: outputs, path: r.path, pathReason: r.pathReason,
            inferenceMs: r.timings["inference_ms"] ?? 0, encodeMs: r.timings["encode_ms"] ?? 0, safety: r.safety,
            batchSize: r.batchSize ?? 1, loras: r.applied
        )
        if try await store.complete(id: job.id, attempt: attempt, result: result, now: now) {
            logger.info("run \(job.id) succeeded: \(outputs.count) image(s), \(Int(r.timings["total_ms"] ?? 0)) ms, \(r.path) path")
            return .ended
        } else if let stored = try await store.job(id: job.id), stored.status == .succeeded, stored.attempts == attempt {
            // A retry of a write whose commit went through while its answer was lost (a database restart).
            logger.info("run \(job.id) succeeded: its result was already recorded")
            return .ended
        }
        // Canceled (or taken over) while the worker finished: the images were never delivered nor charged. The
        // names are this attempt's own, so this never touches the images of the attempt that won.
        await janitor.delete(attemptNames)
        logger.info("run \(job.id) finished after it was canceled or taken over; its images were discarded")
        return .fenced
    }

    /// Deletes a failed attempt's images until the store takes them (an upload that timed out may land later).
    var janitor: StorageJanitor { StorageJanitor(storage: storage, clock: sleeper, logger: logger) }

    /// A run's inputs are kept while it may still be run again, and deleted once it ended (InputSweeper deletes
    /// what this could not).
    func removeInputs(of job: Job) async {
        guard let inputs else { return }
        for input in job.request.inputImages { await inputs.remove(name: input.file) }
    }

    /// The run as the store ended it (a cancel or a takeover may have won over this node's outcome), for /metrics.
    private func countEnd(of job: Job) async {
        guard let stored = try? await store.job(id: job.id), stored.status.isTerminal else { return }
        let images = stored.status == .succeeded ? stored.result?.outputs.count ?? 0 : 0
        metrics.runEnded(model: stored.request.modelID, status: stored.status.rawValue, code: stored.failure?.code.rawValue ?? "",
                         seconds: (stored.finishedAt ?? clock.now()).timeIntervalSince(stored.createdAt),
                         inferenceSeconds: stored.result.map { $0.inferenceMs / 1000 }, images: images,
                         charged: Int64(images) * stored.pricePerImage)
    }
}
