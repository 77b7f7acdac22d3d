import AtelierCore
import AtelierEngine
import AtelierPersistence
@testable import AtelierRuns
import AtelierStorage
import AtelierTesting
import Foundation
import Logging
import Testing

/// The run use case without any API in front of it: a real SQLite file and output folder, and a queue that only
/// counts (no worker: the tests play the worker's part through the events and the store).
@Suite(.timeLimit(.minutes(1))) struct RunServiceTests {
    let store: SQLiteStore
    let queue = InMemoryRunQueue()
    let service: RunService
    let account: KeyRecord
    let logger = Logger(label: "test")

    init() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atelier-runs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        store = try SQLiteStore(path: dir.appendingPathComponent("db.sqlite").path)
        let storage = try LocalFolderStorage(root: dir.appendingPathComponent("outputs"))
        service = RunService(catalog: ModelCatalog([try RepositoryCatalog.entry()]), jobs: store, accounts: store, storage: storage, queue: queue)
        let id = try await store.ensureAccount(named: "t")
        _ = try await store.addCredit(accountID: id, amount: 100, kind: .credit, reason: "test", now: Date())
        let key = APIKey.generate()
        try await store.addKey(key, accountID: id)
        account = try #require(try await store.lookupKey(hash: key.hash))
    }

    func submit(_ extra: [String: ParameterValue] = [:], idempotencyKey: String? = nil) async throws -> RunService.Submitted {
        let parameters: [String: ParameterValue] = ["model_id": .string("flux-cute-3d-kawaii"), "prompt": .string("a cat"),
                                                    "aspect_ratio": .string("1:1"), "num_outputs": .number(2)]
        return try await service.submit(.init(parameters: parameters.merging(extra) { $1 }, idempotencyKey: idempotencyKey, wait: .zero),
                                        account: account, logger: logger)
    }

    @Test func aSubmittedRunIsQueuedWithItsHoldAndTheQueueWoken() async throws {
        let submitted = try await submit()
        #expect(!submitted.replayed && submitted.job.status == .queued)
        #expect(queue.queuedCount == 1)
        #expect(try await store.balance(accountID: account.accountID) == Balance(balance: 100, held: 6))
        let cost = try await service.cost(of: submitted.job, account: account)
        #expect(cost.amountHeld == 6 && cost.availableBalance == 94)
    }

    @Test func theSameIdempotencyKeyAndRequestReplaysTheFirstRun() async throws {
        let first = try await submit(idempotencyKey: "k-1")
        let again = try await submit(idempotencyKey: "k-1")
        #expect(again.replayed && again.job.id == first.job.id)
        await #expect(throws: AtelierError.self) { try await submit(["prompt": .string("a dog")], idempotencyKey: "k-1") }
        #expect(queue.queuedCount == 1)
        #expect(try await store.balance(accountID: account.accountID).held == 6)
    }

    @Test func badParametersQueueAndHoldNothing() async throws {
        await #expect(throws: AtelierError.self) { try await submit(["aspect_ratio": .string("2:1")]) }
        #expect(queue.queuedCount == 0)
        #expect(try await store.balance(accountID: account.accountID) == Balance(balance: 100, held: 0))
    }

    @Test func aCanceledQueuedRunReleasesItsHold() async throws {
        let submitted = try await submit()
        let canceled = try await service.cancel(submitted.job.id, account: account, logger: logger)
        #expect(canceled.status == .canceled)
        #expect(try await store.balance(accountID: account.accountID) == Balance(balance: 100, held: 0))
        // Again: the same answer, nothing more released.
        #expect(try await service.cancel(submitted.job.id, account: account, logger: logger).status == .canceled)
    }

    /// A run followed from the queue to its end: the moments each API's stream renders, in order, ending with
    /// the run as stored.
    @Test func aFollowedRunGoesFromQueuedThroughProgressToItsEnd() async throws {
        let submitted = try await submit()
        let id = submitted.job.id
        var moments = try await service.follow(id, account: account).makeAsyncIterator()
        guard case .queued(let position)? = await moments.next() else { Issue.record("the stream must open queued"); return }
        #expect(position == 0)  // no run ahead of it
        let claimed = try #require(try await store.claimNext(now: Date(), lease: 30))
        await queue.events.jobStarted(id, attempt: claimed.attempts)
        guard case .started(let attempt)? = await moments.next() else { Issue.record("started must follow"); return }
        #expect(attempt == 1)
        await queue.events.jobProgressed(id, step: 1, total: 1)
        guard case .progress(let p)? = await moments.next() else { Issue.record("progress must follow"); return }
        #expect(p.step == 1 && p.total == 1)
        _ = try await store.fail(id: id, attempt: 1, failure: JobFailure(code: .generationFailed, message: "m"), now: Date())
        await queue.events.jobFinished(id)
        guard case .ended(let job)? = await moments.next() else { Issue.record("the end must follow"); return }
        #expect(job.status == .failed)
        #expect(await moments.next() == nil)
    }

    @Test func anotherAccountsRunCannotBeFollowedOrCanceled() async throws {
        let submitted = try await submit()
        let other = try await store.ensureAccount(named: "other")
        let key = APIKey.generate()
        try await store.addKey(key, accountID: other)
        let stranger = try #require(try await store.lookupKey(hash: key.hash))
        await #expect(throws: AtelierError.self) { _ = try await service.follow(submitted.job.id, account: stranger) }
        await #expect(throws: AtelierError.self) { _ = try await service.cancel(submitted.job.id, account: stranger, logger: logger) }
        #expect(try await store.job(id: submitted.job.id)?.status == .queued)
    }
}
