/// The parameters the FLUX pipeline understands: the one table of the run contract. A model file's `parameters`
/// may offer any of these and narrow them (bounds, choices, default, description), never invent one: a name the
/// pipeline would drop is refused when the catalog loads (`RunParameter.problems(in:)`), naming the file and the
/// parameter. The decoder reads values through this table, the worker's `generate` message carries each one
/// under `workerField`, and the batch key is built here from the parameters the pipeline call depends on.
public enum RunParameter: String, CaseIterable, Sendable {
    case prompt
    case aspectRatio = "aspect_ratio"
    case width, height, megapixels
    case numOutputs = "num_outputs"
    case numInferenceSteps = "num_inference_steps"
    case guidance, seed
    case outputFormat = "output_format"
    case outputQuality = "output_quality"
    case loraScale = "lora_scale"
    case goFast = "go_fast"
    case turbo
    case promptStrength = "prompt_strength"
    case disableSafetyChecker = "disable_safety_checker"
    case image, mask
    case loraWeights = "lora_weights"
    case extraLora = "extra_lora"
    case extraLoraScale = "extra_lora_scale"
    case loras

    /// How a parameter bears on sharing a pipeline call (`--batch-size`).
    public enum Batching: Sendable {
        /// Each run keeps its own (prompt, seeds, format): runs that differ in it may share a call.
        case own
        /// The call's tensors depend on it: runs share a call only with equal values (part of the batch key).
        case keyed
        /// A run that sets it goes alone (an input image makes another pipeline; turbo's cache decides per call).
        case alone
    }

    /// What the pipeline needs of one parameter.
    public struct Contract: Sendable {
        public var kind: ParameterDefinition.Kind
        /// The field of the worker's `generate` message that carries it (contracts/worker-protocol.md).
        public var workerField: String
        /// Every model file must offer it (with a default unless required): the worker always needs a value and
        /// there is no neutral one.
        public var essential = false
        /// The value runs of a model that does not offer the parameter use (nil: none, e.g. no input image).
        public var absent: ParameterDefinition.Scalar?
        /// The widest bounds the pipeline takes; a model file may narrow them.
        public var bounds: ClosedRange<Double>?
        /// The choices the pipeline can run (kind choice); a model file may offer fewer.
        public var choices: [String]?
        /// Other APIs' names for it, by API (`openai`: the Images API's `n`, `size`, …).
        public var dialectNames: [String: String] = [:]
        public var batching = Batching.own
    }

    public var contract: Contract {
        switch self {
        case .prompt: Contract(kind: .string, workerField: "prompt", essential: true)
        case .aspectRatio:
            // The size it decides (with width, height and megapixels, which it stands for in the batch key).
            Contract(kind: .choice, workerField: "width, height", essential: true, choices: SizeTable.aspectRatios + [SizeTable.custom],
                     dialectNames: ["openai": "size"], batching: .keyed)
        case .width, .height:
            Contract(kind: .integer, workerField: rawValue, bounds: Double(SizeTable.customSideRange.lowerBound)...Double(SizeTable.customSideRange.upperBound),
                     dialectNames: ["openai": "size"])
        case .megapixels:
            Contract(kind: .choice, workerField: "width, height", absent: .string("1"), choices: SizeTable.megapixels, dialectNames: ["openai": "size"])
        case .numOutputs: Contract(kind: .integer, workerField: "outputs", absent: .number(1), bounds: 1...16, dialectNames: ["openai": "n"])
        case .numInferenceSteps: Contract(kind: .integer, workerField: "num_inference_steps", essential: true, bounds: 1...1000, batching: .keyed)
        case .guidance: Contract(kind: .number, workerField: "guidance", essential: true, bounds: 0...100, batching: .keyed)
        case .seed: Contract(kind: .seed, workerField: "outputs")
        case .outputFormat: Contract(kind: .choice, workerField: "output_format", essential: true, choices: OutputFormat.allCases.map(\.rawValue))
        case .outputQuality:
            Contract(kind: .integer, workerField: "output_quality", essential: true, bounds: 0...100, dialectNames: ["openai": "output_compression"])
        // A model without a LoRA (or one always at full strength) need not offer it.
        case .loraScale: Contract(kind: .number, workerField: "lora_scale", absent: .number(1), batching: .keyed)
        case .goFast: Contract(kind: .boolean, workerField: "go_fast", absent: .bool(false), batching: .keyed)
        case .turbo: Contract(kind: .boolean, workerField: "turbo", absent: .bool(false), batching: .alone)
        // Without an input image every step denoises from noise: strength 1.
        case .promptStrength: Contract(kind: .number, workerField: "strength", absent: .number(1), bounds: 0...1)
        case .disableSafetyChecker: Contract(kind: .boolean, workerField: "safety_check", absent: .bool(false))
        case .image: Contract(kind: .file, workerField: "image", batching: .alone)
        case .mask: Contract(kind: .file, workerField: "mask", batching: .alone)
        // Per-request LoRAs, stacked on the model's own in this order: lora_weights (at lora_scale), extra_lora (at
        // extra_lora_scale), then each entry of loras, all in the run's one list (`RunRequest.loras`). Runs share a
        // call only with the same list: `loras` stands in the batch key for all four.
        case .loraWeights: Contract(kind: .lora, workerField: "loras")
        case .extraLora: Contract(kind: .lora, workerField: "loras")
        case .extraLoraScale: Contract(kind: .number, workerField: "loras", absent: .number(1))
        case .loras: Contract(kind: .loraList, workerField: "loras", batching: .keyed)
        }
    }

