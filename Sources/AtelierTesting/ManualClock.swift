import Synchronization

/// A clock that moves only when a test calls `advance(by:)`, so tests of timeouts, backoff and polling never
/// sleep. Sleepers wake, in deadline order, when the clock reaches their deadline; a cancelled sleeper throws
/// `CancellationError` at once, as `ContinuousClock` does.
public final class ManualClock: Clock, Sendable {
    public struct Instant: InstantProtocol, Sendable {
        public var offset: Duration
        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (l: Instant, r: Instant) -> Bool { l.offset < r.offset }
    }

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    /// A test waiting for a sleeper whose time left matches.
    private struct Watcher {
        var matches: @Sendable (Duration) -> Bool
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [Int: Sleeper] = [:]
        var nextID = 0
        var watchers: [Watcher] = []

        /// The watchers a sleeper now satisfies, taken off the list.
        mutating func satisfied() -> [CheckedContinuation<Void, Never>] {
            let left = sleepers.values.map { now.duration(to: $0.deadline) }
            var met: [CheckedContinuation<Void, Never>] = []
            watchers.removeAll { w in
                guard left.contains(where: w.matches) else { return false }
                met.append(w.continuation)
                return true
            }
            return met
        }
    }

    private let state = Mutex(State())

    public init() {}

    public var now: Instant { state.withLock { $0.now } }
    public var minimumResolution: Duration { .zero }

    /// How many tasks are sleeping on this clock now (tests wait for a sleeper before advancing).
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    public func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let (resumeNow, met): (Result<Void, any Error>?, [CheckedContinuation<Void, Never>]) = state.withLock { s in
                    if Task.isCancelled { return (.failure(CancellationError()), []) }
                    if deadline <= s.now { return (.success(()), []) }
                    s.sleepers[id] = Sleeper(deadline: deadline, continuation: c)
                    return (nil, s.satisfied())
                }
                for watcher in met { watcher.resume() }
                if let resumeNow { c.resume(with: resumeNow) }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    public func advance(by duration: Duration) {
        let (due, met) = state.withLock { s -> ([Sleeper], [CheckedContinuation<Void, Never>]) in
            s.now = s.now.advanced(by: duration)
            let now = s.now
            let ready = s.sleepers.filter { $0.value.deadline <= now }
            for id in ready.keys { s.sleepers[id] = nil }
            return (ready.values.sorted { $0.deadline < $1.deadline }, s.satisfied())
        }
        for sleeper in due { sleeper.continuation.resume() }
        for watcher in met { watcher.resume() }
    }

    /// Returns once some task sleeps on this clock with a time left that `matches` (the job timeout's 300 s, a
    /// backoff under a second), so a test advances only after the sleep it means to end has begun: no polling.
    public func waitForSleeper(_ matches: @escaping @Sendable (Duration) -> Bool) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.sleepers.values.contains(where: { matches(s.now.duration(to: $0.deadline)) }) { return true }
                s.watchers.append(Watcher(matches: matches, continuation: c))
                return false
            }
            if ready { c.resume() }
        }
    }
}
