import AtelierCore
import AtelierMetrics
import Foundation
import Logging
import ServiceLifecycle

/// `--output-retention`: deletes the images of succeeded runs that finished longer ago than the retention, and
/// records it on the run, so `/check` and the dialects answer `output_expired` rather than a dead link. The run,
/// its charge and its ledger entries stay.
///
/// Each image is deleted before the run is marked: a sweep cut short (a crash, a bucket that does not answer)
/// leaves the run unmarked and the next sweep deletes again (deleting a missing image succeeds), so no image
/// outlives the retention unnoticed and no run says "expired" while its image is still served. Sweepers on
/// several API nodes may take the same run at once; both deletes succeed and the second mark changes nothing.
public final class OutputSweeper: Service, Sendable {
    let store: any OutputRetentionStore
    let storage: any ImageStorage
    let retention: Duration
    let interval: Duration
    let wallClock: any WallClock
    let clock: any Clock<Duration>
    let metrics: AtelierMetrics
    let logger: Logger
    /// Runs read per query; a sweep goes on while full batches come back, up to `maxBatches`.
    let batch: Int
    let maxBatches: Int

    public init(store: any OutputRetentionStore, storage: any ImageStorage, retention: Duration, interval: Duration? = nil,
                wallClock: any WallClock = SystemWallClock(), clock: any Clock<Duration> = ContinuousClock(),
                metrics: AtelierMetrics = AtelierMetrics(), logger: Logger, batch: Int = 100, maxBatches: Int = 50) {
        self.store = store
        self.storage = storage
        self.retention = retention
        self.interval = interval ?? Self.defaultInterval(for: retention)
        self.wallClock = wallClock
        self.clock = clock
        self.metrics = metrics
        self.logger = logger
        self.batch = batch
        self.maxBatches = maxBatches
    }

    /// A quarter of the retention, between 1 s and a minute: an image outlives its retention by at most that.
    public static func defaultInterval(for retention: Duration) -> Duration {
        min(max(retention / 4, .seconds(1)), .seconds(60))
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                _ = await self.sweepOnce()
                try await self.clock.sleep(for: self.interval)
            }
        }
    }

    /// What one sweep did.
    public struct Report: Sendable, Equatable {
        public var runs = 0
        public var images = 0
        /// False when the database or the image store did not answer: the rest waits for the next sweep.
        public var complete = true
        public init(runs: Int = 0, images: Int = 0, complete: Bool = true) {
            self.runs = runs
            self.images = images
            self.complete = complete
        }
    }

    /// Deletes every due run's images (up to `batch × maxBatches` runs) and marks the runs.
    public func sweepOnce() async -> Report {
        var report = Report()
        let cutoff = wallClock.now().addingTimeInterval(-Double(retention.components.seconds))
        for _ in 0..<maxBatches {
            let due: [Job]
            do {
                due = try await store.runsWithOutputs(finishedBefore: cutoff, limit: batch)
            } catch {
                logger.warning("output retention: cannot read the runs due (\(error)); trying again in \(interval)")
                report.complete = false
                break
            }
            for job in due {
                let names = job.result?.outputs.map(\.name) ?? []
                do {
                    for name in names { try await storage.delete(name: name) }
                    if try await store.markOutputsExpired(id: job.id, now: wallClock.now()) {
                        report.runs += 1
                        report.images += names.count
                        metrics.outputsExpired(images: names.count)
                    }
                } catch {
                    logger.warning("output retention: run \(job.id): \(error); trying again in \(interval)")
                    report.complete = false
                    return finish(report)
                }
            }
            if due.count < batch { break }
        }
        return finish(report)
    }

    private func finish(_ report: Report) -> Report {
        if report.runs > 0 {
            logger.info("output retention: deleted \(report.images) image(s) of \(report.runs) run(s) finished more than \(retention) ago")
        }
        return report
    }
}
