import AtelierCore
import AtelierEngine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /api/v4/requests/{id}/events`: a run's life as Server-Sent Events, for progress bars. The stream opens
/// with the run's current state (`queued` with its place in the queue, or `started`), then `progress` (at most a
/// few per second, the last step always), and ends with `completed`, `failed` or `canceled`, whose data is the
/// same object /api/v4/check returns. A comment line every 15 s keeps proxies from closing an idle stream.
extension AtelierAPI {
    static let progressInterval: Duration = .milliseconds(250)
    static let keepAliveInterval: Duration = .seconds(15)

    enum StreamItem: Sendable {
        case event(JobEvents.Event)
        case keepAlive
    }

    /// A run's updates and a keep-alive tick every `keepAliveInterval`, as one sequence read where the writer
    /// lives; both feeding tasks stop when `body` returns.
    static func withKeepAlive<T>(_ updates: AsyncStream<JobEvents.Event>,
                                 _ body: (AsyncStream<StreamItem>) async throws -> T) async rethrows -> T {
        let (merged, input) = AsyncStream<StreamItem>.makeStream()
        let forward = Task {
            for await event in updates { input.yield(.event(event)) }
            input.finish()
        }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: keepAliveInterval)
                input.yield(.keepAlive)
            }
        }
        defer {
            forward.cancel()
            ticker.cancel()
        }
        return try await body(merged)
    }

    /// The stream's events, in the order a run can send them; the last one's data is the /check object.
    enum RunEvent: String, CaseIterable {
        case queued, started, progress, completed, failed, canceled

        /// The event that ends a run in this terminal state.
        init(ending status: JobStatus) {
            self = switch status {
            case .succeeded: .completed
            case .canceled: .canceled
            case .failed, .queued, .running: .failed
            }
        }
    }

    static let eventsEndpoint = Endpoint<AtelierAPI>(.get("/api/v4/requests/{id}/events", .init(
        "events", "A run's life as Server-Sent Events: queued, started, progress, then completed, failed or canceled",
        parameters: [.path("id", .string(pattern: "^[0-9]{1,18}$"))],
        responses: ["200": .init(description: "text/event-stream; the final event's data is the /check object.",
                                 content: ["text/event-stream": .init(.object(["id": .string(), "data": .string(), "event": .strings(RunEvent.allCases.map(\.rawValue))],
                                                                               required: ["event", "data"]))])]
            + ErrorMapping.documented([400, 401, 404, 429, 503], [404: "No such run for this key's account."])))) { api in
        { try await api.events($0, context: $1) }
    }

    func events(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let account = try await authenticate(request, body: [:])
        let id = try Self.requestID(context.parameters.get("id").map(ParameterValue.string))
        _ = try await ownedJob(id, account: account)
        // Subscribe before reading the state, so nothing between the read and the subscription is missed.
        let updates = await queue.events.events(id)
        let opening = try await ownedJob(id, account: account)
        let api = self
        var headers: HTTPFields = [:]
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"  // nginx: do not buffer the stream
        let body = ResponseBody { writer in
            var sent = 0
            func send(_ event: RunEvent, _ data: some Encodable) async throws {
                sent += 1
                let json = String(decoding: (try? JSONResponse.encoder.encode(data)) ?? Data("{}".utf8), as: UTF8.self)
                try await writer.write(ByteBuffer(string: "id: \(sent)\nevent: \(event.rawValue)\ndata: \(json)\n\n"))
            }
            func sendState(_ job: Job) async throws -> Bool {
                switch job.status {
                case .queued:
                    try await send(.queued, RunStatus(requestID: id, queuePosition: try await api.jobs.queuePosition(id: id)))
                case .running:
                    try await send(.started, StartedData(requestID: id, attempt: job.attempts))
                    if let p = await api.queue.events.currentProgress(id) ?? job.progress {
                        try await send(.progress, ProgressData(requestID: id, step: p.step, total: p.total))
                    }
                case .succeeded, .failed, .canceled:
                    try await send(RunEvent(ending: job.status), try await api.view(of: job, request: request))
                    return true
                }
                return false
            }
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            if try await sendState(opening) {
                try await writer.finish(nil)
                return
            }
            // One sequence of updates and keep-alive ticks, read here, where the writer lives.
            try await Self.withKeepAlive(updates) { merged in
                var lastProgress: ContinuousClock.Instant?
                for await item in merged {
                    switch item {
                    case .keepAlive:
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    case .event(.requeued):
                        try await send(.queued, RunStatus(requestID: id, queuePosition: try await api.jobs.queuePosition(id: id)))
                    case .event(.started(let attempt)):
                        try await send(.started, StartedData(requestID: id, attempt: attempt))
                    case .event(.progress(let p)):
                        let now = ContinuousClock.now
                        if p.step == p.total || lastProgress.map({ now - $0 >= Self.progressInterval }) ?? true {
                            lastProgress = now
                            try await send(.progress, ProgressData(requestID: id, step: p.step, total: p.total))
                        }
                    case .event(.finished):
                        if let job = try await api.jobs.job(id: id) { _ = try await sendState(job) }
                        try await writer.finish(nil)
                        return
                    }
                }
                // The server is shutting down: the client reconnects (after `retry`) to whoever serves next.
                try await writer.finish(nil)
            }
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// A run's id and status only: /run's answer for a run still pending, and the stream's `queued` event (with
    /// its place in the queue; a nil position is left out).
    struct RunStatus: Encodable, Sendable {
        var requestID: Int64
        var status = "queued"
        var queuePosition: Int? = nil
        /// In /run's answer: the price, the amount held and the account's available credit.
        var cost: RunCost? = nil
        enum CodingKeys: String, CodingKey, CaseIterable {
            case status, cost
            case requestID = "request_id"
            case queuePosition = "queue_position"
        }
    }

    struct StartedData: Encodable, Sendable {
        var requestID: Int64
        var status = "running"
        var attempt: Int
        enum CodingKeys: String, CodingKey {
            case status, attempt
            case requestID = "request_id"
        }
    }

    struct ProgressData: Encodable, Sendable {
        var requestID: Int64
        var step: Int
        var total: Int
        enum CodingKeys: String, CodingKey {
            case step, total
            case requestID = "request_id"
        }
    }
}
