import AtelierCore
import AtelierMetrics
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization

public struct WebhookConfiguration: Sendable {
    /// How often the outbox is looked at for due deliveries.
    public var pollInterval: Duration = .milliseconds(500)
    /// One attempt's limit; a receiver should answer at once and do its work later.
    public var requestTimeout: Duration = .seconds(10)
    /// First retry delay; each retry doubles it (with jitter) up to `maxBackoff`.
    public var firstBackoff: TimeInterval = 2
    public var maxBackoff: TimeInterval = 600
    /// A delivery not accepted this long after its event is given up (and logged).
    public var retryWindow: TimeInterval = 24 * 3600
    public var policy = OutboundAddressPolicy()
    public init() {}
}

/// Renders a webhook's body in the shape of the API its run came through (the HTTP edge knows the shapes).
public protocol WebhookPayloads: Sendable {
    /// The body for `job` as it stands in the event (a `start` event's run is shown running).
    func body(of job: Job, baseURL: String) -> String
}

/// Delivers the webhook outbox: each due event is POSTed with the body /api/v4/check returns, signed per the
/// Standard Webhooks spec with the account's secret, the same `webhook-id` on every attempt. A 2xx accepts it;
/// anything else (redirects included: they are not followed) is retried with exponential backoff and jitter until
/// `retryWindow` has passed. The receiver's address is checked before every attempt, so a name that later
/// resolves inside the network is refused then too.
public final class WebhookDispatcher: Service, Sendable {
    let outbox: any WebhookStore
    let jobs: any JobStore
    let accounts: any AccountStore
    let config: WebhookConfiguration
    let payloads: any WebhookPayloads
    let clock: any WallClock
    let logger: Logger
    let metrics: AtelierMetrics
    private let stopping = Atomic<Bool>(false)

    public init(outbox: any WebhookStore, jobs: any JobStore, accounts: any AccountStore, config: WebhookConfiguration,
                payloads: any WebhookPayloads, clock: any WallClock = SystemWallClock(), metrics: AtelierMetrics = AtelierMetrics(), logger: Logger) {
        self.metrics = metrics
        self.outbox = outbox
        self.jobs = jobs
        self.accounts = accounts
        self.config = config
        self.payloads = payloads
        self.clock = clock
        self.logger = logger
    }

    public func run() async throws {
        // The same guarded client as image fetches: checked addresses, connect to what was checked, no redirects.
        let client = OutboundClient(policy: config.policy, purpose: "webhook", metrics: metrics)
        await withGracefulShutdownHandler {
            // Cancellation (another service failed) ends the loop as surely as graceful shutdown does.
            while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                do {
                    let due = try await outbox.claimDueWebhooks(now: clock.now(), limit: 16, claimFor: 60)
                    await withTaskGroup(of: Void.self) { group in
                        for delivery in due { group.addTask { await self.attempt(delivery, client: client) } }
                    }
                    if !due.isEmpty { continue }
                } catch {
                    logger.error("webhook outbox: \(error)")
                }
                try? await Task.sleep(for: config.pollInterval)
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
        }
    }

    func attempt(_ delivery: WebhookDelivery, client: OutboundClient) async {
        let now = clock.now()
        do {
            guard let job = try await jobs.job(id: delivery.jobID), let hook = job.webhook else {
                try await outbox.recordWebhookAttempt(id: delivery.id, body: "", outcome: .gaveUp(error: "the run or its webhook is gone"), now: now)
                return
            }
            let body = delivery.body ?? payloads.body(of: Self.asOf(delivery.event, job), baseURL: hook.baseURL)
            let outcome: WebhookAttemptOutcome
            switch try await send(body: body, delivery: delivery, job: job, url: hook.url, client: client) {
            case nil:
                outcome = .delivered
                logger.info("webhook \(delivery.id) (\(delivery.event.rawValue) of run \(job.id)) delivered after \(delivery.attempts + 1) attempt(s)")
            case let error?:
                outcome = nextStep(delivery, error: error, now: now)
                logger.warning("webhook \(delivery.id) (\(delivery.event.rawValue) of run \(job.id)) attempt \(delivery.attempts + 1) failed: \(error)")
            }
            try await outbox.recordWebhookAttempt(id: delivery.id, body: body, outcome: outcome, now: now)
            switch outcome {
            case .delivered: metrics.webhookAttempt(outcome: "delivered")
            case .retry: metrics.webhookAttempt(outcome: "retry")
            case .gaveUp: metrics.webhookAttempt(outcome: "gave_up")
            }
        } catch {
            logger.error("webhook \(delivery.id): \(error)")
        }
    }

    /// Sends one attempt; nil when the receiver accepted it, else why not.
    func send(body: String, delivery: WebhookDelivery, job: Job, url: String, client: OutboundClient) async throws -> String? {
        guard let target = URL(string: url) else { return "the webhook URL is not a URL" }
        let secret = try await accounts.webhookSecret(accountID: job.accountID)
        let timestamp = Int64(clock.now().timeIntervalSince1970)
        guard let signature = WebhookSignature.sign(secret: secret, id: delivery.id, timestamp: timestamp, body: Data(body.utf8)) else {
            return "the account's webhook secret is malformed; rotate it with `atelier accounts rotate-webhook-secret`"
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "User-Agent", value: "Atelier-Webhooks/1")
        headers.add(name: "webhook-id", value: delivery.id)
        headers.add(name: "webhook-timestamp", value: String(timestamp))
        headers.add(name: "webhook-signature", value: signature)
        var limits = OutboundLimits()
        limits.totalTimeout = config.requestTimeout
        limits.maxRedirects = 0
        limits.maxBytes = 1 << 20  // the receiver's answer is read and dropped
        do {
            let response = try await client.send(.POST, url: target, headers: headers, body: Array(body.utf8), limits: limits)
            if (200..<300).contains(response.status) { return nil }
            if (300..<400).contains(response.status) { return "the receiver answered \(response.status) (redirects are not followed)" }
            return "the receiver answered \(response.status)"
        } catch {
            return error.message
        }
    }

    /// Exponential backoff with full jitter in its upper half, so many failed deliveries do not retry in step.
    func nextStep(_ delivery: WebhookDelivery, error: String, now: Date) -> WebhookAttemptOutcome {
        let exponent = Double(min(delivery.attempts, 30))
        let ceiling = min(config.maxBackoff, config.firstBackoff * pow(2, exponent))
        let delay = Double.random(in: ceiling / 2...ceiling)
        let next = now.addingTimeInterval(delay)
        if next.timeIntervalSince(delivery.createdAt) > config.retryWindow { return .gaveUp(error: error) }
        return .retry(at: next, error: error)
    }

    /// The run as of the event: a `start` event shows the run running even if it has since ended, so its body (the
    /// /api/v4/check object, or a Replicate prediction) says what happened then.
    static func asOf(_ event: WebhookEvent, _ job: Job) -> Job {
        guard event == .start else { return job }
        var view = job
        view.status = .running
        view.result = nil
        view.failure = nil
        view.finishedAt = nil
        return view
    }
}
