import Foundation
import Logging
import Synchronization

/// `--log-format json`: one JSON object per line on standard error, for log shippers (Loki, Vector, Fluent Bit):
/// `ts` (ISO 8601, milliseconds, UTC), `level`, `logger`, `message`, the metadata's fields, and `request_id` on
/// every line about a run. Lines whose metadata has no request_id but whose text names a run ("run 123…",
/// "job 123…", "request_id 123…": the worker's forwarded lines among them) get it from the text, so a shipper
/// can follow one request through the server and its worker. Nothing is added that the text logs do not carry;
/// no secret is ever in a log line.
struct JSONLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    let label: String
    private let sink: JSONLineSink

    init(label: String, sink: JSONLineSink) {
        self.label = label
        self.sink = sink
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { fields[key] = "\(value)" }
        let text = "\(event.message)"
        if fields["request_id"] == nil, let id = Self.runID(in: text) { fields["request_id"] = id }
        fields["ts"] = Self.timestamp()
        fields["level"] = event.level.rawValue
        fields["logger"] = label
        fields["message"] = text
        sink.write(fields)
    }

    /// The first run id a line names: Atelier's ids are 15 digits.
    static func runID(in text: String) -> String? {
        let pattern = /(?:run|job|request_id|request) (\d{15})\b/
        return text.firstMatch(of: pattern).map { String($0.1) }
    }

    static func timestamp() -> String {
        Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

/// One writer for every handler: lines from concurrent tasks never interleave.
final class JSONLineSink: Sendable {
    private let lock = Mutex<Void>(())

    func write(_ fields: [String: String]) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var data = try? encoder.encode(fields) else { return }
        data.append(0x0A)
        lock.withLock { _ in FileHandle.standardError.write(data) }
    }
}
