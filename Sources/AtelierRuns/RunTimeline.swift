import AtelierCore
import AtelierEngine

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
            var lastProgress: ContinuousClock.Instant?
            for await event in updates {
                switch event {
                case .requeued:
                    output.yield(.requeued(position: try? await jobs.queuePosition(id: id)))
                case .started(let attempt):
                    output.yield(.started(attempt: attempt))
                case .progress(let p):
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
}
