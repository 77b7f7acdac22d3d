import AtelierCore
import AtelierEngine
import Synchronization

/// One moment of a run's life as a stream follows it. Each API renders these in its own event names
/// (`RunEventStream` for /api/v4, `ReplicateRoutes+Stream` for Replicate's); the order and pacing are decided here.
public enum RunMoment: Sendable {
    /// Waiting in the queue when the stream opened, with its place (nil when unknown).
    case queued(position: Int?)
    /// Back in the queue after its worker was lost.
    case requeued(position: Int?)
    case started(attempt: Int)
    /// At most a few a second, the last step always.
    case progress(JobProgress)
    /// One of the run's LoRAs is downloading (before its steps start): how far it got, when that changed.
    case loraDownload(RunSnapshot.LoRADownload)
    /// The run ended; the run as stored. Always the last moment.
    case ended(Job)
    /// Nothing happened for a while: a comment keeps proxies from closing an idle stream.
    case keepAlive
}

extension RunService {
    /// The least time between two progress moments (the last step is always sent).
    public static let progressInterval: Duration = .milliseconds(250)
    public static let keepAliveInterval: Duration = .seconds(15)

    /// The run's life from now on: its current state first, then what happens to it, ending with `.ended` (or
    /// earlier, when the server shuts down: the client reconnects to whoever serves next). 404 for a run the
    /// account does not own.
    public func follow(_ id: Int64, account: KeyRecord) async throws -> AsyncStream<RunMoment> {
        _ = try await ownedJob(id, account: account)
        // Subscribe before reading the state, so nothing between the read and the subscription is missed.
        let updates = await queue.events.events(id)
        let opening = try await ownedJob(id, account: account)
        let (moments, output) = AsyncStream<RunMoment>.makeStream()
        let task = Task { [self] in
            await self.replay(opening, then: updates, into: output)
            output.finish()
        }
        output.onTermination = { _ in task.cancel() }
        return moments
    }

    private func replay(_ opening: Job, then updates: AsyncStream<JobEvents.Event>, into output: AsyncStream<RunMoment>.Continuation) async {
        let id = opening.id
        switch opening.status {
        case .queued:
            output.yield(.queued(position: try? await jobs.queuePosition(id: id)))
        case .running:
            output.yield(.started(attempt: opening.attempts))
            if let p = await progress(of: opening) { output.yield(.progress(p)) }
        case .succeeded, .failed, .canceled:
            output.yield(.ended(opening))
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.keepAliveInterval)
                    if !Task.isCancelled { output.yield(.keepAlive) }
                }
            }
            let stepsBegan = Flag()
            if opening.request.loras?.contains(where: { $0.url != nil }) == true {
                group.addTask { await self.followDownloads(of: opening, until: stepsBegan, into: output) }
            }
            var lastProgress: ContinuousClock.Instant?
            for await event in updates {
                switch event {
                case .requeued:
                    output.yield(.requeued(position: try? await jobs.queuePosition(id: id)))
                case .started(let attempt):
                    output.yield(.started(attempt: attempt))
                case .progress(let p):
                    stepsBegan.set()
                    let now = ContinuousClock.now
                    if p.step == p.total || lastProgress.map({ now - $0 >= Self.progressInterval }) ?? true {
                        lastProgress = now
                        output.yield(.progress(p))
                    }
                case .finished:
                    if let job = try? await jobs.job(id: id) { output.yield(.ended(job)) }
                    group.cancelAll()
                    return
                }
            }
            group.cancelAll()
        }
    }

    /// A run's LoRA downloads as they go (the cluster's leases carry their progress), until its steps begin.
    private func followDownloads(of job: Job, until stepsBegan: Flag, into output: AsyncStream<RunMoment>.Continuation) async {
        var last: RunSnapshot.LoRADownload?
        while !Task.isCancelled && !stepsBegan.isSet {
            if let now = await loraDownload(of: job), now != last {
                last = now
                output.yield(.loraDownload(now))
            }
            try? await Task.sleep(for: Self.progressInterval * 2)
        }
    }
}

/// A one-way switch shared by a stream's tasks.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
