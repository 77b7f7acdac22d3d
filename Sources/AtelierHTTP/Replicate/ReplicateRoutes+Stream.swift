import AtelierCore
import AtelierEngine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /v1/predictions/{id}/stream` (the prediction's `urls.stream`): its life as the Server-Sent Events
/// Replicate's clients accept, and no other name (the client raises on any other): `logs` (the seed, then the
/// progress as tqdm lines), `output` (each image URL, once it exists), `error` (why it failed) and `done` (last;
/// `{"reason": "canceled"}` for a canceled one). A comment line every 15 s keeps proxies from closing it.
extension ReplicateRoutes {
    /// The only event names Replicate's clients accept.
    enum StreamEvent: String, CaseIterable {
        case output, logs, error, done
    }

    func stream(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let account = try await authenticate(request)
        let id = try predictionID(context)
        _ = try await runs.ownedJob(id, account: account)
        // Subscribe before reading the state, so nothing between the read and the subscription is missed.
        let updates = await api.queue.events.events(id)
        let opening = try await runs.ownedJob(id, account: account)
        let routes = self
        var headers: HTTPFields = [:]
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        let body = ResponseBody { writer in
            func send(_ event: StreamEvent, _ data: String) async throws {
                let lines = data.split(separator: "\n", omittingEmptySubsequences: false).map { "data: \($0)" }.joined(separator: "\n")
                try await writer.write(ByteBuffer(string: "event: \(event.rawValue)\n\(lines)\n\n"))
            }
            /// The end of a run: its outputs or its error, then `done`. True once sent.
            func sendEnd(_ job: Job) async throws -> Bool {
                switch job.status {
                case .queued, .running: return false
                case .succeeded:
                    let prediction = try await routes.prediction(job, request: request)
                    for url in prediction.output ?? [] { try await send(.output, url) }
                    try await send(.done, "{}")
                case .failed:
                    let detail = job.failure.map { "\($0.message) (\($0.code.rawValue))" } ?? "the run failed"
                    try await send(.error, String(decoding: (try? JSONResponse.encoder.encode(["detail": detail])) ?? Data(), as: UTF8.self))
                    try await send(.done, #"{"reason":"error"}"#)
                case .canceled:
                    try await send(.done, #"{"reason":"canceled"}"#)
                }
                return true
            }
            if opening.status == .running { try await send(.logs, "Using seed: \(opening.seed)") }
            if try await sendEnd(opening) {
                try await writer.finish(nil)
                return
            }
            // One sequence of updates and keep-alive ticks, read here, where the writer lives.
            try await AtelierAPI.withKeepAlive(updates) { merged in
                var lastProgress: ContinuousClock.Instant?
                for await item in merged {
                    switch item {
                    case .keepAlive:
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    case .event(.requeued):
                        try await send(.logs, "The worker was lost; the prediction is queued again.")
                    case .event(.started):
                        try await send(.logs, "Using seed: \(opening.seed)")
                    case .event(.progress(let p)):
                        let now = ContinuousClock.now
                        if p.step == p.total || lastProgress.map({ now - $0 >= AtelierAPI.progressInterval }) ?? true {
                            lastProgress = now
                            try await send(.logs, ReplicatePrediction.progressLine(step: p.step, total: p.total))
                        }
                    case .event(.finished):
                        if let job = try await api.jobs.job(id: id) { _ = try await sendEnd(job) }
                        try await writer.finish(nil)
                        return
                    }
                }
                try await writer.finish(nil)
            }
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}
