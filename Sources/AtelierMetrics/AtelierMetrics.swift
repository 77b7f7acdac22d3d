import CoreMetrics
import Foundation

/// Every metric Atelier records itself, named in one place (docs/operations.md lists them with the HTTP ones of
/// `HTTPRequestMetrics`). Names follow Prometheus' conventions: the `atelier_` prefix, base
/// units (seconds, minor currency units), `_total` on counters. The factory is injected: the server passes the
/// Prometheus one behind `/metrics`; tests and tools that export nothing get the no-op factory.
public struct AtelierMetrics: Sendable {
    let factory: any MetricsFactory

    public init(factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.factory = factory
    }

    public enum Name {
        public static let runsSubmitted = "atelier_runs_submitted_total"
        public static let runsStarted = "atelier_runs_started_total"
        public static let runsEnded = "atelier_runs_ended_total"
        public static let runsRetried = "atelier_runs_retried_total"
        public static let runsCanceled = "atelier_runs_canceled_total"
        public static let queueSeconds = "atelier_run_queue_seconds"
        public static let inferenceSeconds = "atelier_run_inference_seconds"
        public static let durationSeconds = "atelier_run_duration_seconds"
        public static let imagesGenerated = "atelier_images_generated_total"
        public static let creditCaptured = "atelier_credit_captured_minor_total"
        public static let workerRestarts = "atelier_worker_restarts_total"
        public static let batchSize = "atelier_batch_size"
        public static let runsQueued = "atelier_runs_queued"
        public static let runsRunning = "atelier_runs_running"
        public static let workerSlots = "atelier_worker_slots"
        public static let compiledPathState = "atelier_compiled_path_state"
        public static let webhookAttempts = "atelier_webhook_attempts_total"
        public static let outputsExpired = "atelier_outputs_expired_total"
        public static let holdsOpen = "atelier_credit_holds_open"
        public static let heldCredit = "atelier_credit_held_minor"
        public static let outboundRefused = "atelier_outbound_refused_total"
        public static let gpuMemoryUsed = "atelier_gpu_memory_used_bytes"
        public static let gpuMemoryTotal = "atelier_gpu_memory_total_bytes"
        public static let gpuUtilization = "atelier_gpu_utilization_ratio"
        public static let loraSwitches = "atelier_lora_switches_total"
        public static let promptCacheHits = "atelier_prompt_cache_hits_total"
        public static let promptCacheMisses = "atelier_prompt_cache_misses_total"
        public static let storageCalls = "atelier_storage_calls_total"
        public static let storageSeconds = "atelier_storage_call_seconds"
        public static let storageBreakerOpen = "atelier_storage_breaker_open"
        public static let loraResolved = "atelier_lora_resolved_total"
        public static let loraDownloadBytes = "atelier_lora_download_bytes_total"
        public static let loraDownloadSeconds = "atelier_lora_download_seconds"
        public static let loraEvictions = "atelier_lora_cache_evictions_total"
    }

    /// Image runs take seconds to minutes: buckets up to the 300 s job timeout (Prometheus' defaults stop at 10 s).
    public static let runBuckets: [Duration] = [0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300]
        .map { .milliseconds(Int($0 * 1000)) }
    public static let batchBuckets: [Double] = [1, 2, 3, 4, 6, 8, 16]

    /// A run was accepted and queued (on the API node that took the request).
    public func runSubmitted(model: String) {
        Counter(label: Name.runsSubmitted, dimensions: [("model", model)], factory: factory).increment()
    }

    /// A worker took a run; `waited`: since it was queued (its first attempt) or requeued.
    public func runStarted(model: String, waited: TimeInterval) {
        Counter(label: Name.runsStarted, dimensions: [("model", model)], factory: factory).increment()
        CoreMetrics.Timer(label: Name.queueSeconds, dimensions: [("model", model)], factory: factory).record(seconds: waited)
    }

    /// A run ended on this node's worker. `code`: the failure code, "" for succeeded and canceled runs.
    public func runEnded(model: String, status: String, code: String, seconds: TimeInterval, inferenceSeconds: TimeInterval?,
                         images: Int, charged: Int64) {
        Counter(label: Name.runsEnded, dimensions: [("model", model), ("status", status), ("code", code)], factory: factory).increment()
        CoreMetrics.Timer(label: Name.durationSeconds, dimensions: [("model", model), ("status", status)], factory: factory).record(seconds: seconds)
        if let inferenceSeconds {
            CoreMetrics.Timer(label: Name.inferenceSeconds, dimensions: [("model", model)], factory: factory).record(seconds: inferenceSeconds)
        }
        if images > 0 {
            Counter(label: Name.imagesGenerated, dimensions: [("model", model)], factory: factory).increment(by: images)
        }
        if charged > 0 {
            Counter(label: Name.creditCaptured, dimensions: [("model", model)], factory: factory).increment(by: Int(charged))
        }
    }

    /// An attempt ended without an answer and the run went back to the queue.
    public func runRetried(model: String) {
        Counter(label: Name.runsRetried, dimensions: [("model", model)], factory: factory).increment()
    }

    /// A client canceled a queued or running run (on the API node that took the cancel).
    public func runCanceled(model: String) {
        Counter(label: Name.runsCanceled, dimensions: [("model", model)], factory: factory).increment()
    }

    public func workerRestarted(slot: Int) {
        Counter(label: Name.workerRestarts, dimensions: [("slot", String(slot))], factory: factory).increment()
    }

    /// Images one pipeline call made (1 without batching).
    public func batch(images: Int) {
        Recorder(label: Name.batchSize, dimensions: [], aggregate: true, factory: factory).record(images)
    }

