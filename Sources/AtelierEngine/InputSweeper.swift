import AtelierCore
import Foundation
import Logging
import ServiceLifecycle

/// Deletes the input images of runs that ended longer ago than `grace`, and records it on the run. The attempt
/// that ends a run deletes its inputs at once; this catches what that could not (the bucket was down then, or the
/// node died between the end and the delete). A run that has not ended is never touched: another attempt may still
/// read its inputs. Sweepers on several API nodes may take the same run; deletes and marks are idempotent.
public final class InputSweeper: Service, Sendable {
    let store: any InputRetentionStore
    let inputs: any ImageStorage
    let grace: Duration
    let interval: Duration
    let wallClock: any WallClock
    let clock: any Clock<Duration>
    let logger: Logger
    let batch: Int

    public init(store: any InputRetentionStore, inputs: any ImageStorage, grace: Duration, wallClock: any WallClock = SystemWallClock(),
                clock: any Clock<Duration> = ContinuousClock(), logger: Logger, batch: Int = 100) {
        self.store = store
        self.inputs = inputs
        self.grace = grace
        interval = min(max(grace / 2, .seconds(1)), .seconds(60))
        self.wallClock = wallClock
        self.clock = clock
        self.logger = logger
        self.batch = batch
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                _ = await self.sweepOnce()
                try await self.clock.sleep(for: self.interval)
            }
        }
    }

    /// Sweeps one batch of ended runs; returns how many runs were marked (nil: the database or the store did not
    /// answer, and the rest waits for the next sweep).
    public func sweepOnce() async -> Int? {
        let cutoff = wallClock.now().addingTimeInterval(-grace.timeInterval)
        do {
            let due = try await store.runsWithInputs(finishedBefore: cutoff, limit: batch)
            var swept: [Int64] = []
            var complete = true
            for job in due {
                do {
                    for input in job.request.inputImages { try await inputs.delete(name: input.file) }
                    swept.append(job.id)
                } catch {
                    logger.warning("input retention: run \(job.id): \(error); trying again in \(interval)")
                    complete = false
                    break
                }
            }
            if !swept.isEmpty { try await store.markInputsSwept(ids: swept, now: wallClock.now()) }
            return complete ? swept.count : nil
        } catch {
            logger.warning("input retention: \(error); trying again in \(interval)")
            return nil
        }
    }
}
