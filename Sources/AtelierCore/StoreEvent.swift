/// A change to a run, told to the other nodes sharing a database (PostgreSQL's NOTIFY), so their waiting
/// requests, event streams and idle workers learn of it at once. Only a hint: the database row is the truth, and
/// nodes also poll, so a lost notification delays an answer but never changes it.
public enum StoreEvent: Sendable, Equatable {
    case queued(Int64)
    case started(Int64, attempt: Int)
    case progress(Int64, step: Int, total: Int)
    case requeued(Int64)
    case finished(Int64)

    /// `NODE KIND ID [A B]`: short, because NOTIFY payloads are limited to 8000 bytes and sent to every node.
    public func payload(node: String) -> String {
        switch self {
        case .queued(let id): "\(node) queued \(id)"
        case .started(let id, let attempt): "\(node) started \(id) \(attempt)"
        case .progress(let id, let step, let total): "\(node) progress \(id) \(step) \(total)"
        case .requeued(let id): "\(node) requeued \(id)"
        case .finished(let id): "\(node) finished \(id)"
        }
    }

    /// The sending node and the event; nil for a payload this version does not know.
    public static func parse(_ payload: String) -> (node: String, event: StoreEvent)? {
        let f = payload.split(separator: " ").map(String.init)
        guard f.count >= 3, let id = Int64(f[2]) else { return nil }
        let n = f.dropFirst(3).compactMap { Int($0) }
        switch (f[1], n.count) {
        case ("queued", 0): return (f[0], .queued(id))
        case ("started", 1): return (f[0], .started(id, attempt: n[0]))
        case ("progress", 2): return (f[0], .progress(id, step: n[0], total: n[1]))
        case ("requeued", 0): return (f[0], .requeued(id))
        case ("finished", 0): return (f[0], .finished(id))
        default: return nil
        }
    }
}
