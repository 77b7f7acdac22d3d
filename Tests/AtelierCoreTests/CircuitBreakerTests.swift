import AtelierCore
import Foundation
import Synchronization
import Testing

@Suite struct CircuitBreakerTests {
    final class Clock: WallClock {
        let current = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        func now() -> Date { current.withLock { $0 } }
        func advance(_ seconds: TimeInterval) { current.withLock { $0 += seconds } }
    }

    @Test func opensAfterTheThresholdRefusesWithTheTimeLeftThenLetsOneTrialThrough() {
        let clock = Clock()
        let changes = Mutex<[Bool]>([])
        let breaker = CircuitBreaker(failures: 3, cooldown: .seconds(10), clock: clock) { open in changes.withLock { $0.append(open) } }
        for _ in 0..<2 {
            #expect(breaker.admit() == .proceed)
            breaker.failed()
        }
        // A success in between resets the count: only failures in a row open it.
        #expect(breaker.admit() == .proceed)
        breaker.succeeded()
        for _ in 0..<3 {
            #expect(breaker.admit() == .proceed)
            breaker.failed()
        }
        #expect(breaker.admit() == .refused(retryAfter: 10))
        clock.advance(7.5)
        #expect(breaker.admit() == .refused(retryAfter: 3))
        #expect(!breaker.isUsable)
        clock.advance(2.5)
        #expect(breaker.isUsable)
        // One trial; the others wait for it.
        #expect(breaker.admit() == .proceed)
        #expect(breaker.admit() == .refused(retryAfter: 1))
        breaker.failed()
        #expect(breaker.admit() == .refused(retryAfter: 10))
        clock.advance(10)
        #expect(breaker.admit() == .proceed)
        breaker.succeeded()
        #expect(breaker.current == .closed(failures: 0))
        #expect(breaker.admit() == .proceed)
        #expect(changes.withLock { $0 } == [true, false])
    }

    @Test func aTrialWhoseCallerWentAwayLetsTheNextCallerTry() {
        let clock = Clock()
        let breaker = CircuitBreaker(failures: 1, cooldown: .seconds(5), clock: clock)
        breaker.failed()
        clock.advance(5)
        #expect(breaker.admit() == .proceed)
        breaker.abandoned()
        #expect(breaker.admit() == .proceed)
    }
}
