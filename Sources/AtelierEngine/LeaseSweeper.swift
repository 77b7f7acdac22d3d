import AtelierCore
import Foundation
import Logging

/// Retries or fails running runs whose lease lapsed, every half lease: a claimer that stopped renewing (hung, or
/// a server that died while another serves the same database) does not hold a run for ever. At start-up, alone
/// on its store, it takes back everything a previous process left running.
struct LeaseSweeper: Sendable {
    let lease: Duration
    /// What it tells of a run it takes back, and the store, clocks and log it shares.
    let recorder: OutcomeRecorder
    var store: any JobStore { recorder.store }
    var maxAttempts: Int { recorder.maxAttempts }
    var sleeper: any Clock<Duration> { recorder.sleeper }
    var logger: Logger { recorder.logger }

    /// Sweeps until cancelled or `isStopping`.
    func run(isStopping: @Sendable () -> Bool) async {
        while !isStopping() {
            // Half a lease: a run whose claimer died is back in the queue at most 1.5 leases after its last renewal.
            do { try await sleeper.sleep(for: lease / 2) } catch { return }
            if isStopping() { return }
            // A database outage must not stop the sweeper: it tries again next period.
            guard let report = try? await sweep(.expired) else { continue }
            if !report.isEmpty {
                logger.warning("runs whose lease expired: \(report.requeued.count) requeued, \(report.failed.count) failed")
            }
        }
    }

    /// Requeues the runs of lapsed (or, `.all`, any) claims that have attempts left and fails the others; tells
    /// their waiters, and wakes the slots for what went back to the queue.
    func sweep(_ scope: LeaseScope) async throws -> RecoveryReport {
        let report = try await store.recoverAbandoned(
            scope, maxAttempts: maxAttempts,
            failure: JobFailure(code: .workerLost, message: "the worker running this request stopped \(maxAttempts) times; no image was made and nothing was charged"),
            now: recorder.clock.now()
        )
        for id in report.requeued { await recorder.events.jobRequeued(id) }
        for id in report.failed {
            if let job = try? await store.job(id: id) { await recorder.removeInputs(of: job) }
            await recorder.events.jobFinished(id)
        }
        if !report.requeued.isEmpty { await recorder.wake.signal() }
        return report
    }
}
