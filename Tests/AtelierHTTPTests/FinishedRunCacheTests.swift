@testable import AtelierHTTP
import NIOCore
import Testing

@Suite struct FinishedRunCacheTests {
    @Test func answersOnlyTheSameAccountAndBaseURL() {
        let cache = FinishedRunCache(capacity: 10)
        cache.store(ByteBuffer(string: "done"), for: 1, accountID: 7, baseURL: "http://a")
        #expect(cache.body(for: 1, accountID: 7, baseURL: "http://a") == ByteBuffer(string: "done"))
        #expect(cache.body(for: 1, accountID: 8, baseURL: "http://a") == nil)  // another account: not its run
        #expect(cache.body(for: 1, accountID: 7, baseURL: "http://b") == nil)  // output links carry the base URL
        #expect(cache.body(for: 2, accountID: 7, baseURL: "http://a") == nil)
    }

    @Test func isBoundedOldestFirst() {
        let cache = FinishedRunCache(capacity: 3)
        for id in Int64(1)...50 { cache.store(ByteBuffer(string: "\(id)"), for: id, accountID: 1, baseURL: "u") }
        #expect(cache.body(for: 47, accountID: 1, baseURL: "u") == nil)
        #expect((48...50).allSatisfy { cache.body(for: Int64($0), accountID: 1, baseURL: "u") != nil })
        // Storing the same run again does not grow it.
        cache.store(ByteBuffer(string: "again"), for: 50, accountID: 1, baseURL: "u")
        #expect(cache.body(for: 48, accountID: 1, baseURL: "u") != nil)
    }
}
