import AtelierCore
import Foundation

/// Why a run's images could not move between the store and the worker.
enum StorageProblem: Error {
    /// The store cannot be reached: the run is retried.
    case unavailable(String)
    /// The image is not in the store (a configuration fault, such as nodes that do not share one store).
    case missing(String)

    func outcome(jobID: Int64) -> Outcome {
        switch self {
        case .unavailable(let why): .storageFailed(why)
        case .missing(let why): .failed(WorkerErrorReport(jobID: String(jobID), code: RunFailureCode.storageError.rawValue, message: why))
        }
    }
}

/// A run's images on their way between the image store and the worker: inputs copied to this machine for it, and
/// the images it made published to the store before the run may be recorded as succeeded.
struct RunFiles: Sendable {
    let storage: any ImageStorage
    /// Where a run's input images are kept until it ends (nil: no image inputs configured).
    let inputs: (any ImageStorage)?
    /// Times the pause before a second try at publishing.
    let sleeper: any Clock<Duration>
    /// Where a run's own LoRAs come from (nil: this node serves no per-request LoRAs).
    let loras: LoRAFiles?

    /// The run's own LoRAs on this machine, for the worker; or what ends the attempt.
    func localLoRAs(of job: Job) async -> LoRAFiles.Prepared {
        guard !(job.request.loras ?? []).isEmpty else { return .ready([]) }
        guard let loras else {
            return .ended(.refused(JobFailure(code: .loraUnavailable, message: "this server does not fetch per-request LoRAs")))
        }
        return await loras.localFiles(of: job)
    }

    /// Files on this machine with the run's input images, for the worker: the stored files themselves for a
    /// folder, downloads for a bucket.
    func localInputs(of job: Job) async -> Result<[String], StorageProblem> {
        guard !job.request.inputImages.isEmpty else { return .success([]) }
        guard let inputs else { return .failure(.missing("this node keeps no input images, but the run has some")) }
        var paths: [String] = []
        for input in job.request.inputImages {
            do {
                paths.append(try await inputs.localCopy(of: input.file))
            } catch let error as StorageUnavailable {
                releaseInputs(of: job)
                return .failure(.unavailable("its input images could not be read: \(error.reason)"))
            } catch {
                releaseInputs(of: job)
                return .failure(.missing("the run's input images are not where they were stored (\(error))"))
            }
        }
        return .success(paths)
    }

    func releaseInputs(of job: Job) {
        for input in job.request.inputImages { inputs?.releaseLocalCopy(of: input.file) }
    }

    /// Publishes every image of each succeeded run. An outage gets a second try a second later (the S3 client
    /// retries each call for several seconds too); what still cannot be stored makes the run `storageFailed`,
    /// whose recording deletes what this attempt stored of it.
    func storeImages(of batch: [Job], _ outcomes: [Int64: Outcome]) async -> [Int64: Outcome] {
        var stored = outcomes
        for job in batch {
            guard case .succeeded(let result) = outcomes[job.id] else { continue }
            let names = job.outputNames(forAttempt: job.attempts)
            let staged = Set(result.images.map(\.path))
            for name in names where storage.stagingPath(for: name).map(staged.contains) == true {
                if let problem = await publish(name) {
                    stored[job.id] = .storageFailed("image \(name) could not be stored: \(problem)")
                    break
                }
            }
        }
        return stored
    }

    /// nil once stored; the last reason otherwise.
    private func publish(_ name: String) async -> String? {
        let rounds = 2
        var last = ""
        for round in 1...rounds {
            do {
                try await storage.publish(name: name)
                return nil
            } catch {
                last = "\(error)"
            }
            if round < rounds { try? await sleeper.sleep(for: .seconds(1)) }
        }
        return last
    }
}
