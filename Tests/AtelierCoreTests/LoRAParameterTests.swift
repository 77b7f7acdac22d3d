@testable import AtelierCore
import AtelierTesting
import Foundation
import Testing

/// Per-request LoRAs as the decoder reads them from the repository's model files: the three ways to name them
/// make one list, addresses resolve to download URLs, and what no LoRA address can be is refused naming the
/// parameter. The worker-side checks of a file (`SafetensorsHeader`) are here too.
@Suite struct LoRAParameterTests {
    let decoder: RunRequestDecoder

    init() throws {
        decoder = RunRequestDecoder(catalog: ModelCatalog([try RepositoryCatalog.entry(), try RepositoryCatalog.entry("flux-dev-lora")]))
    }

    func request(_ extra: [String: ParameterValue], model: String = "flux-dev-lora") throws(AtelierError) -> (RunRequest, RunRequestDecoder.PendingInputs) {
        var raw: [String: ParameterValue] = ["model_id": .string(model), "prompt": .string("a fox"), "aspect_ratio": .string("1:1")]
        raw.merge(extra) { $1 }
        return try decoder.decodeWithInputs(raw)
    }

    func problems(_ extra: [String: ParameterValue], model: String = "flux-dev-lora") -> [ParameterProblem] {
        do {
            _ = try request(extra, model: model)
            return []
        } catch {
            if case .invalidParameters(let p) = error { return p }
            return []
        }
    }

    @Test func theThreeFormsMakeOneListInStackingOrder() throws {
        let (r, pending) = try request([
            "lora_weights": .string("huggingface.co/acme/styles/blob/v2/water.safetensors"), "lora_scale": .number(0.9),
            "extra_lora": .string("https://civitai.com/models/77?modelVersionId=123"), "extra_lora_scale": .string("0.5"),
            "loras": .string(#"[{"path": "https://example.com/a.safetensors"}]"#),
        ])
        #expect(pending.loraUploads.isEmpty)
        let loras = try #require(r.loras)
        #expect(loras.map(\.parameter) == ["lora_weights", "extra_lora", "loras[0].path"])
        #expect(loras.map(\.scale) == [0.9, 0.5, 1])
        #expect(loras[0].url == "https://huggingface.co/acme/styles/resolve/v2/water.safetensors")
        #expect(loras[1].url == "https://civitai.com/api/download/models/123")
        #expect(loras[2].url == "https://example.com/a.safetensors")
        // The batch key follows the list: other LoRAs never share a pipeline call.
        let (plain, _) = try request([:])
        #expect(plain.loras == nil && r.batchKey != plain.batchKey)
    }

    @Test func anUploadIsPendingUntilStored() throws {
        let (r, pending) = try request(["extra_lora": .file(bytes: [1, 2, 3], filename: "s.safetensors", contentType: nil)])
        #expect(r.loras?.first?.source == "upload:s.safetensors" && r.loras?.first?.url == nil)
        #expect(pending.loraUploads == [RunRequestDecoder.LoRAUpload(index: 0, bytes: [1, 2, 3])] && !pending.hasImages)
    }

    @Test(arguments: [
        ("ftp://example.com/a.safetensors", "invalid_lora"),
        ("a lora please", "invalid_lora"),
        ("huggingface.co/acme/styles", "lora_url_unusable"),
        ("https://civitai.com/models/77/pretty", "lora_url_unusable"),
    ])
    func whatIsNoAddressIsRefusedNamingTheParameter(value: String, code: String) {
        let p = problems(["lora_weights": .string(value)])
        #expect(p.map(\.code) == [code] && p.first?.param == "lora_weights", "\(p)")
    }

    @Test func aListEntryIsReadStrictly() {
        #expect(problems(["loras": .string(#"[{"path": "https://e.com/a.safetensors", "weight": 1}]"#)]).first?.param == "loras[0].weight")
        #expect(problems(["loras": .string(#"[{"path": "https://e.com/a.safetensors", "scale": true}]"#)]).first?.param == "loras[0].scale")
        #expect(problems(["loras": .string(#"[{"path": "https://e.com/a.safetensors", "scale": 9}]"#)]).first?.param == "loras[0].scale")
        #expect(problems(["loras": .string(#"[{"scale": 1}]"#)]).first?.param == "loras[0]")
        #expect(problems(["loras": .string("[oops")]).first?.code == "invalid_lora_list")
    }

    @Test func atMostTheLimitStack() {
        let three = (0..<3).map { #"{"path": "https://e.com/\#($0).safetensors"}"# }.joined(separator: ",")
        #expect(problems(["loras": .string("[\(three)]")]).isEmpty)
        let p = problems(["loras": .string("[\(three)]"), "lora_weights": .string("https://e.com/x.safetensors")])
        #expect(p.map(\.code) == ["too_many_loras"])
    }

    @Test func theKawaiiModelStacksButHasNoLoRAWeights() throws {
        // Another model's parameter: said as such, not as an unknown name.
        #expect(problems(["lora_weights": .string("https://e.com/x.safetensors")], model: "flux-cute-3d-kawaii").first?.code == "parameter_of_another_model")
        let (r, _) = try request(["extra_lora": .string("https://e.com/x.safetensors"), "lora_scale": .number(0.4)], model: "flux-cute-3d-kawaii")
        #expect(r.loraScale == 0.4 && r.loras?.first?.scale == 1)  // lora_scale stays the model's own LoRA's
    }

    @Test func aModelFileCannotGiveLoRAWeightsToAModelWithItsOwnLoRA() throws {
        var entry = try RepositoryCatalog.entry()
        entry.parameters.append(ParameterDefinition(name: "lora_weights", kind: .lora))
        #expect(RunParameter.problems(in: entry).contains { $0.contains("lora_weights") })
        #expect(RunParameter.problems(in: try RepositoryCatalog.entry("flux-dev-lora")).isEmpty)
    }

    // MARK: the file check

    static func file(_ header: String, data: Int) -> [UInt8] {
        let h = Array(header.utf8)
        var n = UInt64(h.count)
        let length = (0..<8).map { _ in defer { n >>= 8 }; return UInt8(n & 0xff) }
        return length + h + [UInt8](repeating: 0, count: data)
    }

    @Test func aWellFormedFilePasses() throws {
        let f = Self.file(#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"format":"pt"}}"#, data: 16)
        #expect(try SafetensorsHeader.parse(f, fileSize: f.count).tensors == ["a"])
    }

    @Test func aPickleOrALyingHeaderIsRefused() {
        let pickle: [UInt8] = [0x80, 0x04, 0x95] + [UInt8](repeating: 0x41, count: 40)
        #expect(throws: LoRAFileProblem.self) { try SafetensorsHeader.parse(pickle, fileSize: pickle.count) }
        for header in [
            #"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#,  // shape and range disagree
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,  // overlap
            #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,  // the file is shorter than it claims (below)
        ] {
            let f = Self.file(header, data: 12)
            let error = #expect(throws: LoRAFileProblem.self) { try SafetensorsHeader.parse(f, fileSize: f.count) }
            guard case .lyingHeader? = error else {
                Issue.record("\(header): \(String(describing: error))")
                continue
            }
        }
    }
}
