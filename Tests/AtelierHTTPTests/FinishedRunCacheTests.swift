@testable import AtelierHTTP
import Foundation
import NIOCore
import Testing

@Suite struct FinishedRunCacheTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func answersOnlyTheSameAccountAndBaseURL() {
        let cache = FinishedRunCache(capacity: 10)
        cache.store(ByteBuffer(string: "done"), for: 1, accountID: 7, baseURL: "http://a")
        #expect(cache.body(for: 1, accountID: 7, baseURL: "http://a", now: now) == ByteBuffer(string: "done"))
        #expect(cache.body(for: 1, accountID: 8, baseURL: "http://a", now: now) == nil)  // another account: not its run
        #expect(cache.body(for: 1, accountID: 7, baseURL: "http://b", now: now) == nil)  // output links carry the base URL
        #expect(cache.body(for: 2, accountID: 7, baseURL: "http://a", now: now) == nil)
    }

    @Test func isBoundedOldestFirst() {
        let cache = FinishedRunCache(capacity: 3)
        for id in Int64(1)...50 { cache.store(ByteBuffer(string: "\(id)"), for: id, accountID: 1, baseURL: "u") }
        #expect(cache.body(for: 47, accountID: 1, baseURL: "u", now: now) == nil)
        #expect((48...50).allSatisfy { cache.body(for: Int64($0), accountID: 1, baseURL: "u", now: now) != nil })
        // Storing the same run again does not grow it.
        cache.store(ByteBuffer(string: "again"), for: 50, accountID: 1, baseURL: "u")
        #expect(cache.body(for: 48, accountID: 1, baseURL: "u", now: now) != nil)
    }

    /// With output retention a succeeded run's answer is kept only until its images are due for deletion; then
    /// /check reads the run again (and finds output_expired once the sweeper ran).
    @Test func anEntryWithAnEndIsNotAnsweredAfterIt() {
        let cache = FinishedRunCache(capacity: 10)
        cache.store(ByteBuffer(string: "links"), for: 1, accountID: 7, baseURL: "u", validUntil: now.addingTimeInterval(60))
        #expect(cache.body(for: 1, accountID: 7, baseURL: "u", now: now.addingTimeInterval(59)) != nil)
        #expect(cache.body(for: 1, accountID: 7, baseURL: "u", now: now.addingTimeInterval(60)) == nil)
    }
}
