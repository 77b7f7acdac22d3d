/// A run's lifecycle. Transitions are checked: a terminal state never changes again, which is what makes a second
/// worker's late result or a retried completion harmless.
public enum JobStatus: String, Sendable, Codable, CaseIterable {
    case queued
    case running
    case succeeded
    case failed
    case canceled

    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .canceled: true
        case .queued, .running: false
        }
    }

    public func canTransition(to next: JobStatus) -> Bool {
        switch (self, next) {
        case (.queued, .running), (.queued, .failed), (.queued, .canceled):
            true
        // A running job goes back to queued when its worker died and the job is retried.
        case (.running, .succeeded), (.running, .failed), (.running, .canceled), (.running, .queued):
            true
        default:
            false
        }
    }
}

public struct InvalidTransition: Error, Sendable, Equatable, CustomStringConvertible {
    public let from: JobStatus
    public let to: JobStatus
    public init(from: JobStatus, to: JobStatus) {
        self.from = from
        self.to = to
    }
    public var description: String { "a job cannot go from \(from.rawValue) to \(to.rawValue)" }
}
