import AtelierCore

/// In-process notifications about runs: a request handler subscribes before it queues its job, so a job that
/// finishes at once is never missed, then waits up to its window; event streams (SSE) follow a run's life. The
/// database stays the source of truth: a notification only says "look again" or carries progress.
public actor JobEvents {
    public typealias Progress = JobProgress

    /// What happened to a run, in the order it happens.
    public enum Event: Sendable, Equatable {
        /// Queued again after its worker died (the first queued state is read from the database).
        case requeued
        case started(attempt: Int)
        case progress(Progress)
        /// Terminal: read the outcome from the database.
        case finished
    }

    private var waiters: [Int64: [Int: CheckedContinuation<Bool, Never>]] = [:]
    private var streams: [Int64: [Int: AsyncStream<Event>.Continuation]] = [:]
    private var finished: Set<Int64> = []
    private var progress: [Int64: Progress] = [:]
    private var nextToken = 0
    private let clock: any Clock<Duration>

    public init(clock: any Clock<Duration> = ContinuousClock()) {
        self.clock = clock
    }

    /// Marks interest in a job before it exists, so `wait` cannot miss its end.
    public func subscribe(_ id: Int64) {
        finished.remove(id)
    }

    /// Waits until the job ends or the timeout passes; true if it ended.
    public func wait(_ id: Int64, timeout: Duration) async -> Bool {
        if finished.contains(id) { return true }
        let token = takeToken()
        return await withCheckedContinuation { continuation in
            waiters[id, default: [:]][token] = continuation
            Task { [weak self, clock] in
                try? await clock.sleep(for: timeout)
                await self?.expire(id, token: token)
            }
        }
    }

    private func takeToken() -> Int {
        defer { nextToken += 1 }
        return nextToken
    }

    private func expire(_ id: Int64, token: Int) {
        if let c = waiters[id]?.removeValue(forKey: token) {
            c.resume(returning: false)
        }
        if waiters[id]?.isEmpty == true { waiters[id] = nil }
    }

    /// A stream of the run's events from now on. Open it before reading the run's current state from the
    /// database, so nothing that happens in between is missed (a repeated state is harmless to a reader).
    public func events(_ id: Int64) -> AsyncStream<Event> {
        let token = takeToken()
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(64))
        streams[id, default: [:]][token] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.dropStream(id, token: token) }
        }
        return stream
    }

    private func dropStream(_ id: Int64, token: Int) {
        streams[id]?[token] = nil
        if streams[id]?.isEmpty == true { streams[id] = nil }
    }

    private func publish(_ id: Int64, _ event: Event) {
        for (_, c) in streams[id] ?? [:] { c.yield(event) }
    }

    public func jobStarted(_ id: Int64, attempt: Int) {
        publish(id, .started(attempt: attempt))
    }

    public func jobRequeued(_ id: Int64) {
        progress[id] = nil
        publish(id, .requeued)
    }

    public func jobFinished(_ id: Int64) {
        finished.insert(id)
        progress[id] = nil
        for (_, c) in waiters.removeValue(forKey: id) ?? [:] {
            c.resume(returning: true)
        }
        for (_, c) in streams.removeValue(forKey: id) ?? [:] {
            c.yield(.finished)
            c.finish()
        }
        // Bound memory: only jobs someone may still ask about in this process's wait windows are kept.
        if finished.count > 10_000 { finished.removeAll(keepingCapacity: true) }
    }

    public func jobProgressed(_ id: Int64, step: Int, total: Int) {
        let p = Progress(step: step, total: total)
        progress[id] = p
        publish(id, .progress(p))
    }

    public func currentProgress(_ id: Int64) -> Progress? { progress[id] }

    /// Runs someone here waits for or streams: on a shared database, `RunWatcher` checks these for an end that
    /// this node was not told of (a lost notification, an outage).
    public func watchedIDs() -> [Int64] {
        Array(Set(waiters.keys).union(streams.keys))
    }

    /// Shutdown: every waiting request answers now (with the run's state as it stands) and every stream ends.
    public func releaseAll() {
        for (_, byToken) in waiters {
            for (_, c) in byToken { c.resume(returning: false) }
        }
        waiters.removeAll()
        for (_, byToken) in streams {
            for (_, c) in byToken { c.finish() }
        }
        streams.removeAll()
    }
}

/// Wakes idle worker slots when a job is queued. Slots also poll, so a lost wake-up only delays a job by the poll
/// interval (the same shape as PostgreSQL's LISTEN/NOTIFY hint with a polling fallback in a later issue).
public actor WakeSignal {
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var pending = 0
    private var closed = false
    private var nextToken = 0
    private let clock: any Clock<Duration>

    public init(clock: any Clock<Duration> = ContinuousClock()) {
        self.clock = clock
    }

    public func signal() {
        if let (token, c) = waiters.first {
            waiters[token] = nil
            c.resume()
        } else {
            pending += 1
        }
    }

    public func wait(upTo timeout: Duration) async {
        if closed { return }
        if pending > 0 {
            pending -= 1
            return
        }
        let token = nextToken
        nextToken += 1
        await withCheckedContinuation { continuation in
            waiters[token] = continuation
            Task { [weak self, clock] in
                try? await clock.sleep(for: timeout)
                await self?.expire(token)
            }
        }
    }

    private func expire(_ token: Int) {
        waiters.removeValue(forKey: token)?.resume()
    }

    /// Releases every waiter and makes later waits return at once (shutdown): a slot that was about to wait
    /// when shutdown began must not sleep out its poll interval.
    public func releaseAll() {
        closed = true
        for (_, c) in waiters { c.resume() }
        waiters.removeAll()
    }
}
