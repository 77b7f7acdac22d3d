/// In-process notifications about runs: a request handler subscribes before it queues its job, so a job that
/// finishes at once is never missed, then waits up to its window. The database stays the source of truth: a
/// notification only says "look again".
public actor JobEvents {
    public struct Progress: Sendable, Equatable {
        public var step: Int
        public var total: Int
    }

    private var waiters: [Int64: [Int: CheckedContinuation<Bool, Never>]] = [:]
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
        let token = nextToken
        nextToken += 1
        return await withCheckedContinuation { continuation in
            waiters[id, default: [:]][token] = continuation
            Task { [weak self, clock] in
                try? await clock.sleep(for: timeout)
                await self?.expire(id, token: token)
            }
        }
    }

    private func expire(_ id: Int64, token: Int) {
        if let c = waiters[id]?.removeValue(forKey: token) {
            c.resume(returning: false)
        }
        if waiters[id]?.isEmpty == true { waiters[id] = nil }
    }

    public func jobFinished(_ id: Int64) {
        finished.insert(id)
        progress[id] = nil
        for (_, c) in waiters.removeValue(forKey: id) ?? [:] {
            c.resume(returning: true)
        }
        // Bound memory: only jobs someone may still ask about in this process's wait windows are kept.
        if finished.count > 10_000 { finished.removeAll(keepingCapacity: true) }
    }

    public func jobProgressed(_ id: Int64, step: Int, total: Int) {
        progress[id] = Progress(step: step, total: total)
    }

    public func currentProgress(_ id: Int64) -> Progress? { progress[id] }
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
