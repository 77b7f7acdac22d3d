@testable import AtelierCore
import AtelierTesting
import Testing

/// Against the repository's own catalog file for flux-cute-3d-kawaii.
@Suite struct RunRequestDecoderTests {
    let decoder: RunRequestDecoder

    init() throws {
        decoder = RunRequestDecoder(catalog: ModelCatalog([try RepositoryCatalog.entry()]))
    }

    /// The seed request exactly as PHP's cURL sends it: every value a string, seed "".
    static let seed: [String: ParameterValue] = [
        "model_id": .string("flux-cute-3d-kawaii"), "prompt": .string("Cute 3d Kawaii cat"),
        "aspect_ratio": .string("1:1"), "num_inference_steps": .string("28"), "guidance": .string("3"),
        "output_format": .string("webp"), "output_quality": .string("80"), "lora_scale": .string("1"),
        "megapixels": .string("1"), "seed": .string(""),
    ]

    func problems(_ raw: [String: ParameterValue], _ decoder: RunRequestDecoder? = nil) -> [ParameterProblem] {
        do {
            _ = try (decoder ?? self.decoder).decode(raw)
            return []
        } catch {
            if case .invalidParameters(let p) = error { return p }
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    @Test func seedRequestDecodesWithDefaults() throws {
        let r = try decoder.decode(Self.seed)
        #expect(r.size == ImageSize(width: 1024, height: 1024))
        #expect(r.numInferenceSteps == 28 && r.guidance == 3 && r.loraScale == 1)
        #expect(r.outputFormat == .webp && r.outputQuality == 80)
        #expect(r.seed == nil)  // "" means random: the server picks it
        #expect(r.numOutputs == 1 && r.goFast && !r.disableSafetyChecker && r.promptStrength == 0.8)
    }

    @Test func jsonTypesAreAcceptedToo() throws {
        var raw = Self.seed
        raw["num_inference_steps"] = .number(20)
        raw["guidance"] = .number(2.5)
        raw["go_fast"] = .bool(false)
        raw["seed"] = .number(42)
        raw["megapixels"] = .number(0.25)
        let r = try decoder.decode(raw)
        #expect(r.numInferenceSteps == 20 && r.guidance == 2.5 && !r.goFast && r.seed == 42)
        #expect(r.size == ImageSize(width: 512, height: 512))
    }

    @Test(arguments: [("true", true), ("false", false), ("1", true), ("0", false), ("True", true), ("False", false)])
    func booleanStrings(text: String, value: Bool) throws {
        var raw = Self.seed
        raw["go_fast"] = .string(text)
        #expect(try decoder.decode(raw).goFast == value)
    }

    @Test func jpegIsAnAliasOfJpg() throws {
        var raw = Self.seed
        raw["output_format"] = .string("jpeg")
        #expect(try decoder.decode(raw).outputFormat == .jpg)
    }

    @Test func guidanceScaleIsAnAlias() throws {
        var raw = Self.seed
        raw["guidance"] = nil
        raw["guidance_scale"] = .string("4.5")
        #expect(try decoder.decode(raw).guidance == 4.5)
        raw["guidance"] = .string("1")
        #expect(problems(raw).map(\.code) == ["duplicate_parameter"])
    }

    @Test func apiKeyInTheBodyIsNotAParameterProblem() throws {
        var raw = Self.seed
        raw["api_key"] = .string("atl_x")
        #expect(problems(raw).isEmpty)
        // The key is the HTTP layer's: it changes nothing in the run.
        #expect(try decoder.decode(raw) == decoder.decode(Self.seed))
    }

    @Test func badAspectRatioMessageNamesEveryChoice() {
        var raw = Self.seed
        raw["aspect_ratio"] = .string("2:1")
        let p = problems(raw)
        #expect(p.count == 1)
        #expect(p.first?.param == "aspect_ratio" && p.first?.code == "invalid_choice")
        #expect(p.first?.message == #"aspect_ratio must be one of 1:1, 16:9, 21:9, 3:2, 2:3, 4:5, 5:4, 3:4, 4:3, 9:16, 9:21, custom; got "2:1""#)
    }

    @Test func everyProblemIsReported() {
        var raw = Self.seed
        raw["num_inference_steps"] = .string("51")
        raw["guidance"] = .string("abc")
        raw["output_quality"] = .string("-1")
        raw["num_outputs"] = .string("5")
        raw["lora_scale"] = .string("3.5")
        raw["output_format"] = .string("gif")
        raw["seed"] = .string("-3")
        raw["prompt"] = .string("  ")
        let params = Set(problems(raw).map(\.param))
        #expect(params == ["num_inference_steps", "guidance", "output_quality", "num_outputs", "lora_scale", "output_format", "seed", "prompt"])
    }

    @Test func missingRequiredParameters() {
        // Without a model there is no parameter list to check against: model_id alone is reported.
        #expect(problems([:]).map(\.param) == ["model_id"])
        let p = problems(["model_id": .string("flux-cute-3d-kawaii")])
        #expect(Set(p.map(\.param)) == ["prompt", "aspect_ratio"])
        #expect(p.allSatisfy { $0.code == "required" })
    }

    /// A model that narrows steps to 4 and drops most parameters: what it does not offer runs at the table's
    /// value (go_fast off, LoRA at full strength, one image), what it narrows is refused outside its bounds.
    @Test func aSecondModelWithAnotherParameterSetNeedsOnlyACatalogEntry() throws {
        var small = try RepositoryCatalog.entry()
        small.id = "flux-small"
        small.parameters = small.parameters.filter {
            ["prompt", "aspect_ratio", "output_format", "output_quality", "guidance", "num_inference_steps"].contains($0.name)
        }
        if let i = small.parameters.firstIndex(where: { $0.name == "aspect_ratio" }) { small.parameters[i].choices = ["1:1"] }
        if let i = small.parameters.firstIndex(where: { $0.name == "num_inference_steps" }) {
            small.parameters[i].minimum = 1
            small.parameters[i].maximum = 4
            small.parameters[i].defaultValue = .number(4)
        }
        #expect(RunParameter.problems(in: small).isEmpty)
        let decoder = RunRequestDecoder(catalog: ModelCatalog([small]))
        var raw: [String: ParameterValue] = ["model_id": .string("flux-small"), "prompt": .string("p"), "aspect_ratio": .string("1:1")]
        let r = try decoder.decode(raw)
        #expect(r.size == ImageSize(width: 1024, height: 1024) && r.numInferenceSteps == 4 && !r.goFast && r.loraScale == 1)
        #expect(r.numOutputs == 1 && r.megapixels == "1" && r.promptStrength == 1 && !r.disableSafetyChecker && r.turbo == nil)
        raw["num_inference_steps"] = .string("8")
        raw["aspect_ratio"] = .string("16:9")
        raw["lora_scale"] = .string("0.5")
        #expect(Set(problems(raw, decoder).map(\.code)) == ["out_of_range", "invalid_choice", "unknown_parameter"])
    }

    /// A model file may narrow the pipeline's parameters, never invent or widen one: each departure is named.
    @Test func modelFilesThePipelineCannotRunAreRefused() throws {
        let entry = try RepositoryCatalog.entry()
        #expect(RunParameter.problems(in: entry).isEmpty)
        func problems(_ change: (inout [ParameterDefinition]) -> Void) -> [String] {
            var e = entry
            change(&e.parameters)
            return RunParameter.problems(in: e)
        }
        func index(_ name: String, _ parameters: [ParameterDefinition]) -> Int { parameters.firstIndex { $0.name == name }! }
        let invented = problems { $0.append(ParameterDefinition(name: "style_strength", kind: .number, defaultValue: .number(1))) }
        #expect(invented.count == 1 && invented[0].contains("\"style_strength\" is not one the pipeline runs"))
        #expect(problems { $0.removeAll { $0.name == "guidance" } }.first?.contains("\"guidance\" is missing") == true)
        #expect(problems { $0[index("seed", $0)].kind = .integer }.first?.contains("kind seed") == true)
        #expect(problems { $0[index("aspect_ratio", $0)].choices?.append("7:3") }.first?.contains("\"7:3\"") == true)
        #expect(problems { $0[index("output_quality", $0)].maximum = 101 }.first?.contains("within 0…100") == true)
        #expect(problems { $0[index("num_inference_steps", $0)].defaultValue = .number(99) }.first?.contains("default") == true)
        #expect(problems { $0.removeAll { ["width", "height"].contains($0.name) } }.first?.contains("custom") == true)
        #expect(problems { $0.removeAll { $0.name == "image" } }.first?.contains("mask") == true)
        #expect(problems { $0.removeAll { ["lora_scale", "mask", "go_fast", "turbo", "seed", "num_outputs", "megapixels"].contains($0.name) } }.isEmpty)
    }

    @Test func unknownParameterSuggestsTheNearestName() {
        var raw = Self.seed
        raw["num_inference_step"] = .string("4")
        let p = problems(raw)
        #expect(p.first?.code == "unknown_parameter")
        #expect(p.first?.message.contains(#"did you mean "num_inference_steps"?"#) == true)
        raw = Self.seed
        raw["zzzzzzzzzzzzzzzzzzzz"] = .string("1")
        #expect(problems(raw).first?.message.contains("did you mean") == false)
        raw = Self.seed
        raw["guidance_scal"] = .string("1")
        #expect(problems(raw).first?.message.contains(#"did you mean "guidance"?"#) == true)
    }

    @Test func unknownModel() {
        var raw = Self.seed
        raw["model_id"] = .string("sdxl")
        let p = problems(raw)
        #expect(p.map(\.code) == ["unknown_model"])
        #expect(p.first?.message.contains("flux-cute-3d-kawaii") == true)
    }

    @Test func customNeedsWidthAndHeightAndRoundsUp() throws {
        var raw = Self.seed
        raw["aspect_ratio"] = .string("custom")
        #expect(Set(problems(raw).map(\.param)) == ["width", "height"])
        raw["width"] = .string("1000")
        raw["height"] = .string("257")
        #expect(try decoder.decode(raw).size == ImageSize(width: 1008, height: 272))
        raw["width"] = .string("1441")
        #expect(problems(raw).map(\.code) == ["out_of_range"])
        raw["width"] = .string("255")
        #expect(problems(raw).map(\.code) == ["out_of_range"])
    }

    @Test func widthWithoutCustomIsRefused() {
        var raw = Self.seed
        raw["width"] = .string("512")
        #expect(problems(raw).map(\.code) == ["requires_custom"])
    }

    @Test func promptLengthIsBounded() {
        var raw = Self.seed
        raw["prompt"] = .string(String(repeating: "a", count: 3001))
        let p = problems(raw)
        #expect(p.map(\.code) == ["too_long"])
        #expect(p.first?.message.contains("512 tokens") == true)
    }

    @Test func parameterCountIsBounded() {
        var raw = Self.seed
        for i in 0..<70 { raw["x\(i)"] = .string("1") }
        #expect(problems(raw).contains { $0.code == "too_many_parameters" })
    }

    @Test func notYetSupportedParametersAreRefusedNotIgnored() {
        let schema = ParameterSchema([ParameterDefinition(name: "style", kind: .string, supported: false)])
        var p = Problems()
        _ = schema.validate(["style": .string("ink")], into: &p)
        #expect(p.items.map(\.code) == ["unsupported_parameter"])
        var q = Problems()
        _ = schema.validate(["style": .string("")], into: &q)
        #expect(q.items.isEmpty)
    }

    @Test func seedsArePerImageAndReproducible() throws {
        var raw = Self.seed
        raw["num_outputs"] = .string("3")
        let r = try decoder.decode(raw)
        #expect(r.seeds(base: 10) == [10, 11, 12])
        #expect(r.seeds(base: RunRequest.maxSeed) == [RunRequest.maxSeed, 0, 1])
    }

    @Test func integersMayArriveAsIntegralDecimals() throws {
        var raw = Self.seed
        raw["num_inference_steps"] = .string("28.0")
        #expect(try decoder.decode(raw).numInferenceSteps == 28)
        raw["num_inference_steps"] = .string("28.5")
        #expect(problems(raw).map(\.code) == ["invalid_type"])
    }
}
