import AtelierRuns
import HTTPTypes
import Hummingbird
import NIOCore

/// One Server-Sent Event: its name and its data (several lines become several `data:` lines).
struct ServerSentEvent: Sendable {
    var name: String
    var data: String
}

/// A run's moments (`RunService.follow`) written as Server-Sent Events, each API naming them its own way with
/// `render`. The stream ends after the moment that renders the run's end, or when the moments end (shutdown).
struct ServerSentEvents: Sendable {
    var contentType = "text/event-stream"
    /// The reconnection delay sent first (`retry:`), in milliseconds; nil: none.
    var retryMilliseconds: Int?
    /// Whether each event carries an `id:` (its number in the stream).
    var numbered = false

    func response(_ moments: AsyncStream<RunMoment>,
                  render: @escaping @Sendable (RunMoment) async throws -> [ServerSentEvent]) -> Response {
        var headers: HTTPFields = [:]
        headers[.contentType] = contentType
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"  // nginx: do not buffer the stream
        let format = self
        let body = ResponseBody { writer in
            if let retry = format.retryMilliseconds { try await writer.write(ByteBuffer(string: "retry: \(retry)\n\n")) }
            var sent = 0
            for await moment in moments {
                if case .keepAlive = moment {
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    continue
                }
                for event in try await render(moment) {
                    sent += 1
                    let id = format.numbered ? "id: \(sent)\n" : ""
                    let lines = event.data.split(separator: "\n", omittingEmptySubsequences: false).map { "data: \($0)" }.joined(separator: "\n")
                    try await writer.write(ByteBuffer(string: "\(id)event: \(event.name)\n\(lines)\n\n"))
                }
                if case .ended = moment { break }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}
