import AtelierCore
import AtelierMetrics
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

public enum SupervisorError: Error, CustomStringConvertible {
    /// Restarting cannot help (weights missing, bad configuration): start-up stops with the worker's explanation.
    case fatal(String)
    public var description: String {
        switch self { case .fatal(let m): m }
    }
}

/// The node's workers as one service: a `WorkerSlot` per worker (one process and its state machine), each
/// claiming through the `RunDispatcher` and writing ends through the `OutcomeRecorder`, and the `LeaseSweeper`
/// beside them. It owns what they share: intake (the drain), cancel routing and the slots' states.
public final class WorkerSupervisor: Service, Sendable {
    let config: SupervisorConfiguration
    let board: SlotBoard
    let slots: [WorkerSlot]
    let sweeper: LeaseSweeper
    let store: any JobStore
    /// Per-request LoRAs on this node (nil: none served).
    let loraFiles: LoRAFiles?
    public let events: JobEvents
    public let wake: WakeSignal
    let logger: Logger
    private let shutdownRequested = Atomic<Bool>(false)

    public init(
        launch: WorkerLaunch, config: SupervisorConfiguration, store: any JobStore, storage: any ImageStorage,
        inputs: (any ImageStorage)? = nil, events: JobEvents? = nil, wake: WakeSignal? = nil,
        clock: any WallClock = SystemWallClock(), storageBreaker: CircuitBreaker? = nil, metrics: AtelierMetrics = AtelierMetrics(),
        loras: LoRASources? = nil, logger: Logger
    ) {
        let events = events ?? JobEvents(clock: config.clock)
        let wake = wake ?? WakeSignal(clock: config.clock)
        let board = SlotBoard(workerCount: config.workerCount)
        let recorder = OutcomeRecorder(store: store, storage: storage, inputs: inputs, events: events, wake: wake,
                                       maxAttempts: config.maxAttempts, jobTimeout: config.jobTimeout, clock: clock,
                                       sleeper: config.clock, metrics: metrics, logger: logger)
        let dispatcher = RunDispatcher(store: store, config: config, clock: clock, storage: storageBreaker, probe: storage, logger: logger)
        let loraFiles = loras.flatMap { l -> LoRAFiles? in
            do {
                return try LoRAFiles(store: l.store, downloader: l.downloader, cacheDirectory: l.cacheDirectory, cacheBudget: l.diskBudget,
                                     limits: l.limits, leases: l.leases, node: l.node, wallClock: clock, sleeper: config.clock,
                                     metrics: metrics, logger: logger)
            } catch {
                logger.error("per-request LoRAs are off on this node: its cache folder \(l.cacheDirectory.path) cannot be made (\(error))")
                return nil
            }
        }
        let files = RunFiles(storage: storage, inputs: inputs, sleeper: config.clock, loras: loraFiles)
        self.loraFiles = loraFiles
        self.config = config
        self.board = board
        self.store = store
        self.events = events
        self.wake = wake
        self.logger = logger
        slots = (0..<config.workerCount).map {
            WorkerSlot(index: $0, board: board, launch: launch, config: config, dispatcher: dispatcher, recorder: recorder,
                       files: files, clock: clock, metrics: metrics, logger: logger)
        }
        sweeper = LeaseSweeper(lease: config.lease, recorder: recorder)
    }

    public var status: [WorkerSlotStatus] { board.status }

    /// Fetches LoRAs into the cluster's store (and this node's cache) in the background: shared downloads and leases
    /// (`LoRAFiles`) make a run's worker slot join, not repeat, a fetch already under way.
    public func prefetch(_ loras: [RequestedLoRA]) {
        guard let files = loraFiles else { return }
        for lora in loras where lora.url != nil {
            Task { _ = await files.resolve(lora) }
        }
    }

    /// Returns once the slots' states satisfy `holds` (the drain waits for no slot busy), or when the task is
    /// cancelled; woken by each change, never polled.
    public func waitForSlots(_ holds: @escaping @Sendable ([WorkerSlotStatus]) -> Bool) async {
        await board.waitUntil(holds)
    }

    /// False on an API-only node: no slots of its own, only the sweeper.
    public var runsWorkers: Bool { config.workerCount > 0 }

    /// Queues are woken here by the HTTP layer after it stored a job.
    public func jobQueued() async {
        await wake.signal()
    }

    public func run() async throws {
        // Alone on its store, no lease from a previous process is still held: whatever it left running is retried
        // or failed now. On a shared database the other nodes' leases are live; only lapsed ones are taken.
        let recovered = try await sweeper.sweep(store.sharedByNodes ? .expired : .all)
        if !recovered.isEmpty {
            logger.warning("recovered runs left running by a previous server process: \(recovered.requeued.count) requeued, \(recovered.failed.count) failed")
        }
        let board = self.board
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await self.sweeper.run { board.isStopping } }
                try await withThrowingTaskGroup(of: Void.self) { running in
                    for slot in slots { running.addTask { try await slot.run() } }
                    try await running.waitForAll()
                }
                // An API-only node has no slots, but its sweeper serves the shared queue until shutdown.
                if config.workerCount == 0, !board.isStopping { try? await gracefulShutdown() }
                // The slots are done (drained, or one failed fatally): the sweeper stops too.
                group.cancelAll()
            }
            // Drained by `beginDrain` before the service group asked: a service may not return before it is told.
            if !shutdownRequested.load(ordering: .relaxed) { try? await gracefulShutdown() }
        } onGracefulShutdown: {
            self.shutdownRequested.store(true, ordering: .relaxed)
            self.beginDrain()
        }
    }

    /// Stops intake of new jobs; running jobs get `drainTimeout` to finish, then their workers are stopped and
    /// the jobs requeued. Idempotent.
    public func beginDrain() {
        guard board.beginStopping() else { return }
        logger.info("draining: no new jobs start; running jobs have \(config.drainTimeout) to finish")
        let clock = config.clock
        let timeout = config.drainTimeout
        Task {
            await self.wake.releaseAll()
            try? await clock.sleep(for: timeout)
            self.board.expireDrain()
            let left = self.board.running.withLock { $0 }
            for (id, entry) in left {
                self.logger.warning("drain timeout: stopping the worker of run \(id); the run goes back to the queue")
                entry.worker.kill()
            }
        }
    }

    public var isDraining: Bool { board.isStopping }

    /// Asks the worker running this job to stop at its next step. The store already marked it canceled; this only
    /// saves the GPU time.
    public func cancel(_ id: Int64) {
        guard let entry = board.running.withLock({ $0[id] }) else { return }
        try? entry.worker.send(.cancel(jobID: String(id)))
    }
}
