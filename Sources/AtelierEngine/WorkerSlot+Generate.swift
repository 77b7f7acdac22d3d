import AtelierCore
import Foundation
import Logging

/// The pipeline call: one `generate` (or `generate_batch`) line to the worker, and its answers read back.
extension WorkerSlot {
    /// Sends the jobs as one command (`generate` alone, `generate_batch` for several) and waits until each has its
    /// answer; a crash, a broken protocol or the timeout (`jobTimeout` per run in the call) ends all that are left.
    func generate(_ batch: [Job], inputPaths: [Int64: [String]], loras: [Int64: [LoRAFiles.Local]] = [:],
                  on worker: WorkerProcess) async -> [Int64: Outcome] {
        var outcomes: [Int64: Outcome] = [:]
        var commands: [(id: Int64, command: GenerateCommand)] = []
        for job in batch {
            var paths: [String] = []
            for name in job.outputNames(forAttempt: job.attempts) {
                guard let path = files.storage.stagingPath(for: name) else {
                    outcomes[job.id] = .failed(WorkerErrorReport(jobID: String(job.id), code: RunFailureCode.storageError.rawValue, message: "invalid output name \(name)"))
                    break
                }
                paths.append(path)
            }
            if outcomes[job.id] != nil { continue }
            var command = GenerateCommand(job: job, paths: paths, inputPaths: inputPaths[job.id] ?? [])
            command.loras = (loras[job.id] ?? []).map {
                GenerateCommand.LoRA(path: $0.path, sha256: $0.sha256, scale: $0.lora.scale, parameter: $0.lora.parameter)
            }
            commands.append((job.id, command))
        }
        guard !commands.isEmpty else { return outcomes }
        do {
            try worker.send(commands.count == 1 ? .generate(commands[0].command) : .generateBatch(commands.map(\.command)))
        } catch {
            for c in commands { outcomes[c.id] = .protocolBroken("writing to the worker failed: \(error)") }
            return outcomes
        }
        // The worker names jobs by the string it was sent.
        let waiting = Dictionary(uniqueKeysWithValues: commands.map { ($0.command.jobID, $0.id) })
        let attempts = Dictionary(uniqueKeysWithValues: batch.map { ($0.id, $0.attempts) })
        let events = self.events
        let slot = self
        let timeout = config.jobTimeout * commands.count
        let sleeper = config.clock
        let answered = await withTaskGroup(of: [Int64: Outcome]?.self) { group in
            group.addTask {
                var got: [Int64: Outcome] = [:]
                func endAll(_ outcome: Outcome) -> [Int64: Outcome] {
                    for id in waiting.values where got[id] == nil { got[id] = outcome }
                    return got
                }
                for await event in worker.events {
                    switch event {
                    case .message(.progress(let p)):
                        if let id = waiting[p.jobID] {
                            await events.jobProgressed(id, step: p.step, total: p.total)
                            slot.shareProgress(id, attempt: attempts[id] ?? 0, step: p.step, total: p.total)
                        }
                    case .message(.result(let r)):
                        if let id = waiting[r.jobID] { got[id] = .succeeded(r) }
                    case .message(.error(let e)):
                        if let key = e.jobID, let id = waiting[key] { got[id] = .failed(e) }
                        else if e.jobID == nil { return endAll(.failed(e)) }
                    case .exited(let status, let signaled):
                        return endAll(.crashed(status: status, signaled: signaled, log: worker.lastLogLines))
                    case .garbage(let line):
                        slot.logger.warning("worker \(worker.pid) wrote a non-protocol line: \(line.prefix(200))")
                    default:
                        continue
                    }
                    if got.count == waiting.count { return got }
                }
                return endAll(.crashed(status: -1, signaled: false, log: worker.lastLogLines))
            }
            group.addTask {
                try? await sleeper.sleep(for: timeout)
                return Task.isCancelled ? nil : [:]
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? [:]
        }
        for id in waiting.values { outcomes[id] = answered[id] ?? .timedOut }
        return outcomes
    }

    /// On a shared database, progress is stored so requests on other nodes see it: at most every
    /// `progressInterval` per run, and the last step always. Fire and forget: a slow database must not hold up
    /// reading the worker's answers.
    func shareProgress(_ id: Int64, attempt: Int, step: Int, total: Int) {
        let store = dispatcher.store
        guard store.sharedByNodes else { return }
        let now = clock.now()
        let due = board.progressSharedAt.withLock { sent -> Bool in
            if step < total, let last = sent[id], now.timeIntervalSince(last) < config.progressInterval.timeInterval { return false }
            sent[id] = step < total ? now : nil
            return true
        }
        guard due else { return }
        Task { _ = try? await store.recordProgress(id: id, attempt: attempt, step: step, total: total) }
    }
}
