import AtelierCore
import Foundation
import Synchronization

/// Per-API-key request limits for /api/v4/*: a token bucket each, in this process's memory (a later scale-out
/// issue moves them to the shared database). Defaults a normal user never meets.
public final class RateLimiter: Sendable {
    public struct Configuration: Sendable {
        /// Requests per minute per key, which is also the burst a key may send at once.
        public var requestsPerMinute: Int = 600
        public init() {}
    }

    private let config: Configuration
    private let buckets = Mutex<[String: TokenBucket]>([:])
    private let clock: any WallClock

    public init(config: Configuration = .init(), clock: any WallClock = SystemWallClock()) {
        self.config = config
        self.clock = clock
    }

    public var limit: Int { config.requestsPerMinute }

    public func take(_ key: String) -> TokenBucket.Decision {
        let now = clock.now()
        let perMinute = Double(config.requestsPerMinute)
        return buckets.withLock { all in
            var bucket = all[key] ?? TokenBucket(capacity: perMinute, refillPerSecond: perMinute / 60, now: now)
            let decision = bucket.take(now: now)
            all[key] = bucket
            // Bound memory: drop full buckets (their keys are idle) when the table grows large.
            if all.count > 100_000 { all = all.filter { $0.value.tokens < $0.value.capacity } }
            return decision
        }
    }
}
