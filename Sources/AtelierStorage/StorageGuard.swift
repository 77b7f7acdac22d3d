import AtelierCore
import AtelierMetrics
import AtelierS3
import Foundation
import Logging

/// What every call to a bucket goes through: the circuit breaker (a bucket that stops answering is not called
/// again until its cooldown ends, so requests answer 503 at once instead of after a timeout each), the metrics by
/// operation, and the translation of S3's errors into the `StorageUnavailable` the rest of the server knows. One
/// guard per bucket, shared by its output and input stores.
public struct StorageGuard: Sendable {
    public let breaker: CircuitBreaker
    let metrics: AtelierMetrics
    let clock: ContinuousClock = .init()

    public init(breaker: CircuitBreaker, metrics: AtelierMetrics = AtelierMetrics()) {
        self.breaker = breaker
        self.metrics = metrics
    }

    /// A guard whose breaker logs and counts its openings.
    public static func make(failures: Int, cooldown: Duration, metrics: AtelierMetrics, logger: Logger) -> StorageGuard {
        let breaker = CircuitBreaker(failures: failures, cooldown: cooldown) { open in
            metrics.storageBreaker(open: open)
            if open {
                logger.error("the image store stopped answering: storage calls are refused for \(cooldown) at a time until one gets through")
            } else {
                logger.notice("the image store answers again")
            }
        }
        metrics.storageBreaker(open: false)
        return StorageGuard(breaker: breaker, metrics: metrics)
    }

    /// Runs one call to the bucket, or refuses it at once while the breaker is open.
    func call<T>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        if case .refused(let retryAfter) = breaker.admit() {
            metrics.storageCall(operation: operation, outcome: "skipped", seconds: 0)
            throw StorageUnavailable("the bucket has not been answering; not tried again for \(retryAfter) s")
        }
        let started = clock.now
        func seconds() -> TimeInterval { (clock.now - started).timeInterval }
        do {
            let value = try await body()
            breaker.succeeded()
            metrics.storageCall(operation: operation, outcome: "ok", seconds: seconds())
            return value
        } catch let error as S3Error {
            switch error {
            case .unavailable:
                breaker.failed()
                metrics.storageCall(operation: operation, outcome: "unavailable", seconds: seconds())
            case .refused:
                // An answer, if not the one wanted (credentials, a policy): the bucket is up.
                breaker.succeeded()
                metrics.storageCall(operation: operation, outcome: "refused", seconds: seconds())
            }
            throw StorageUnavailable(error.description)
        } catch {
            breaker.abandoned()
            throw error
        }
    }
}
