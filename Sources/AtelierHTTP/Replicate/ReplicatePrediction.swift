import AtelierCore
import AtelierRuns
import AtelierEngine
import Crypto
import Foundation

/// A run as Replicate's clients read a prediction. `id`, `model`, `version` and `status` are never null (the
/// official Python client's model requires them); the status is Replicate's word for ours; `logs` carries the
/// progress as a tqdm line (`50%|█████     | 14/28`), which the client's `Prediction.progress` parses; `metrics`
/// has the times, the image count and the cost, and `cost` the cost in full.
struct ReplicatePrediction: Encodable, Sendable {
    var id: String
    var model: String
    var version: String
    var input: RunRequest
    /// Replicate's predictions always carry `output` and `error`, null until there is one (its API reference and
    /// clients that test `"output" in prediction` read them so); the synthesized encoder would leave them out.
    @NullWhenAbsent var output: [String]?
    var logs: String
    @NullWhenAbsent var error: String?
    var status: String
    var source = "api"
    var dataRemoved = false
    var createdAt: Date
    var startedAt: Date?
    var completedAt: Date?
    var urls: [String: String]
    var metrics: Metrics
    var cost: RunCost

    struct Metrics: Encodable, Sendable {
        var predictTime: Double?
        var totalTime: Double?
        var imageCount: Int
        var price: Int64
        var amountCharged: Int64
        var currency: String
        enum CodingKeys: String, CodingKey, CaseIterable {
            case price, currency
            case predictTime = "predict_time"
            case totalTime = "total_time"
            case imageCount = "image_count"
            case amountCharged = "amount_charged"
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, model, version, input, output, logs, error, status, source, urls, metrics, cost
        case dataRemoved = "data_removed"
        case createdAt = "created_at"
        case startedAt = "started_at"
        case completedAt = "completed_at"
    }

    /// Replicate's status words: queued is `starting` (waiting for a worker, as Replicate's cold boots are),
    /// running is `processing`.
    static func status(_ status: JobStatus) -> String {
        switch status {
        case .queued: "starting"
        case .running: "processing"
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .canceled: "canceled"
        }
    }

    /// A model's version id: the SHA-256 of its catalog entry, so it changes exactly when the entry does.
    static func version(of entry: ModelEntry?) -> String {
        guard let entry else { return String(repeating: "0", count: 64) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = (try? encoder.encode(entry)) ?? Data(entry.id.utf8)
        return SHA256.hash(data: bytes).hex
    }

    init(job: Job, owner: String, catalog: ModelCatalog, baseURL: String, links: OutputLinks?, progress: JobProgress?,
         loraDownload: RunSnapshot.LoRADownload? = nil) {
        let entry = catalog[job.request.modelID]
        let view = RunView(job: job, baseURL: baseURL, links: links, currency: entry?.pricePerImage.currency ?? "USD",
                           progress: progress)
        id = String(job.id)
        model = "\(owner)/\(job.request.modelID)"
        version = Self.version(of: entry)
        input = job.request
        switch view.output {
        case .one(let url)?: output = [url]
        case .many(let urls)?: output = urls
        case .removed?, nil: output = nil
        }
        status = Self.status(job.status)
        // Replicate's own word for outputs removed after its retention period: the prediction stays, output is null.
        dataRemoved = job.outputsExpiredAt != nil
        error = job.failure.map { "\($0.message) (\($0.code.rawValue))" }
        createdAt = job.createdAt
        startedAt = view.startedAt
        completedAt = view.completedAt
        let get = "\(baseURL)/v1/predictions/\(job.id)"
        urls = ["get": get, "cancel": "\(get)/cancel", "stream": "\(get)/stream"]
        cost = view.cost
        var lines = ["Using seed: \(job.seed)"]
        for lora in job.result?.loras ?? [] {
            lines.append("LoRA \(lora.parameter): \(lora.origin.logText), \(lora.bytes) bytes, sha256 \(lora.sha256.prefix(12)), scale \(Problems.format(lora.scale))")
        }
        if let d = loraDownload {
            lines.append("Downloading LoRA " + RunView.LoRADownload(d).text)
        }
        if let p = view.progress { lines.append(Self.progressLine(step: p.step, total: p.total)) }
        if job.status == .succeeded {
            lines.append(Self.progressLine(step: job.request.numInferenceSteps, total: job.request.numInferenceSteps))
        }
        logs = job.status == .queued ? "" : lines.joined(separator: "\n")
        var predictTime: Double?
        if let inference = job.result?.inferenceMs, let encode = job.result?.encodeMs { predictTime = (inference + encode) / 1000 }
        let total = job.finishedAt.map { $0.timeIntervalSince(job.createdAt) }
        metrics = Metrics(predictTime: predictTime, totalTime: total, imageCount: job.result?.outputs.count ?? 0,
                          price: cost.pricePerImage, amountCharged: cost.amountCharged, currency: cost.currency)
    }

    static let statuses = JobStatus.allCases.map(status)

    /// tqdm's line, the form Replicate's clients read progress from.
    static func progressLine(step: Int, total: Int) -> String {
        let percent = total > 0 ? step * 100 / total : 0
        let filled = total > 0 ? step * 10 / total : 0
        return "\(percent)%|\(String(repeating: "█", count: filled))\(String(repeating: " ", count: 10 - filled))| \(step)/\(total)"
    }
}

extension ReplicatePrediction {
    static var schema: JSONSchema {
        .component("Prediction", .keyed(CodingKeys.self, required: CodingKeys.allCases.filter { ![.startedAt, .completedAt].contains($0) }) { key in
            switch key {
            case .id, .model, .version, .source, .logs: .string()
            case .input: .anyObject
            case .output: .nullable(.array(of: .string()))
            case .error: JSONSchema(type: .string, .null)
            case .status: .strings(statuses)
            case .dataRemoved: .boolean
            case .createdAt, .startedAt, .completedAt: .string(format: "date-time")
            case .urls: .object(["get": .string(), "cancel": .string(), "stream": .string()], required: ["get", "cancel", "stream"])
            case .metrics:
                .keyed(Metrics.CodingKeys.self, required: [.imageCount, .price, .amountCharged, .currency]) { key in
                    switch key {
                    case .predictTime, .totalTime: .number()
                    case .imageCount, .price, .amountCharged: .integer()
                    case .currency: .string()
                    }
                }
            case .cost: RunCost.schema
            }
        })
    }
}

/// An optional that encodes as JSON `null` when it is nil, where the synthesized encoder would leave its key out.
@propertyWrapper
struct NullWhenAbsent<Value: Encodable & Sendable>: Encodable, Sendable {
    var wrappedValue: Value?
    init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(wrappedValue)
    }
}
