import Foundation
import Logging
import Synchronization

/// What a running worker reports, in order, ending with `.exited`.
public enum WorkerEvent: Sendable, Equatable {
    case message(WorkerOutbound)
    /// A stdout line that is not a protocol message: logged, never fatal.
    case garbage(String)
    /// The process ended (normally, by a signal or by kill -9). `status` is the exit code or signal number.
    case exited(status: Int32, signaled: Bool)
}

public enum WorkerStartError: Error, Sendable, CustomStringConvertible {
    case launchFailed(String)
    case exitedBeforeReady(status: Int32, signaled: Bool, log: [String])
    case readyTimeout(seconds: Int)

    public var description: String {
        switch self {
        case .launchFailed(let why): "the worker could not be started: \(why)"
        case .exitedBeforeReady(let status, let signaled, let log):
            "the worker \(signaled ? "was killed by signal" : "exited with status") \(status) before it was ready; its last log lines:\n"
                + log.joined(separator: "\n")
        case .readyTimeout(let s): "the worker was not ready within \(s) s"
        }
    }

    /// True when the worker said its weights are missing or its configuration is wrong: restarting cannot help.
    public var isFatal: Bool {
        if case .exitedBeforeReady(let status, false, _) = self {
            return status == WorkerExitCode.weightsMissing || status == WorkerExitCode.configInvalid
        }
        return false
    }
}

/// One worker process: started with pipes, its stdout read line by line on a dedicated thread (blocking reads
/// stay off Swift's cooperative pool), its stderr forwarded to the server's log.
public final class WorkerProcess: Sendable {
    public let events: AsyncStream<WorkerEvent>
    private let process: Process
    private let stdin: FileHandle
    private let recentLog: LogTail
    public let pid: Int32
    private let logger: Logger

    static let keptLogLines = 30

    /// `onPathStatus` and `onStats` receive the worker's compiled-path and stats reports as they come, on the
    /// reading thread: they name no job, so they never enter `events`, whose readers wait for a job's answers.
    public init(launch: WorkerLaunch, logger: Logger,
                onPathStatus: @escaping @Sendable (WorkerPathStatus) -> Void = { _ in },
                onStats: @escaping @Sendable (WorkerStats) -> Void = { _ in }) throws(WorkerStartError) {
        self.logger = logger
        let process = Process()
        process.executableURL = URL(fileURLWithPath: launch.python)
        process.arguments = ["-m", "atelier_worker"] + launch.arguments
        var env = ProcessInfo.processInfo.environment
        env["PYTHONPATH"] = [launch.workerDirectory, env["PYTHONPATH"]].compactMap { $0 }.joined(separator: ":")
        env["PYTHONUNBUFFERED"] = "1"
        for (k, v) in launch.environment { env[k] = v }
        process.environment = env
        let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
        process.standardInput = inPipe
        process.standardOutput = outPipe
        process.standardError = errPipe
        do {
            try process.run()
        } catch {
            throw .launchFailed("\(launch.python): \(error)")
        }
        self.process = process
        self.stdin = inPipe.fileHandleForWriting
        self.pid = process.processIdentifier
        let recent = LogTail(capacity: Self.keptLogLines)
        self.recentLog = recent
        let (stream, continuation) = AsyncStream<WorkerEvent>.makeStream(bufferingPolicy: .unbounded)
        self.events = stream
        let pid = process.processIdentifier
        let errLogger = logger

        let errDone = DispatchSemaphore(value: 0)
        let errThread = Thread {
            Self.readLines(errPipe.fileHandleForReading) { line in
                recent.append(line)
                errLogger.info("\(line)", metadata: ["worker.pid": "\(pid)"])
            }
            errDone.signal()
        }
        errThread.name = "atelier-worker-\(pid)-stderr"
        errThread.start()

        let outThread = Thread {
            Self.readLines(outPipe.fileHandleForReading) { line in
                if let message = try? WorkerOutbound.decode(line: line) {
                    if case .pathStatus(let status) = message { onPathStatus(status); return }
                    if case .stats(let stats) = message { onStats(stats); return }
                    continuation.yield(.message(message))
                } else {
                    continuation.yield(.garbage(line))
                }
            }
            process.waitUntilExit()
            // Report the exit only once the log is complete, so a crash report carries the worker's last words.
            // A grandchild holding stderr open must not block it: wait at most 2 s.
            _ = errDone.wait(timeout: .now() + 2)
            let signaled = process.terminationReason == .uncaughtSignal
            continuation.yield(.exited(status: process.terminationStatus, signaled: signaled))
            continuation.finish()
        }
        outThread.name = "atelier-worker-\(pid)-stdout"
        outThread.start()
    }

    /// Reads until EOF, calling `line` for each complete line (without its newline).
    private static func readLines(_ handle: FileHandle, _ line: (String) -> Void) {
        var buffer = Data()
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            while let nl = buffer.firstIndex(of: 0x0A) {
                let lineData = buffer[buffer.startIndex..<nl]
                buffer.removeSubrange(buffer.startIndex...nl)
                line(String(decoding: lineData, as: UTF8.self))
            }
        }
        if !buffer.isEmpty { line(String(decoding: buffer, as: UTF8.self)) }
    }

    public var lastLogLines: [String] { recentLog.lines }

    public func send(_ message: WorkerInbound) throws {
        try stdin.write(contentsOf: message.encodedLine())
    }

    /// SIGKILL: used when a job overran its timeout; the worker cannot be trusted to stop by itself.
    public func kill() {
        if process.isRunning { Foundation.kill(pid, SIGKILL) }
    }

    /// Asks the worker to finish and exit; closing stdin is the same request for a worker blocked on reading.
    public func requestShutdown() {
        try? send(.shutdown)
        try? stdin.close()
    }
}

/// The last lines of a worker's log, kept to explain a crash.
final class LogTail: Sendable {
    private let storage = Mutex<[String]>([])
    let capacity: Int
    init(capacity: Int) { self.capacity = capacity }
    func append(_ line: String) {
        storage.withLock {
            $0.append(line)
            if $0.count > capacity { $0.removeFirst($0.count - capacity) }
        }
    }
    var lines: [String] { storage.withLock { $0 } }
}
