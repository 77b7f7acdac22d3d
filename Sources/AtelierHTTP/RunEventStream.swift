import AtelierCore
import AtelierRuns
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /api/v4/requests/{id}/events`: a run's life as Server-Sent Events, for progress bars. The stream opens
/// with the run's current state (`queued` with its place in the queue, or `started`), then `lora_download` while
/// one of its LoRAs downloads, `progress` (at most a few per second, the last step always), and ends with `completed`, `failed` or `canceled`, whose data is the
/// same object /api/v4/check returns. A comment line every 15 s keeps proxies from closing an idle stream.
extension RunController {
    /// The stream's events, in the order a run can send them; the last one's data is the /check object.
    enum RunEvent: String, CaseIterable {
        case queued, started, progress, completed, failed, canceled
        case loraDownload = "lora_download"

        /// The event that ends a run in this terminal state.
        init(ending status: JobStatus) {
            self = switch status {
            case .succeeded: .completed
            case .canceled: .canceled
            case .failed, .queued, .running: .failed
            }
        }
    }

    static let eventsEndpoint = Endpoint<RunController>(.get("/api/v4/requests/{id}/events", .init(
        "events", "A run's life as Server-Sent Events: queued, started, progress, then completed, failed or canceled",
        parameters: [.path("id", .string(pattern: "^[0-9]{1,18}$"))],
        responses: ["200": .init(description: "text/event-stream; the final event's data is the /check object.",
                                 content: ["text/event-stream": .init(.object(["id": .string(), "data": .string(), "event": .strings(RunEvent.allCases.map(\.rawValue))],
                                                                               required: ["event", "data"]))])]
            + ErrorMapping.documented([400, 401, 404, 429, 503], [404: "No such run for this key's account."])))) { api in
        { try await api.events($0, context: $1) }
    }

    static let eventStream = ServerSentEvents(contentType: "text/event-stream; charset=utf-8", retryMilliseconds: 2000, numbered: true)

    func events(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let id = try Self.requestID(context.parameters.get("id").map(ParameterValue.string))
        let moments = try await runs.follow(id, account: try context.account())
        let controller = self
        return Self.eventStream.response(moments) { moment in
            func event(_ name: RunEvent, _ data: some Encodable) -> [ServerSentEvent] {
                [ServerSentEvent(name: name.rawValue, data: String(decoding: (try? JSONResponse.encoder.encode(data)) ?? Data("{}".utf8), as: UTF8.self))]
            }
            switch moment {
            case .queued(let position), .requeued(let position):
                return event(.queued, RunStatus(requestID: id, queuePosition: position))
            case .started(let attempt):
                return event(.started, StartedData(requestID: id, attempt: attempt))
            case .progress(let p):
                return event(.progress, ProgressData(requestID: id, step: p.step, total: p.total))
            case .loraDownload(let d):
                return event(.loraDownload, DownloadData(requestID: id, download: RunView.LoRADownload(d)))
            case .ended(let job):
                return event(RunEvent(ending: job.status), try await controller.view(of: job, request: request))
            case .keepAlive:
                return []
            }
        }
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

    /// A LoRA of the run downloading: `{"request_id", "parameter", "bytes_done", "bytes_total"}`.
    struct DownloadData: Encodable, Sendable {
        var requestID: Int64
        var download: RunView.LoRADownload
        enum CodingKeys: String, CodingKey { case requestID = "request_id" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(requestID, forKey: .requestID)
            try download.encode(to: encoder)
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
