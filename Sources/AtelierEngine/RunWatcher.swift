import AtelierCore
import Foundation
import Logging
import ServiceLifecycle

/// The polling half of "notifications are a hint": on a database shared by several nodes, every `interval` (and
/// whenever the notification listener subscribes again) it reads the runs this node's requests wait for or
/// stream, and tells `JobEvents` of any that ended, so a waiting request answers within its window even when the
/// notification was lost. It also wakes the local worker slots, which poll the queue on their own anyway.
public final class RunWatcher: Service, Sendable {
    let events: JobEvents
    let store: any JobStore
    let wake: WakeSignal
    let interval: Duration
    let clock: any Clock<Duration>
    let logger: Logger

    public init(events: JobEvents, store: any JobStore, wake: WakeSignal, interval: Duration = .seconds(2),
                clock: any Clock<Duration> = ContinuousClock(), logger: Logger) {
        self.events = events
        self.store = store
        self.wake = wake
        self.interval = interval
        self.clock = clock
        self.logger = logger
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await self.clock.sleep(for: self.interval)
                await self.pollOnce()
            }
        }
    }

    /// One look at every watched run; a database that does not answer is tried again next time.
    public func pollOnce() async {
        await wake.signal()
        for id in await events.watchedIDs() {
            guard let job = try? await store.job(id: id) else { continue }
            if job.status.isTerminal {
                await events.jobFinished(id)
            } else if let p = job.progress, await events.currentProgress(id) != p {
                await events.jobProgressed(id, step: p.step, total: p.total)
            }
        }
    }
}
