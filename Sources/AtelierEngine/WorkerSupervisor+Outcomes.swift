import AtelierCore
import AtelierMetrics
import Logging
import Foundation

/// What the supervisor writes once a run's attempt ended: the one place that turns an outcome into the store's
/// succeeded, failed or requeued, with the attempt as the fence.
extension WorkerSupervisor {
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
                try? await config.clock.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    func record(_ outcome: Outcome, for job: Job) async throws {
        var logger = self.logger  // every line below is about this run: --log-format json carries its id
        logger[metadataKey: "request_id"] = "\(job.id)"
        let now = clock.now()
        let attempt = job.attempts
        var ended = true
        switch outcome {
        case .succeeded(let r):
            let attemptNames = job.outputNames(forAttempt: attempt)
            let names = Dictionary(uniqueKeysWithValues: zip(attemptNames.compactMap { storage.stagingPath(for: $0) }, attemptNames))
            let outputs = r.images.map {
                JobOutput(name: names[$0.path] ?? URL(fileURLWithPath: $0.path).lastPathComponent, seed: $0.seed,
                          width: $0.width, height: $0.height, bytes: $0.bytes)
            }
            let result = JobResult(
                outputs: outputs, path: r.path, pathReason: r.pathReason,
                inferenceMs: r.timings["inference_ms"] ?? 0, encodeMs: r.timings["encode_ms"] ?? 0, safety: r.safety,
                batchSize: r.batchSize ?? 1
            )
            if try await store.complete(id: job.id, attempt: attempt, result: result, now: now) {
                logger.info("run \(job.id) succeeded: \(outputs.count) image(s), \(Int(r.timings["total_ms"] ?? 0)) ms, \(r.path) path")
            } else if let stored = try await store.job(id: job.id), stored.status == .succeeded, stored.attempts == attempt {
                // A retry of a write whose commit went through while its answer was lost (a database restart).
                logger.info("run \(job.id) succeeded: its result was already recorded")
            } else {
                // Canceled (or taken over) while the worker finished: the images were never delivered nor charged.
                // The names are this attempt's own, so this never touches the images of the attempt that won.
                for name in attemptNames { await storage.remove(name: name) }
                logger.info("run \(job.id) finished after it was canceled or taken over; its images were discarded")
            }
        case .failed(let e) where RunFailureCode(worker: e.code) == .canceled && leaseLost.withLock({ $0.contains(job.id) }):
            // Stopped here because its lease could not be renewed, not by the client: another attempt runs it
            // (unless another node took it over already, and then this write is fenced).
            let outcome = try await store.retryOrFail(id: job.id, attempt: attempt, maxAttempts: config.maxAttempts, failure: JobFailure(
                code: .workerLost,
                message: "the server running this request lost its database connection \(config.maxAttempts) times; no image was made and nothing was charged"
            ), now: now)
            leaseLost.withLock { _ = $0.remove(job.id) }
            ended = outcome != .requeued
            logger.warning("run \(job.id): attempt \(attempt) stopped after its lease could not be renewed; \(outcome == .requeued ? "the run goes back to the queue" : "nothing changed")")
        case .failed(let e) where RunFailureCode(worker: e.code) == .canceled:
            // The store already holds the cancel; this changes nothing unless the job somehow still runs.
            _ = try await store.fail(id: job.id, attempt: attempt, failure: JobFailure(code: .canceled, message: e.message), now: now)
            logger.info("run \(job.id) stopped by its worker after a cancel")
        case .failed(let e):
            _ = try await store.fail(id: job.id, attempt: attempt, failure: JobFailure(code: RunFailureCode(worker: e.code), message: e.message), now: now)
            logger.warning("run \(job.id) failed: \(e.code): \(e.message)")
        case .crashed(let status, let signaled, let log):
            if drainExpired.load(ordering: .relaxed) {
                // Stopped by the drain timeout, not by the request: it does not count as an attempt.
                let outcome = try await store.retryOrFail(id: job.id, attempt: attempt, maxAttempts: .max,
                                                          failure: JobFailure(code: .serverStopped, message: ""), now: now)
                ended = outcome != .requeued
                logger.warning("run \(job.id) was stopped by the drain timeout and goes back to the queue")
                break
            }
            let how = signaled ? "was killed by signal \(status)" : "exited with status \(status)"
            let outcome = try await store.retryOrFail(id: job.id, attempt: attempt, maxAttempts: config.maxAttempts, failure: JobFailure(
                code: .workerCrashed,
                message: "the worker running this request \(how) (attempt \(attempt) of \(config.maxAttempts)); no image was made and nothing was charged. Send the request again."
            ), now: now)
            ended = outcome != .requeued
            logger.error("worker \(how) during run \(job.id) (attempt \(attempt)); \(outcome == .requeued ? "the run goes back to the queue" : "the run failed"); last log lines:\n\(log.suffix(10).joined(separator: "\n"))")
        case .timedOut:
            _ = try await store.fail(id: job.id, attempt: attempt, failure: JobFailure(
                code: .timeout,
                message: "the run took longer than \(config.jobTimeout.components.seconds) s and was stopped; try fewer steps or a smaller size"
            ), now: now)
            logger.error("run \(job.id) overran \(config.jobTimeout); killing its worker")
        case .storageFailed(let why):
            for name in job.outputNames(forAttempt: attempt) { await storage.remove(name: name) }
            let outcome = try await store.retryOrFail(id: job.id, attempt: attempt, maxAttempts: config.maxAttempts, failure: JobFailure(
                code: .storageUnavailable,
                message: "the image store could not be reached to keep this request's images (attempt \(attempt) of \(config.maxAttempts)); nothing was charged. Send the request again."
            ), now: now)
            ended = outcome != .requeued
            logger.error("run \(job.id): \(why); \(outcome == .requeued ? "the run goes back to the queue" : "the run failed")")
        case .protocolBroken(let why):
            let outcome = try await store.retryOrFail(id: job.id, attempt: attempt, maxAttempts: config.maxAttempts,
                                                      failure: JobFailure(code: .workerCrashed, message: "the worker stopped answering: \(why)"), now: now)
            ended = outcome != .requeued
            logger.error("run \(job.id): \(why)")
        }
        progressSharedAt.withLock { $0[job.id] = nil }
        if ended {
            await removeInputs(of: job)
            await events.jobFinished(job.id)
            await countEnd(of: job)
        } else {
            metrics.runRetried(model: job.request.modelID)
            await events.jobRequeued(job.id)
            await wake.signal()
        }
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
