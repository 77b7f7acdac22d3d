import Foundation
import Synchronization

/// Fails calls to a dependency fast while it is down, instead of making every caller wait out its timeout.
///
/// `failures` calls in a row that fail for want of an answer (a timeout, a refused connection, a 5xx) open the
/// breaker: for `cooldown` every call is refused at once, with the time left as the caller's Retry-After. Then one
/// trial call goes through (half-open) while the others are still refused; its success closes the breaker, its
/// failure opens it for another cooldown. So a dependency that comes back is used again within one cooldown, with
/// no operator step, and one that stays down costs one trial call per cooldown.
public final class CircuitBreaker: Sendable {
    /// The breaker's lifecycle.
    public enum State: Sendable, Equatable {
        /// Calls go through; `failures` failed in a row so far.
        case closed(failures: Int)
        /// Calls are refused until `until`.
        case open(until: Date)
        /// One trial call is in flight; the others are refused until it ends.
        case halfOpen
    }

    /// What a caller may do now.
    public enum Admission: Sendable, Equatable {
        case proceed
        /// Refused without a call: try again in `retryAfter` seconds (at least 1).
        case refused(retryAfter: Int)
    }

    public let failureThreshold: Int
    public let cooldown: Duration
    let clock: any WallClock
    private let state: Mutex<State>
    /// Told when the breaker opens or closes (for a log line and a gauge).
    private let onChange: @Sendable (_ open: Bool) -> Void

    public init(failures: Int, cooldown: Duration, clock: any WallClock = SystemWallClock(),
                onChange: @escaping @Sendable (_ open: Bool) -> Void = { _ in }) {
        failureThreshold = max(1, failures)
        self.cooldown = cooldown
        self.clock = clock
        self.onChange = onChange
        state = Mutex(.closed(failures: 0))
    }

    public var current: State { state.withLock { $0 } }

    /// Whether a call made now would be let through (the dispatcher claims no run while it would not).
    public var isUsable: Bool {
        let now = clock.now()
        return state.withLock { state in
            switch state {
            case .closed: true
            case .open(let until): now >= until
            case .halfOpen: false
            }
        }
    }

    /// Asks to make a call; a `.proceed` must be followed by `succeeded()` or `failed()` (or `abandoned()`).
    public func admit() -> Admission {
        let now = clock.now()
        return state.withLock { state in
            switch state {
            case .closed:
                return .proceed
            case .open(let until) where now >= until:
                state = .halfOpen
                return .proceed
            case .open(let until):
                return .refused(retryAfter: max(1, Int(until.timeIntervalSince(now).rounded(.up))))
            case .halfOpen:
                return .refused(retryAfter: 1)
            }
        }
    }

    /// The call got an answer (any answer: a 404 or a 403 is the dependency working).
    public func succeeded() {
        let reopened = state.withLock { state -> Bool in
            defer { state = .closed(failures: 0) }
            if case .closed = state { return false }
            return true
        }
        if reopened { onChange(false) }
    }

    /// The call got no answer in time, or the connection was refused.
    public func failed() {
        let now = clock.now()
        let opened = state.withLock { state -> Bool in
            switch state {
            case .closed(let failures) where failures + 1 >= failureThreshold:
                state = .open(until: now.addingTimeInterval(cooldown.timeInterval))
                return true
            case .halfOpen:
                // The trial failed: closed again for another cooldown (already counted as open).
                state = .open(until: now.addingTimeInterval(cooldown.timeInterval))
                return false
            case .closed(let failures):
                state = .closed(failures: failures + 1)
                return false
            case .open:
                // A call admitted before the breaker opened failed too: the cooldown stands.
                return false
            }
        }
        if opened { onChange(true) }
    }

    /// A trial call that ended without telling either way (its task was canceled): let the next caller try.
    public func abandoned() {
        state.withLock { state in
            if state == .halfOpen { state = .open(until: .distantPast) }
        }
    }
}

extension Duration {
    /// Seconds as a `TimeInterval`, for wall-clock arithmetic.
    public var timeInterval: TimeInterval {
        TimeInterval(components.seconds) + TimeInterval(components.attoseconds) / 1e18
    }
}
