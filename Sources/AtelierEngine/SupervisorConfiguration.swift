import Foundation

public struct SupervisorConfiguration: Sendable {
    public var workerCount: Int = 1
    /// Longest a job may run on a worker before the worker is killed and the job failed.
    public var jobTimeout: Duration = .seconds(300)
    /// Loading FLUX.1-dev from disk and warming up takes minutes on a cold cache.
    public var readyTimeout: Duration = .seconds(900)
    /// Idle slots look for queued jobs this often even without a wake-up.
    public var pollInterval: Duration = .seconds(1)
    public var restartBackoff: ClosedRange<Duration> = .milliseconds(500)...(.seconds(30))
    /// How long a claim holds a job without renewal. The supervisor renews every third of it while the worker
    /// runs; a job whose lease lapsed (its server hung or died) is retried.
    public var lease: Duration = .seconds(30)
    /// Attempts a job gets when its worker dies under it (a crash may be the machine, not the request); after
    /// the last one it fails with its hold released.
    public var maxAttempts: Int = 3
    /// On SIGTERM, how long running jobs may take to finish before their workers are stopped and the jobs go
    /// back to the queue for the next start.
    public var drainTimeout: Duration = .seconds(60)
    /// Most images one pipeline call makes from compatible queued runs (equal `RunRequest.batchKey`); 1 turns
    /// batching off. Each run keeps its own seed, result and charge. Measured: it pays on the CPU and for small
    /// images; at 1024² on an H100 two images in one call took 0.988 of two calls (docs/benchmarks.md).
    public var batchSize: Int = 1
    /// With batching on, how long a claim that did not fill its batch waits once for more compatible runs; zero:
    /// never waits (a run is never delayed, but runs arriving together split into a batch of one and the rest).
    public var batchWindow: Duration = .zero
    /// On a shared database, how often a running job's progress is stored for requests on other nodes.
    public var progressInterval: Duration = .milliseconds(500)
    /// Times every timeout, backoff and poll; tests pass a manual clock so they never sleep.
    public var clock: any Clock<Duration> = ContinuousClock()
    public init() {}
}
