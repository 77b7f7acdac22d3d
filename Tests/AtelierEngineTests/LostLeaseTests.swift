import AtelierCore
import AtelierEngine
import AtelierPersistence
import AtelierStorage
import AtelierTesting
import Foundation
import Testing

extension WorkerSupervisorTests {
    /// Three renewals in a row that cannot reach the database are a whole lease: the node stops its worker's
    /// attempt (another node may hold the run by now) and the run goes back to the queue, not to failed; the next
    /// attempt finishes it, charged once.
    @Test func aWholeLeaseWithoutARenewalStopsTheAttemptAndRequeuesTheRun() async throws {
        let clock = ManualClock()
        let (supervisor, sqlite, storage) = try makeSupervisor(mode: "slow", clock: clock, wrap: { FaultyJobStore($0, failsRenewal: { $0 == 1 }) })
        try await withRunning(supervisor) {
            await supervisor.waitForSlots(Self.ready)
            let job = try await enqueue(sqlite, storage, id: 600_000_000_000_090, steps: 40)
            let updates = await supervisor.events.events(job.id)
            await supervisor.jobQueued()
            await supervisor.waitForSlots { $0[0].state == .busy }
            // Each renewal sleeps a third of the lease (10 s; nothing else on this clock does) before it tries.
            let renewal: @Sendable (Duration) -> Bool = { $0 == .seconds(10) }
            // Two failed renewals (two thirds of the lease): the attempt goes on.
            for _ in 0..<2 {
                await clock.waitForSleeper(renewal)
                clock.advance(by: .seconds(10))
            }
            await clock.waitForSleeper(renewal)
            #expect(try await sqlite.job(id: job.id)?.attempts == 1)
            #expect(try await sqlite.job(id: job.id)?.status == .running)
            // The third: the worker is told to stop, and the run is claimed again as attempt 2, which renews, and
            // finishes.
            clock.advance(by: .seconds(10))
            var seen: [JobEvents.Event] = []
            for await event in updates { seen.append(event) }
            #expect(seen.contains(.requeued) && seen.contains(.started(attempt: 2)) && seen.last == .finished)
            let done = try #require(try await sqlite.job(id: job.id))
            #expect(done.status == .succeeded && done.attempts == 2, "\(done.status) \(done.attempts) \(String(describing: done.failure))")
            #expect(try await sqlite.balance(accountID: job.accountID) == Balance(balance: 0, held: 0))
            #expect(supervisor.status[0].restarts == 0)  // the same worker ran both attempts
        }
    }
}
