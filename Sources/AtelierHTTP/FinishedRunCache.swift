import Foundation
import NIOCore
import Synchronization

/// The encoded /api/v4/check answers of finished runs, by request id. A finished run never changes, and polling
/// it is the API's hottest path (clients that missed the wait window poll until they see it done, then again):
/// after the first answer, a poll costs the key check and a dictionary lookup instead of a database read and two
/// JSON round trips. Bounded; the oldest entries go first. With output retention a succeeded run's answer changes
/// once more (its links give way to `output_expired`), so such an entry is kept only until its images are due.
public final class FinishedRunCache: Sendable {
    struct Entry: Sendable {
        var accountID: Int64
        var baseURL: String
        var body: ByteBuffer
        /// Nil: valid for ever.
        var validUntil: Date?
    }
    struct State: Sendable {
        var entries: [Int64: Entry] = [:]
        var order: [Int64] = []
        var head = 0
    }
    private let state = Mutex(State())
    public let capacity: Int

    public init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    /// The cached answer for this run, if it was cached for this account and base URL (output links carry it).
    func body(for id: Int64, accountID: Int64, baseURL: String, now: Date) -> ByteBuffer? {
        state.withLock { s in
            guard let e = s.entries[id], e.accountID == accountID, e.baseURL == baseURL, e.validUntil.map({ now < $0 }) ?? true else {
                return nil
            }
            return e.body
        }
    }

    func store(_ body: ByteBuffer, for id: Int64, accountID: Int64, baseURL: String, validUntil: Date? = nil) {
        state.withLock { s in
            if s.entries.updateValue(Entry(accountID: accountID, baseURL: baseURL, body: body, validUntil: validUntil), forKey: id) == nil {
                s.order.append(id)
            }
            // Evict in insertion order; the order list is compacted once its consumed head grows large.
            while s.entries.count > capacity, s.head < s.order.count {
                s.entries[s.order[s.head]] = nil
                s.head += 1
            }
            if s.head > capacity {
                s.order.removeFirst(s.head)
                s.head = 0
            }
        }
    }
}
