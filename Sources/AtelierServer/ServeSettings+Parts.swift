import AtelierCore
import AtelierEngine
import AtelierHTTP
import AtelierRuns
import Foundation
import Logging

/// Each part's configuration, read from the settings: the one place where a setting becomes a part's value.
extension ServeSettings {
    var supervisorConfiguration: SupervisorConfiguration {
        var config = SupervisorConfiguration()
        config.workerCount = workers
        config.jobTimeout = .seconds(jobTimeoutSeconds)
        config.drainTimeout = .seconds(drainTimeoutSeconds)
        config.maxAttempts = maxAttempts
        config.readyTimeout = .seconds(workerReadyTimeoutSeconds)
        config.batchSize = batchSize
        config.batchWindow = .milliseconds(batchWindowMilliseconds)
        config.lease = .seconds(leaseSeconds)
        return config
    }

    var apiConfiguration: APIConfiguration {
        var config = APIConfiguration()
        config.publicBaseURL = publicURL
        config.waitWindow = .seconds(waitSeconds)
        config.maxConcurrentRuns = maxConcurrentRuns
        config.maxWait = .seconds(maxWaitSeconds)
        config.outboundPolicy = OutboundAddressPolicy(allowedHosts: outboundAllow)
        config.imageLimits = ImageLimits(maxBytes: inputMaxMegabytes * 1_000_000, maxPixels: inputMaxMegapixels * 1_000_000)
        config.fetchLimits.totalTimeout = .seconds(fetchTimeoutSeconds)
        config.outputURLs = outputURLs
        config.outputRetention = outputRetentionSeconds.map { .seconds($0) }
        config.dialects.replicateOwner = replicateOwner
        config.loraLimits = loras.limits
        return config
    }

    var webhookConfiguration: WebhookConfiguration {
        var config = WebhookConfiguration()
        config.policy = OutboundAddressPolicy(allowedHosts: outboundAllow)
        return config
    }

    var rateLimiter: RateLimiter {
        var limits = RateLimiter.Configuration()
        limits.requestsPerMinute = rateLimit
        return RateLimiter(config: limits)
    }

    /// The models a worker pool serves share its base and safety checker; anything else is a configuration error
    /// found at start-up, not at the first request.
    static func checkOneBase(_ entries: [ModelEntry]) throws {
        guard let first = entries.first else { return }
        for e in entries.dropFirst() {
            if e.base != first.base {
                throw SetupError("models \(first.id) and \(e.id) name different base weights; one server serves one base (its models differ by LoRA). Serve the other base from a second server with its own --models-dir")
            }
            if e.safetyChecker != first.safetyChecker {
                throw SetupError("models \(first.id) and \(e.id) name different safety checkers; models on one base share one")
            }
        }
    }

    /// How the worker processes start: the base, each model's LoRA, the device and the compile cache.
    func workerLaunch(for entries: [ModelEntry], logger: Logger) throws -> WorkerLaunch {
        var args = ["serve", "--device", device, "--threads", String(workerThreads)]
        let first = entries[0]
        switch profile {
        case .demo:
            // Each model with a LoRA gets a tiny one of its own (the first keeps tiny-lora.safetensors).
            let extra = entries.dropFirst().filter { $0.lora != nil }.map(\.id)
            let tiny = try TinyModel.ensure(at: tinyModelDirectory, extraLoRAs: extra, python: python,
                                            workerDirectory: workerDirectory, logger: logger)
            logger.warning("DEMO PROFILE: \(entries.map(\.id).joined(separator: ", ")) run on a tiny model with RANDOM weights at \(tiny.path); every image is noise. Use --profile production with real weights for real images.")
            args += ["--base", tiny.appendingPathComponent("pipeline").path, "--allow-random-weights"]
            for (i, e) in entries.enumerated() {
                guard e.lora != nil else { args += ["--model", e.id]; continue }
                let file = i == 0 ? TinyModel.loraFile(tiny) : TinyModel.extraLoRAFile(tiny, modelID: e.id)
                args += ["--model", "\(e.id)=\(file.path)"]
            }
        case .production:
            guard let base = first.base.reference else {
                throw SetupError("model \(first.id) names no base weights (base.folder or base.repo)")
            }
            args += ["--base", base]
            for e in entries {
                if let file = e.lora?.file {
                    args += ["--model", "\(e.id)=\(file)"]
                } else if let repo = e.lora?.repo {
                    args += ["--model", "\(e.id)=\(repo)" + (e.lora?.weightName.map { "#\($0)" } ?? "")]
                } else {
                    args += ["--model", e.id]
                }
            }
        }
        if let checker = first.safetyChecker { args += ["--safety-checker", checker] }
        // On a GPU the worker compiles its paths (go_fast's fp8 transformer, the standard one's compiled twin) after
        // it reports ready, and warms each at these sizes in the background; a size not warm yet runs eager. Its
        // compile artifacts stay in the data folder, so a restart here warms in seconds. A CPU compiles nothing.
        args += ["--warmup-sizes", SizeTable.allSizes.map { "\($0.width)x\($0.height)" }.joined(separator: ",")]
        args += ["--compile-cache", URL(fileURLWithPath: dataDirectory).appendingPathComponent("compile-cache").path]
        args += ["--lora-memory-mb", String(loras.memoryMegabytes)]
        return WorkerLaunch(python: python, workerDirectory: workerDirectory, arguments: args,
                            environment: ["OMP_NUM_THREADS": String(workerThreads)])
    }
}
