import AtelierCore
import AtelierRuns
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
        let id = try predictionID(context)
        let moments = try await runs.follow(id, account: try context.account())
        let routes = self
        return ServerSentEvents().response(moments) { moment in
            switch moment {
            // Replicate's clients know no queue events: a queued prediction is silent until it starts.
            case .queued, .keepAlive:
                return []
            case .requeued:
                return [.init(name: StreamEvent.logs.rawValue, data: "The worker was lost; the prediction is queued again.")]
            case .started:
                // The seed was fixed when the run was made; a start (or restart) is rare enough to read it again.
                return try await routes.runs.job(id: id).map(\.seed).map { [.init(name: StreamEvent.logs.rawValue, data: "Using seed: \($0)")] } ?? []
            case .progress(let p):
                return [.init(name: StreamEvent.logs.rawValue, data: ReplicatePrediction.progressLine(step: p.step, total: p.total))]
            case .loraDownload(let d):
                return [.init(name: StreamEvent.logs.rawValue, data: "Downloading LoRA " + RunView.LoRADownload(d).text)]
            case .ended(let job):
                return try await routes.streamEnd(job, request: request)
            }
        }
    }

    /// The end of a run: its outputs or its error, then `done`.
    func streamEnd(_ job: Job, request: Request) async throws -> [ServerSentEvent] {
        func event(_ name: StreamEvent, _ data: String) -> ServerSentEvent { ServerSentEvent(name: name.rawValue, data: data) }
        switch job.status {
        case .queued, .running:
            return []
        case .succeeded:
            let prediction = try await prediction(job, request: request)
            return (prediction.output ?? []).map { event(.output, $0) } + [event(.done, "{}")]
        case .failed:
            let detail = job.failure.map { "\($0.message) (\($0.code.rawValue))" } ?? "the run failed"
            return [event(.error, String(decoding: (try? JSONResponse.encoder.encode(["detail": detail])) ?? Data(), as: UTF8.self)),
                    event(.done, #"{"reason":"error"}"#)]
        case .canceled:
            return [event(.done, #"{"reason":"canceled"}"#)]
        }
    }
}
