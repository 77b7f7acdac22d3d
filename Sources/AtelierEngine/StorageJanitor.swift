import AtelierCore
import Foundation
import Logging

/// Deletes of objects nothing will deliver (a failed attempt's images, the input of a request that was refused),
/// done in the background and tried again until the store takes them. A call to a bucket that timed out may still
/// be carried out when the bucket wakes up (a paused server reads its socket later), so an upload that "failed"
/// can leave an object behind: its delete must outlive the outage, not be tried once while the store is down.
/// Tries stop after `patience` (logged); a node that dies meanwhile leaves the object, as an unfinished upload would.
public struct StorageJanitor: Sendable {
    let storage: any ImageStorage
    let clock: any Clock<Duration>
    let patience: Duration
    /// How long after a delete an upload held by a woken bucket is assumed to have landed.
    let settle: Duration = .seconds(10)
    let logger: Logger

    public init(storage: any ImageStorage, clock: any Clock<Duration> = ContinuousClock(), patience: Duration = .seconds(900), logger: Logger) {
        self.storage = storage
        self.clock = clock
        self.patience = patience
        self.logger = logger
    }

    /// Tries each delete once now; what the store did not take is tried again in the background (and, since the
    /// store was failing, deleted once more after it settled: see `deleteLater`).
    public func delete(_ names: [String]) async {
        var left: [String] = []
        for name in names {
            do { try await storage.delete(name: name) } catch { left.append(name) }
        }
        guard !left.isEmpty else { return }
        logger.warning("\(left.count) object(s) nothing delivers could not be deleted yet; trying again in the background")
        deleteLater(left, landing: true)
    }

    /// Starts deleting `names` in the background; returns at once. `landing`: the objects' uploads timed out, so
    /// each may still land after it was deleted (a paused bucket carries out the requests it held when it wakes,
    /// in any order): it is deleted once more `settle` after the first delete that succeeded.
    public func deleteLater(_ names: [String], landing: Bool = false) {
        guard !names.isEmpty else { return }
        Task {
            guard await deleteNow(names), landing else { return }
            try? await clock.sleep(for: settle)
            await deleteNow(names)
        }
    }

    /// Deletes `names`, pausing (1 s, doubling up to 5 s) while the store cannot be reached; false if it gave up.
    @discardableResult
    public func deleteNow(_ names: [String]) async -> Bool {
        var left = names
        var pause: Duration = .seconds(1)
        var waited: Duration = .zero
        while true {
            var failed: [String] = []
            for name in left {
                do { try await storage.delete(name: name) } catch { failed.append(name) }
            }
            left = failed
            if left.isEmpty { return true }
            guard waited < patience else {
                logger.error("could not delete \(left.count) object(s) nothing delivers after \(patience): \(left.joined(separator: ", "))")
                return false
            }
            try? await clock.sleep(for: pause)
            waited += pause
            pause = min(pause * 2, .seconds(5))
        }
    }
}
