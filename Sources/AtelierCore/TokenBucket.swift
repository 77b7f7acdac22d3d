import Foundation

/// A token bucket: `capacity` tokens, refilled at `refillPerSecond`; one request takes one token. Pure, with the
/// time passed in, so tests control it.
public struct TokenBucket: Sendable, Equatable {
    public let capacity: Double
    public let refillPerSecond: Double
    public private(set) var tokens: Double
    public private(set) var updated: Date

    public init(capacity: Double, refillPerSecond: Double, now: Date) {
        self.capacity = capacity
        self.refillPerSecond = refillPerSecond
        tokens = capacity
        updated = now
    }

    public struct Decision: Sendable, Equatable {
        public var allowed: Bool
        public var remaining: Int
        /// Seconds until one token is back (0 when allowed).
        public var retryAfter: Int
        /// Seconds until the bucket is full again.
        public var reset: Int
    }

    public mutating func take(now: Date) -> Decision {
        let elapsed = max(0, now.timeIntervalSince(updated))
        tokens = min(capacity, tokens + elapsed * refillPerSecond)
        updated = now
        let allowed = tokens >= 1
        if allowed { tokens -= 1 }
        let retry = allowed ? 0 : Int(((1 - tokens) / refillPerSecond).rounded(.up))
        let reset = Int(((capacity - tokens) / refillPerSecond).rounded(.up))
        return Decision(allowed: allowed, remaining: Int(tokens.rounded(.down)), retryAfter: max(retry, allowed ? 0 : 1), reset: reset)
    }
}
