import AtelierCore
import Foundation

/// Resolves host names for outbound calls (getaddrinfo, which blocks: always on a thread of its own) and judges
/// the answer with the one `OutboundAddressPolicy`. The resolver reads every IPv4 spelling (2130706433, 0x7f.1,
/// 0177.0.0.1), so what is judged is what a connection would reach.
enum HostResolver {
    /// Allowed hosts pass without a lookup; otherwise the public addresses to connect to, or why not.
    static func checked(host: String, policy: OutboundAddressPolicy) async -> Result<[String]?, OutboundAddressPolicy.Refusal> {
        if policy.allowsHost(host) { return .success(nil) }
        let addresses = await resolvingOffThread { resolve(host) }
        return policy.judge(host: host, resolved: addresses).map { Optional($0) }
    }

    static func resolve(_ host: String) -> [String] {
        let name = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var out: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                out.append(String(cString: buffer))
            }
            cursor = info.pointee.ai_next
        }
        return out
    }
}

/// Runs a name lookup (getaddrinfo, which blocks) on a thread of its own, so it never holds the server's event
/// loops or Swift's shared executor while a DNS server takes its time.
func resolvingOffThread<T: Sendable>(_ lookup: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: lookup()) }
    }
}
