import AtelierCore
@testable import AtelierEngine
import Foundation
import Testing

/// contracts/fixtures are the worker protocol's canonical examples; the Python tests decode the same files.
@Suite struct ContractFixtureTests {
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("contracts/fixtures")

    func line(_ name: String) throws -> String {
        try String(contentsOf: Self.fixtures.appendingPathComponent("\(name).json"), encoding: .utf8)
    }

    @Test func ready() throws {
        guard case .ready(let r) = try WorkerOutbound.decode(line: line("ready")) else { Issue.record("not ready"); return }
        #expect(r.protocolVersion == 1 && r.device == "cpu" && r.model.randomWeights && !r.fastPath.available)
    }

    /// A compiled path's warm-up report names no job: the process hands it to its callback, not to `events`.
    @Test func pathStatus() throws {
        guard case .pathStatus(let p) = try WorkerOutbound.decode(line: line("path_status")) else { Issue.record("not path_status"); return }
        #expect(p == WorkerPathStatus(path: "fast", state: .warming, warm: 3, total: 22, seconds: 41.7))
        #expect(p.summary == "warming 3 of 22 sizes")
    }

    /// Stats name no job either; the counters' increase is what the server adds (a new process starts at 0).
    @Test func stats() throws {
        guard case .stats(let s) = try WorkerOutbound.decode(line: line("stats")) else { Issue.record("not stats"); return }
        #expect(s.devices == [.init(device: "cuda:0", name: "NVIDIA H100 80GB HBM3", memoryUsedBytes: 41_875_931_136,
                                    memoryTotalBytes: 85_045_395_456, utilization: 0.97)])
        #expect(s.loraSwitches == 3 && s.promptCacheHits == 12 && s.promptCacheMisses == 5)
        let earlier = WorkerStats(loraSwitches: 1, promptCacheHits: 10, promptCacheMisses: 5)
        #expect(s.increase(since: earlier) == (2, 2, 0))
        #expect(s.increase(since: nil) == (3, 12, 5))
    }

    @Test func progress() throws {
        #expect(try WorkerOutbound.decode(line: line("progress")) == .progress(.init(jobID: "212121212121212", step: 7, total: 28)))
    }

    @Test func result() throws {
        guard case .result(let r) = try WorkerOutbound.decode(line: line("result")) else { Issue.record("not result"); return }
        #expect(r.images.count == 1 && r.images[0].seed == 1234567 && r.images[0].width == 1024 && r.path == "standard")
        #expect(r.timings["inference_ms"] == 2712.4)
        #expect(r.safety == SafetyOutcome(checker: "fixture:seed-mod:4:1", ran: true, dropped: 1))
        #expect(r.batchSize == 1)
    }

    /// A batch line carries each job as the generate fixture does, in a `jobs` list.
    @Test func generateBatchLineMatchesTheFixture() throws {
        struct Batch: Decodable, Equatable {
            var type: String
            var jobs: [GenerateCommand]
        }
        let fixture = try JSONDecoder().decode(Batch.self, from: Data(line("generate_batch").utf8))
        let data = try WorkerInbound.generateBatch(fixture.jobs).encodedLine()
        #expect(data.last == 0x0A)
        #expect(try JSONDecoder().decode(Batch.self, from: data) == fixture)
        #expect(fixture.type == "generate_batch" && fixture.jobs.map(\.outputs.count) == [1, 2])
    }

    @Test func error() throws {
        guard case .error(let e) = try WorkerOutbound.decode(line: line("error")) else { Issue.record("not error"); return }
        #expect(e.code == "invalid_request" && e.jobID == "212121212121212")
    }

    @Test func unknownTypeIsRejected() {
        #expect(throws: (any Error).self) { try WorkerOutbound.decode(line: #"{"type":"dance"}"#) }
    }

    /// What the server sends must carry every field of the generate fixture, with the same types.
    @Test func generateCommandMatchesTheFixtureShape() throws {
        let fixture = try JSONSerialization.jsonObject(with: Data(line("generate").utf8)) as! [String: Any]
        let request = RunRequest(
            modelID: "flux-cute-3d-kawaii", prompt: "Cute 3d Kawaii, a small cat in a teacup", aspectRatio: "1:1",
            megapixels: "1", size: .init(width: 1024, height: 1024), numOutputs: 1, numInferenceSteps: 28, guidance: 3,
            seed: 1234567, outputFormat: .webp, outputQuality: 80, loraScale: 1, goFast: true, promptStrength: 0.8,
            disableSafetyChecker: false
        )
        let job = Job(id: 212121212121212, accountID: 1, request: request, outputNames: ["0b1c2d3e4f.webp"], createdAt: Date())
        let data = try WorkerInbound.generate(GenerateCommand(job: job, paths: ["/var/lib/atelier/outputs/0b1c2d3e4f.webp"])).encodedLine()
        #expect(data.last == 0x0A)
        let sent = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        #expect(Set(sent.keys) == Set(fixture.keys))
        let decodedFixture = try JSONDecoder().decode(GenerateCommand.self, from: Data(line("generate").utf8))
        let decodedSent = try JSONDecoder().decode(GenerateCommand.self, from: data)
        #expect(decodedSent == decodedFixture)
        #expect(decodedFixture.batchKey == request.batchKey && decodedFixture.batchKey != nil)
    }

    /// Every parameter of the run contract reaches the worker under the field the table names: a parameter the
    /// table gains without a field in the generate message fails here.
    @Test func everyRunParameterHasItsWorkerField() throws {
        let fixture = try JSONSerialization.jsonObject(with: Data(line("generate_inpaint").utf8)) as! [String: Any]
        for parameter in RunParameter.allCases {
            for field in parameter.contract.workerField.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                #expect(fixture.keys.contains(field), "\(parameter.rawValue) → \(field)")
                #expect(GenerateCommand.CodingKeys.allCases.map(\.stringValue).contains(field), "\(parameter.rawValue) → \(field)")
            }
        }
    }

    /// An inpainting run whose mask follows OpenAI's convention (transparent = repaint) says so to the worker.
    @Test func inpaintingWithATransparentMaskMatchesTheFixture() throws {
        var request = RunRequest(
            modelID: "flux-cute-3d-kawaii", prompt: "Cute 3d Kawaii, a flower", aspectRatio: "input",
            megapixels: "1", size: .init(width: 96, height: 64), numOutputs: 1, numInferenceSteps: 28, guidance: 3,
            seed: 1234567, outputFormat: .png, outputQuality: 80, loraScale: 1, goFast: true, promptStrength: 0.9,
            disableSafetyChecker: false
        )
        func input(_ file: String) -> InputImage {
            InputImage(file: file, format: .png, width: 96, height: 64, bytes: 100, sha256: "00", origin: .upload)
        }
        var mask = input("3c4d.png")
        mask.convention = .transparent
        request.attach(image: input("1a2b.png"), mask: mask)
        let job = Job(id: 212121212121213, accountID: 1, request: request, outputNames: ["0b1c2d3e50.png"], createdAt: Date())
        let command = GenerateCommand(job: job, paths: ["/var/lib/atelier/outputs/0b1c2d3e50.png"],
                                      inputPaths: ["/var/lib/atelier/inputs/1a2b.png", "/var/lib/atelier/inputs/3c4d.png"])
        let fixture = try JSONDecoder().decode(GenerateCommand.self, from: Data(line("generate_inpaint").utf8))
        #expect(try JSONDecoder().decode(GenerateCommand.self, from: WorkerInbound.generate(command).encodedLine()) == fixture)
        #expect(fixture.maskConvention == "transparent")
        // A mask without a convention of its own is this API's: white repaints, and the worker is told so.
        mask.convention = nil
        request.attach(image: input("1a2b.png"), mask: mask)
        let plain = Job(id: 1, accountID: 1, request: request, outputNames: ["x.png"], createdAt: Date())
        #expect(GenerateCommand(job: plain, paths: ["x"], inputPaths: ["a", "b"]).maskConvention == "white")
    }

    /// The server's cancel line is exactly the fixture the worker's tests parse.
    @Test func cancelLineMatchesTheFixture() throws {
        let sent = try JSONSerialization.jsonObject(with: WorkerInbound.cancel(jobID: "123456789012345").encodedLine()) as! [String: String]
        let fixture = try JSONSerialization.jsonObject(with: Data(line("cancel").utf8)) as! [String: String]
        #expect(sent == fixture)
    }
}
