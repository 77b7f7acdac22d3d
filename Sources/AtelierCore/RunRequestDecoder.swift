import Foundation

/// Turns the raw parameters of any body encoding into a `RunRequest`, reporting every problem at once.
public struct RunRequestDecoder: Sendable {
    public let catalog: ModelCatalog
    /// The most parameters a body may carry; a client sending more is confused or hostile.
    public static let maxParameterCount = 64

    public static let knownParameters: [String] = [
        "model_id", "prompt", "aspect_ratio", "megapixels", "width", "height", "num_outputs", "num_inference_steps",
        "guidance", "seed", "output_format", "output_quality", "lora_scale", "go_fast", "prompt_strength",
        "disable_safety_checker", "image", "mask", "webhook", "api_key",
    ]
    /// Names other clients use for the same thing.
    public static let aliases: [String: String] = ["guidance_scale": "guidance"]
    /// Documented parameters this server does not run yet: refused clearly rather than silently ignored.
    public static let notYetSupported: Set<String> = ["image", "mask", "webhook"]

    public init(catalog: ModelCatalog) {
        self.catalog = catalog
    }

    public func decode(_ raw: [String: ParameterValue]) throws(AtelierError) -> RunRequest {
        var p = Problems()
        var values: [String: ParameterValue] = [:]
        if raw.count > Self.maxParameterCount {
            p.add("body", "too_many_parameters", "a request may carry at most \(Self.maxParameterCount) parameters; got \(raw.count)")
        }
        for (name, value) in raw.sorted(by: { $0.key < $1.key }) {
            let canonical = Self.aliases[name] ?? name
            if canonical == "api_key" { continue }
            guard Self.knownParameters.contains(canonical) else {
                let hint = Self.nearest(to: name).map { "; did you mean \"\($0)\"?" } ?? ""
                p.add(name, "unknown_parameter", "\(name) is not a parameter of /api/v4/run\(hint)")
                continue
            }
            if values[canonical] != nil {
                p.add(canonical, "duplicate_parameter", "\(canonical) is given twice (\(name) is an alias of \(canonical)); send it once")
                continue
            }
            if Self.notYetSupported.contains(canonical), value != .null, value != .string("") {
                p.add(canonical, "unsupported_parameter", "\(canonical) is not supported by this server yet; send the request without it")
                continue
            }
            values[canonical] = value
        }

        let modelID = p.string(values, "model_id", required: true)
        let entry: ModelEntry? = modelID.flatMap { id in
            if let e = catalog[id] { return e }
            p.add("model_id", "unknown_model", "model_id must be one of \(catalog.ids.joined(separator: ", ")); got \"\(id)\"")
            return nil
        }
        let limits = entry?.limits ?? ParameterLimits()

        var prompt = p.string(values, "prompt", required: true)
        if let text = prompt {
            if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                p.add("prompt", "empty", "prompt must not be empty; describe the image you want")
                prompt = nil
            } else if text.count > limits.maxPromptLength {
                p.add("prompt", "too_long", "prompt must be at most \(limits.maxPromptLength) characters (the T5 encoder reads at most 512 tokens); got \(text.count)")
                prompt = nil
            }
        }

        let megapixels = p.choice(values, "megapixels", SizeTable.megapixels, default: "1")
        let aspectRatio = p.choice(values, "aspect_ratio", SizeTable.aspectRatios + [SizeTable.custom], default: nil, required: true)
        var size: ImageSize?
        let width = p.integer(values, "width", range: SizeTable.customSideRange, default: nil)
        let height = p.integer(values, "height", range: SizeTable.customSideRange, default: nil)
        if aspectRatio == SizeTable.custom {
            if values["width"] == nil { p.add("width", "required", "width is required when aspect_ratio is custom (256–1440)") }
            if values["height"] == nil { p.add("height", "required", "height is required when aspect_ratio is custom (256–1440)") }
            if let w = width, let h = height {
                size = ImageSize(width: SizeTable.roundUpToMultipleOf16(w), height: SizeTable.roundUpToMultipleOf16(h))
            }
        } else if let ratio = aspectRatio, let mp = megapixels {
            size = SizeTable.size(aspectRatio: ratio, megapixels: mp)
            for side in ["width", "height"] where values[side] != nil && values[side] != .string("") {
                p.add(side, "requires_custom", "\(side) is only used when aspect_ratio is custom; got aspect_ratio \"\(ratio)\"")
            }
        }

