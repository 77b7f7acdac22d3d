import AtelierCore
import AtelierS3
import AtelierStorage
import Foundation
import Synchronization
import Testing

/// A TCP port that accepts connections (the kernel completes them into the backlog) and never answers: a bucket
/// whose server is stopped (SIGSTOP) or whose network drops everything after the handshake.
final class BlackHole: Sendable {
    let port: Int
    private let socket: Int32

    init() throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else { throw TestSetupError("cannot listen on a loopback port") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        socket = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(socket) }
}

/// A wall clock the test moves.
final class TestWallClock: WallClock {
    private let current = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    func now() -> Date { current.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { current.withLock { $0 += seconds } }
}

@Suite struct StorageBreakerTests {
    /// The reported case: a bucket that stops answering without refusing connections. Each call ends at its
    /// deadline instead of hanging; after two such calls the breaker opens and the next is refused without a
    /// call; once the cooldown has passed, one call that gets through closes it again.
    @Test func aBucketThatStopsAnsweringFailsAtTheDeadlineThenAtOnceAndRecovers() async throws {
        let hole = try BlackHole()
        let clock = TestWallClock()
        let guarded = StorageGuard(breaker: CircuitBreaker(failures: 2, cooldown: .seconds(30), clock: clock))
        let stalled = try TestBucket.storage(endpoint: "http://127.0.0.1:\(hole.port)", attempts: 3, timeout: .seconds(1), guarded: guarded)
        let name = stalled.newName(format: .png)
        for _ in 0..<2 {
            let error = await #expect(throws: StorageUnavailable.self) { _ = try await stalled.read(name: name, range: nil) }
            // Not retried at once: a timeout is reported as such, after one try.
            #expect(error?.reason.contains("no answer in time") == true, "\(String(describing: error))")
        }
        guard case .open = guarded.breaker.current else { Issue.record("the breaker is \(guarded.breaker.current)"); return }
        let refused = await #expect(throws: StorageUnavailable.self) { try await stalled.put(name: name, bytes: [1]) }
        #expect(refused?.reason.contains("not tried again for 30 s") == true, "\(String(describing: refused))")
        #expect(!guarded.breaker.isUsable)
        // The cooldown passes; the bucket answers again (here: the peer behind the same breaker).
        clock.advance(31)
        #expect(guarded.breaker.isUsable)
        let healthy = try TestBucket.storage(guarded: guarded)
        try await healthy.probe()
        #expect(guarded.breaker.current == .closed(failures: 0))
    }

    /// An upload's deadline grows with its size at --storage-min-rate: a large image on a slow link is not cut off
    /// at the metadata timeout, and a black-holed one still ends.
    @Test func anUploadToABlackHoleEndsAtItsDeadline() async throws {
        let hole = try BlackHole()
        let stalled = try TestBucket.storage(endpoint: "http://127.0.0.1:\(hole.port)", attempts: 3, timeout: .seconds(1))
        let error = await #expect(throws: StorageUnavailable.self) {
            try await stalled.put(name: stalled.newName(format: .png), bytes: [UInt8](repeating: 7, count: 200_000))
        }
        #expect(error?.reason.contains("no answer in time") == true, "\(String(describing: error))")
    }
}
