import Foundation
import Logging

/// The demo profile's tiny random FLUX model, built once by the worker's `tiny` command.
enum TinyModel {
    static func ensure(at directory: URL, python: String, workerDirectory: String, logger: Logger) throws -> URL {
        let marker = directory.appendingPathComponent("pipeline/ATELIER_TINY_RANDOM_WEIGHTS")
        let lora = directory.appendingPathComponent("tiny-lora.safetensors")
        if FileManager.default.fileExists(atPath: marker.path), FileManager.default.fileExists(atPath: lora.path) {
            return directory
        }
        logger.info("building the tiny demo model at \(directory.path)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-m", "atelier_worker", "tiny", directory.path]
        var env = ProcessInfo.processInfo.environment
        env["PYTHONPATH"] = workerDirectory
        process.environment = env
        do {
            try process.run()
        } catch {
            throw SettingError(setting: "ATELIER_PYTHON", why: "\(python) could not be started (\(error)); run `make setup` to create the worker's environment")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SettingError(setting: "ATELIER_PYTHON", why: "building the tiny model failed (exit \(process.terminationStatus)); see the log above")
        }
        return directory
    }
}