        let numOutputs = p.integer(values, "num_outputs", range: limits.numOutputs, default: 1)
        let steps = p.integer(values, "num_inference_steps", range: limits.numInferenceSteps, default: limits.defaultNumInferenceSteps)
        let guidance = p.number(values, "guidance", range: limits.guidance, default: limits.defaultGuidance)
        let quality = p.integer(values, "output_quality", range: limits.outputQuality, default: limits.defaultOutputQuality)
        let loraScale = p.number(values, "lora_scale", range: limits.loraScale, default: limits.defaultLoraScale)
        let promptStrength = p.number(values, "prompt_strength", range: 0...1, default: 0.8)
        let goFast = p.boolean(values, "go_fast", default: true)
        let disableSafety = p.boolean(values, "disable_safety_checker", default: false)
        let seed = p.seed(values)
        var format: OutputFormat? = .webp
        if let v = values["output_format"], v != .null {
            if case .string(let s) = v, let f = OutputFormat(parameter: s) {
                format = f
            } else {
                p.add("output_format", "invalid_choice", "output_format must be one of webp, jpg, png (jpeg is accepted); got \(v.display)")
                format = nil
            }
        }

        if !p.items.isEmpty { throw .invalidParameters(p.items) }
        guard let modelID, let prompt, let aspectRatio, let megapixels, let size, let numOutputs, let steps,
              let guidance, let quality, let loraScale, let promptStrength, let goFast, let disableSafety, let format
        else {
            throw .internalError("a parameter was neither valid nor reported")
        }
        return RunRequest(
            modelID: modelID, prompt: prompt, aspectRatio: aspectRatio, megapixels: megapixels, size: size,
            numOutputs: numOutputs, numInferenceSteps: steps, guidance: guidance, seed: seed ?? nil,
            outputFormat: format, outputQuality: quality, loraScale: loraScale, goFast: goFast,
            promptStrength: promptStrength, disableSafetyChecker: disableSafety
        )
    }

    /// The known parameter closest to a misspelt one (edit distance ≤ 3), for the error's hint.
    static func nearest(to name: String) -> String? {
        let candidates = knownParameters + Array(aliases.keys)
        let scored = candidates.map { ($0, editDistance(name.lowercased(), $0)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= max(3, name.count / 3) else { return nil }
        return aliases[best] ?? best
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where j <= b.count {
                current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// Collects problems while typing values; each accessor returns nil after recording a problem.
struct Problems {
    var items: [ParameterProblem] = []

    mutating func add(_ param: String, _ code: String, _ message: String) {
        items.append(ParameterProblem(param: param, code: code, message: message))
    }

    /// Absent, JSON null and (for optional parameters) the empty string all mean "use the default".
    private func present(_ values: [String: ParameterValue], _ name: String) -> ParameterValue? {
        guard let v = values[name], v != .null else { return nil }
        return v
    }

    mutating func string(_ values: [String: ParameterValue], _ name: String, required: Bool = false) -> String? {
        guard let v = present(values, name) else {
            if required { add(name, "required", "\(name) is required") }
            return nil
        }
        if case .string(let s) = v {
            if required && s.isEmpty { add(name, "required", "\(name) is required and must not be empty"); return nil }
            return s
        }
        add(name, "invalid_type", "\(name) must be a string; got \(v.display)")
        return nil
    }

    mutating func choice(_ values: [String: ParameterValue], _ name: String, _ allowed: [String], default def: String?, required: Bool = false) -> String? {
        guard let v = present(values, name), v != .string("") || required else {
            if required { add(name, "required", "\(name) is required; one of \(allowed.joined(separator: ", "))") }
            return def
        }
        var text: String?
        switch v {
        case .string(let s): text = s
        case .number: text = v.display  // megapixels: 1 or 0.25 sent as a JSON number
        default: text = nil
        }
        if let t = text, allowed.contains(t) { return t }
        if case .number(let d) = v, allowed.contains(String(d)) { return String(d) }
        add(name, "invalid_choice", "\(name) must be one of \(allowed.joined(separator: ", ")); got \(v.display)")
        return nil
    }

    mutating func integer(_ values: [String: ParameterValue], _ name: String, range: ClosedRange<Int>, default def: Int?) -> Int? {
        guard let v = present(values, name), v != .string("") else { return def }
        var parsed: Int?
        switch v {
        case .number(let d) where d == d.rounded() && abs(d) < 1e15: parsed = Int(d)
        case .string(let s): parsed = Int(s.trimmingCharacters(in: .whitespaces)) ?? Double(s).flatMap { $0 == $0.rounded() && abs($0) < 1e15 ? Int($0) : nil }
        default: parsed = nil
        }
        guard let n = parsed else {
            add(name, "invalid_type", "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound); got \(v.display)")
            return nil
        }
        guard range.contains(n) else {
            add(name, "out_of_range", "\(name) must be from \(range.lowerBound) to \(range.upperBound); got \(n)")
            return nil
        }
        return n
    }

    mutating func number(_ values: [String: ParameterValue], _ name: String, range: ClosedRange<Double>, default def: Double) -> Double? {
        guard let v = present(values, name), v != .string("") else { return def }
        var parsed: Double?
        switch v {
        case .number(let d): parsed = d
        case .string(let s): parsed = Double(s.trimmingCharacters(in: .whitespaces))
        default: parsed = nil
        }
        guard let x = parsed, x.isFinite else {
            add(name, "invalid_type", "\(name) must be a number from \(Self.format(range.lowerBound)) to \(Self.format(range.upperBound)); got \(v.display)")
            return nil
        }
        guard range.contains(x) else {
            add(name, "out_of_range", "\(name) must be from \(Self.format(range.lowerBound)) to \(Self.format(range.upperBound)); got \(Self.format(x))")
            return nil
        }
        return x
    }

    mutating func boolean(_ values: [String: ParameterValue], _ name: String, default def: Bool) -> Bool? {
        guard let v = present(values, name), v != .string("") else { return def }
        switch v {
        case .bool(let b): return b
        case .number(let d) where d == 0 || d == 1: return d == 1
        case .string(let s):
            switch s.lowercased() {
            case "true", "1", "yes", "on": return true
            case "false", "0", "no", "off": return false
            default: break
            }
        default: break
        }
        add(name, "invalid_type", "\(name) must be true or false; got \(v.display)")
        return nil
    }

    /// nil: invalid (recorded); .some(nil): random; .some(n): that seed.
    mutating func seed(_ values: [String: ParameterValue]) -> UInt64?? {
        guard let v = present(values, "seed"), v != .string("") else { return .some(nil) }
        var parsed: UInt64?
        switch v {
        case .number(let d) where d >= 0 && d == d.rounded() && d <= Double(RunRequest.maxSeed): parsed = UInt64(d)
        case .string(let s): parsed = UInt64(s.trimmingCharacters(in: .whitespaces))
        default: parsed = nil
        }
        guard let n = parsed, n <= RunRequest.maxSeed else {
            add("seed", "invalid_seed", "seed must be an integer from 0 to \(RunRequest.maxSeed), or \"\" for a random seed; got \(v.display)")
            return nil
        }
        return .some(n)
    }

    static func format(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
    }
}
