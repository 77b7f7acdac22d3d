/// How to start one worker process: the Python interpreter, the worker package's folder and its arguments.
public struct WorkerLaunch: Sendable, Equatable {
    public var python: String
    /// The folder holding the `atelier_worker` package (added to PYTHONPATH).
    public var workerDirectory: String
    public var arguments: [String]
    /// Extra environment for the worker (threads, HF cache, CUDA device).
    public var environment: [String: String]

    public init(python: String, workerDirectory: String, arguments: [String], environment: [String: String] = [:]) {
        self.python = python
        self.workerDirectory = workerDirectory
        self.arguments = arguments
        self.environment = environment
    }
}

/// Exit codes the worker uses (worker/atelier_worker/serve.py).
public enum WorkerExitCode {
    public static let loadFailed: Int32 = 2
    public static let weightsMissing: Int32 = 3
    /// The worker's configuration is wrong (e.g. an unknown safety checker): restarting cannot help either.
    public static let configInvalid: Int32 = 4
}
