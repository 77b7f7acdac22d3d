import AtelierCore
import AtelierPersistence
import ArgumentParser
import Foundation

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Manage what the web pages show for the catalog's models.",
        subcommands: [SetSample.self]
    )

    /// The model list at `/` shows a sample image per model once the operator chose one: a run's first output,
    /// copied to `samples/<model id>.<format>` in the data folder. Chosen by hand, because a run belongs to an
    /// account and is not public until someone says so.
    struct SetSample: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-sample",
            abstract: "Show a succeeded run's first image as its model's sample on the model list (/)."
        )
        @Argument(help: "The request_id of a succeeded run.") var requestID: Int64
        @OptionGroup var data: DataDirOption

        func run() async throws {
            let store = try await data.openStore()
            guard let job = try await store.job(id: requestID) else {
                throw ValidationError("no run \(requestID) in \(data.directory)")
            }
            guard job.status == .succeeded, let output = job.result?.outputs.first else {
                throw ValidationError("run \(requestID) is \(job.status.rawValue); choose a succeeded run")
            }
            let root = URL(fileURLWithPath: data.directory)
            let source = root.appendingPathComponent("outputs").appendingPathComponent(output.name)
            let samples = root.appendingPathComponent("samples")
            try FileManager.default.createDirectory(at: samples, withIntermediateDirectories: true)
            let ext = job.request.outputFormat.fileExtension
            // One sample per model: any earlier one, of any format, goes.
            for old in OutputFormat.allCases {
                try? FileManager.default.removeItem(at: samples.appendingPathComponent("\(job.request.modelID).\(old.fileExtension)"))
            }
            let target = samples.appendingPathComponent("\(job.request.modelID).\(ext)")
            do {
                try FileManager.default.copyItem(at: source, to: target)
            } catch {
                throw ValidationError("could not copy \(source.path) to \(target.path): \(error.localizedDescription)")
            }
            print("\(job.request.modelID): sample set to run \(requestID)'s image (\(target.path))")
        }
    }
}