    /// One webhook delivery attempt: `delivered`, `retry` (it failed and will be tried again) or `gave_up`.
    public func webhookAttempt(outcome: String) {
        Counter(label: Name.webhookAttempts, dimensions: [("outcome", outcome)], factory: factory).increment()
    }

    /// The retention sweeper deleted a run's images.
    public func outputsExpired(images: Int) {
        Counter(label: Name.outputsExpired, dimensions: [], factory: factory).increment(by: images)
    }

    /// One call to the image store. `operation`: put, get, head, delete; `outcome`: `ok`, `unavailable` (no answer
    /// in time, refused connection, 5xx), `refused` (the store answered with an error) or `skipped` (the circuit
    /// breaker was open: not tried).
    public func storageCall(operation: String, outcome: String, seconds: TimeInterval) {
        Counter(label: Name.storageCalls, dimensions: [("operation", operation), ("outcome", outcome)], factory: factory).increment()
        if outcome != "skipped" {
            CoreMetrics.Timer(label: Name.storageSeconds, dimensions: [("operation", operation)], factory: factory).record(seconds: seconds)
        }
    }

    /// A run's LoRA was found (`origin`: memory, node_disk, cluster_store, download: a miss everywhere) or could
    /// not be used (`origin`: failed).
    public func loraResolved(origin: String) {
        Counter(label: Name.loraResolved, dimensions: [("origin", origin)], factory: factory).increment()
    }

    /// A LoRA was downloaded from its URL (the first use in the cluster): its size and the time it took.
    public func loraDownloaded(bytes: Int, seconds: TimeInterval) {
        Counter(label: Name.loraDownloadBytes, dimensions: [], factory: factory).increment(by: Int64(bytes))
        CoreMetrics.Timer(label: Name.loraDownloadSeconds, dimensions: [], factory: factory).record(seconds: seconds)
    }

    /// Files the node's LoRA disk cache deleted to stay within its budget (`--lora-disk-cache`).
    public func loraEvicted(_ count: Int) {
        Counter(label: Name.loraEvictions, dimensions: [], factory: factory).increment(by: Int64(count))
    }

    /// The image store's circuit breaker opened (1) or closed (0).
    public func storageBreaker(open: Bool) {
        Gauge(label: Name.storageBreakerOpen, dimensions: [], factory: factory).record(open ? 1 : 0)
    }

    /// A client URL (an input image or a webhook) was not fetched or called. `reason`: `address` (an internal or
    /// special-purpose address), `scheme`, `too_large`, `timeout`, `redirects`, `unreachable`, …
    public func outboundRefused(purpose: String, reason: String) {
        Counter(label: Name.outboundRefused, dimensions: [("purpose", purpose), ("reason", reason)], factory: factory).increment()
    }

    /// One accelerator as a worker reported it (the `devices` of the worker protocol's `stats` message).
    public struct GPUDevice: Sendable, Equatable, Codable {
        /// `cuda:0`.
        public var device: String
        public var name: String
        public var memoryUsedBytes: Int64
        public var memoryTotalBytes: Int64
        /// 0...1 from NVML; nil where the worker has none.
        public var utilization: Double?
        public init(device: String, name: String, memoryUsedBytes: Int64, memoryTotalBytes: Int64, utilization: Double?) {
            self.device = device
            self.name = name
            self.memoryUsedBytes = memoryUsedBytes
            self.memoryTotalBytes = memoryTotalBytes
            self.utilization = utilization
        }
        enum CodingKeys: String, CodingKey {
            case device, name, utilization
            case memoryUsedBytes = "memory_used_bytes"
            case memoryTotalBytes = "memory_total_bytes"
        }
    }

    /// A worker's stats report: its device's gauges (none on CPU; workers sharing a card report the same
    /// device-wide values) and how much its counters grew since its previous report.
    public func workerReported(slot: Int, devices: [GPUDevice], loraSwitches: Int, promptCacheHits: Int, promptCacheMisses: Int) {
        for d in devices {
            let labels = [("device", d.device), ("name", d.name)]
            Gauge(label: Name.gpuMemoryUsed, dimensions: labels, factory: factory).record(d.memoryUsedBytes)
            Gauge(label: Name.gpuMemoryTotal, dimensions: labels, factory: factory).record(d.memoryTotalBytes)
            if let u = d.utilization { Gauge(label: Name.gpuUtilization, dimensions: labels, factory: factory).record(u) }
        }
        // Written even at 0, so the series exist from the first report on.
        Counter(label: Name.loraSwitches, dimensions: [], factory: factory).increment(by: loraSwitches)
        Counter(label: Name.promptCacheHits, dimensions: [], factory: factory).increment(by: promptCacheHits)
        Counter(label: Name.promptCacheMisses, dimensions: [], factory: factory).increment(by: promptCacheMisses)
    }

    /// The workers that reported these devices are gone and no live worker of this node reports them: their gauges
    /// go, rather than show memory a dead process no longer holds until its successor's first report.
    public func gpuDevicesGone(_ devices: [GPUDevice]) {
        for d in devices {
            let labels = [("device", d.device), ("name", d.name)]
            for name in [Name.gpuMemoryUsed, Name.gpuMemoryTotal, Name.gpuUtilization] {
                Gauge(label: name, dimensions: labels, factory: factory).destroy()
            }
        }
    }

    /// Sampled at each scrape: the gauges whose truth is elsewhere (the database, the supervisor's slots).
    public func set(_ name: String, _ dimensions: [(String, String)], to value: Int) {
        Gauge(label: name, dimensions: dimensions, factory: factory).record(value)
    }
}

extension CoreMetrics.Timer {
    func record(seconds: TimeInterval) {
        recordNanoseconds(Int64(max(0, seconds) * 1e9))
    }
}
