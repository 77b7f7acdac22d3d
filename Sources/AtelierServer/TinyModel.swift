import Foundation
import Logging

/// The demo profile's tiny random FLUX model, built once by the worker's `tiny` command.
enum TinyModel {
    static func loraFile(_ directory: URL) -> URL { directory.appendingPathComponent("tiny-lora.safetensors") }

    /// The LoRA of another catalog model on the tiny base (built by the worker's `tiny --extra-lora`).
    static func extraLoRAFile(_ directory: URL, modelID: String) -> URL {
        directory.appendingPathComponent("tiny-lora-\(modelID).safetensors")
    }

    static func ensure(at directory: URL, extraLoRAs: [String] = [], python: String, workerDirectory: String, logger: Logger) throws -> URL {
        let marker = directory.appendingPathComponent("pipeline/ATELIER_TINY_RANDOM_WEIGHTS")
        let needed = [marker, loraFile(directory)] + extraLoRAs.map { extraLoRAFile(directory, modelID: $0) }
        if needed.allSatisfy({ FileManager.default.fileExists(atPath: $0.path) }) {
            return directory
        }
        logger.info("building the tiny demo model at \(directory.path)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-m", "atelier_worker", "tiny", directory.path] + extraLoRAs.map { "--extra-lora=\($0)" }
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