    /// Why a model file cannot run as written, one line per problem; empty when the pipeline runs every parameter
    /// it offers as it describes them.
    public static func problems(in entry: ModelEntry) -> [String] {
        var out: [String] = []
        let offered = Dictionary(entry.parameters.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let known = allCases.map(\.rawValue)
        for d in entry.parameters {
            guard let parameter = RunParameter(rawValue: d.name) else {
                out.append("parameter \"\(d.name)\" is not one the pipeline runs, so every value of it would be dropped before the worker; the pipeline's parameters are \(known.joined(separator: ", "))")
                continue
            }
            out += parameter.problems(with: d)
        }
        for parameter in allCases where parameter.contract.essential {
            guard let d = offered[parameter.rawValue] else {
                out.append("parameter \"\(parameter.rawValue)\" is missing: every model must offer it (the worker needs a value and has no neutral one)")
                continue
            }
            if !d.required && d.defaultValue == nil {
                out.append("parameter \"\(parameter.rawValue)\" needs a default (or required: true): every run needs a value")
            }
        }
        if offered["aspect_ratio"]?.choices?.contains(SizeTable.custom) == true, offered["width"] == nil || offered["height"] == nil {
            out.append("aspect_ratio offers custom, which needs the width and height parameters too")
        }
        if offered["mask"] != nil && offered["image"] == nil { out.append("parameter \"mask\" needs the image parameter too") }
        if offered["image"] != nil && offered["prompt_strength"] == nil {
            out.append("parameter \"image\" needs prompt_strength too (how much of the image to keep)")
        }
        if offered["lora_weights"] != nil && entry.lora != nil {
            out.append("parameter \"lora_weights\" is for a model without its own lora (lora_scale is that LoRA's scale); offer extra_lora or loras to stack more")
        }
        if offered["lora_weights"] != nil && offered["lora_scale"] == nil {
            out.append("parameter \"lora_weights\" needs lora_scale too (its strength)")
        }
        if offered["extra_lora"] != nil && offered["extra_lora_scale"] == nil {
            out.append("parameter \"extra_lora\" needs extra_lora_scale too (its strength)")
        }
        return out
    }

    /// How a model file's definition departs from what the pipeline runs.
    func problems(with d: ParameterDefinition) -> [String] {
        let c = contract
        guard d.kind == c.kind else { return ["parameter \"\(d.name)\" must be of kind \(c.kind.rawValue), not \(d.kind.rawValue)"] }
        var out: [String] = []
        if let bounds = c.bounds {
            let low = d.minimum ?? -.infinity, high = d.maximum ?? .infinity
            if low < bounds.lowerBound || high > bounds.upperBound {
                out.append("parameter \"\(d.name)\" must stay within \(Problems.format(bounds.lowerBound))…\(Problems.format(bounds.upperBound)) (minimum and maximum may narrow it)")
            }
        }
        if let choices = c.choices, let unknown = (d.choices ?? []).first(where: { !choices.contains($0) }) {
            out.append("parameter \"\(d.name)\" offers \"\(unknown)\", which the pipeline cannot run; its choices are \(choices.joined(separator: ", "))")
        }
        if c.kind == .choice && (d.choices ?? []).isEmpty { out.append("parameter \"\(d.name)\" offers no choices") }
        if let value = d.defaultValue, !Self.accepts(d, value) {
            out.append("parameter \"\(d.name)\"'s default is not one of its own values")
        }
        return out
    }

    static func accepts(_ d: ParameterDefinition, _ value: ParameterDefinition.Scalar) -> Bool {
        switch (d.kind, value) {
        case (.string, .string), (.boolean, .bool): return true
        case (.choice, .string(let s)): return d.choices?.contains(s) == true
        case (.choice, .number(let n)): return d.choices?.contains(Problems.format(n)) == true
        case (.integer, .number(let n)), (.number, .number(let n)):
            return (d.kind == .number || n == n.rounded()) && (d.minimum ?? -.infinity) <= n && n <= (d.maximum ?? .infinity)
        default: return false
        }
    }
}

extension RunRequest {
    /// The value the pipeline runs with for a parameter, as text (the size for the four that decide it); nil
    /// where the run has none (no seed yet, no input image, turbo off).
    public func pipelineValue(_ parameter: RunParameter) -> String? {
        switch parameter {
        case .prompt: prompt
        case .aspectRatio, .width, .height, .megapixels: "\(size.width)x\(size.height)"
        case .numOutputs: String(numOutputs)
        case .numInferenceSteps: String(numInferenceSteps)
        case .guidance: String(guidance)
        case .seed: seed.map { String($0) }
        case .outputFormat: outputFormat.rawValue
        case .outputQuality: String(outputQuality)
        case .loraScale: String(loraScale)
        case .goFast: String(goFast)
        case .turbo: turbo == true ? "true" : nil
        case .promptStrength: String(promptStrength)
        case .disableSafetyChecker: String(disableSafetyChecker)
        case .image: image?.file
        case .mask: mask?.file
        case .loraWeights, .extraLora, .extraLoraScale, .loras:
            loras.map { $0.map(\.batchText).joined(separator: ",") }
        }
    }

    /// Runs with equal keys can share one pipeline call when the server batches (`--batch-size`): the same model
    /// and the same value of every parameter the table marks `keyed` (size, steps, guidance, LoRA scale, path),
    /// which are what the call's tensors depend on; a run that sets an `alone` parameter (an input image, turbo)
    /// has no key and goes alone. The worker is sent this key and batches by it; it never computes one.
    public var batchKey: String? {
        var parts = [modelID]
        for parameter in RunParameter.allCases {
            switch parameter.contract.batching {
            case .own: continue
            case .alone: if pipelineValue(parameter) != nil { return nil }
            case .keyed: parts.append(pipelineValue(parameter) ?? "")
            }
        }
        return parts.joined(separator: "|")
    }
}
