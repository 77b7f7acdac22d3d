import AtelierCore
@testable import AtelierHTTP
import NIOCore
import Testing

@Suite struct BodyParserTests {
    func parse(_ body: String, _ type: String?) throws(AtelierError) -> [String: ParameterValue] {
        try BodyParser.parse(ByteBuffer(string: body), contentType: type)
    }

    @Test func jsonKeepsTypes() throws {
        let p = try parse(#"{"prompt":"a","steps":28,"go_fast":false,"seed":null,"g":2.5}"#, "application/json")
        #expect(p == ["prompt": .string("a"), "steps": .number(28), "go_fast": .bool(false), "seed": .null, "g": .number(2.5)])
    }

    @Test func jsonNestedValuesAreRefusedByName() {
        #expect(throws: AtelierError.malformedBody("prompt must be a string, number or boolean, not an object or array")) {
            try parse(#"{"prompt":{"a":1}}"#, "application/json")
        }
    }

    @Test func brokenJSONIsA400NotA500() {
        #expect(throws: AtelierError.self) { try parse("{nope", "application/json") }
    }

    @Test func formDecodesPercentAndPlus() throws {
        let p = try parse("prompt=Cute+3d+Kawaii%2C+cat&seed=&aspect_ratio=1%3A1", "application/x-www-form-urlencoded")
        #expect(p == ["prompt": .string("Cute 3d Kawaii, cat"), "seed": .string(""), "aspect_ratio": .string("1:1")])
    }

    @Test func formDuplicatesAreRefused() {
        #expect(throws: AtelierError.self) { try parse("a=1&a=2", "application/x-www-form-urlencoded") }
    }

    /// The exact shape PHP's cURL sends for `CURLOPT_POSTFIELDS => [...]`.
    @Test func multipartLikePHPCurl() throws {
        let body = [
            "--------------------------abc123",
            #"Content-Disposition: form-data; name="prompt""#, "", "Cute 3d Kawaii cat",
            "--------------------------abc123",
            #"Content-Disposition: form-data; name="seed""#, "", "",
            "--------------------------abc123",
            #"Content-Disposition: form-data; name="image"; filename="a.png""#, "Content-Type: image/png", "", "PNGDATA",
            "--------------------------abc123--", "",
        ].joined(separator: "\r\n")
        let p = try parse(body, "multipart/form-data; boundary=------------------------abc123")
        #expect(p["prompt"] == .string("Cute 3d Kawaii cat"))
        #expect(p["seed"] == .string(""))
        #expect(p["image"] == .file(bytes: Array("PNGDATA".utf8), filename: "a.png", contentType: "image/png"))
    }

    @Test func multipartWithoutBoundaryIsExplained() {
        #expect(throws: AtelierError.malformedBody("multipart/form-data needs a boundary in its Content-Type header")) {
            try parse("x", "multipart/form-data")
        }
    }

    @Test func otherMediaTypesAre415() {
        do {
            _ = try parse("x", "text/plain")
            Issue.record("accepted text/plain")
        } catch {
            #expect(ErrorMapping.status(for: error) == .unsupportedMediaType)
        }
    }
}

@Suite struct StrictBodyTests {
    func parse(_ body: [UInt8], _ type: String) throws(AtelierError) -> [String: ParameterValue] {
        try BodyParser.parse(ByteBuffer(bytes: body), contentType: type)
    }

    func param(of error: any Error) -> String? {
        guard case AtelierError.invalidParameters(let problems)? = error as? AtelierError else { return nil }
        return problems.first.map { "\($0.param):\($0.code)" }
    }

    @Test(arguments: [
        (#"{"prompt":"a","prompt":"b"}"#, "prompt:duplicate_parameter"),
        (#"{"prompt":"a\u0000b"}"#, "prompt:invalid_text"),
        (#"{"prompt":"a\ud800"}"#, "prompt:invalid_text"),
        ("{\"prompt\":\"a\nb\"}", "prompt:invalid_text"),  // a raw line break inside a JSON string
        (#"{"webhook_events_filter":["start",{"a":1,"a":2}]}"#, "webhook_events_filter:duplicate_parameter"),
    ])
    func jsonProblemsNameTheParameter(body: String, expected: String) {
        #expect(throws: (any Error).self) { try parse(Array(body.utf8), "application/json") }
        do { _ = try parse(Array(body.utf8), "application/json") } catch { #expect(param(of: error) == expected) }
    }

    @Test func jsonInvalidUTF8IsNamed() {
        let body = Array(#"{"prompt":"a"#.utf8) + [0xFF] + Array(#""}"#.utf8)
        do { _ = try parse(body, "application/json"); Issue.record("accepted") } catch { #expect(param(of: error) == "prompt:invalid_text") }
    }

    @Test(arguments: ["", "[1]", "{", #"{"a":1,}"#, #"{"a":01}"#, #"{"a":1} x"#, String(repeating: "[", count: 100_000)])
    func malformedJSONIsA400(body: String) {
        do { _ = try parse(Array(body.utf8), "application/json") } catch { #expect(ErrorMapping.status(for: error) == .badRequest) }
    }

    @Test func jsonNumbersEscapesAndSurrogatePairs() throws {
        let p = try parse(Array(#"{"a":-1.5e2,"b":"\u00e9\ud83d\ude00\n"}"#.utf8), "application/json")
        #expect(p["a"] == .number(-150))
        #expect(p["b"] == .string("é😀\n"))
    }

    @Test func textRulesNormalizeCRLFAndRefuseOtherControls() throws {
        #expect(try TextRules.checked("a\r\nb\tc\n", param: "p") == "a\nb\tc\n")
        for bad in ["a\rb", "a\u{0}", "\u{1B}[0m", "\u{7F}", "\u{85}", "a\r"] {
            #expect(throws: AtelierError.self) { try TextRules.checked(bad, param: "p") }
        }
    }

    static let boundary = "zz"
    static func part(_ name: String, _ value: String) -> String {
        "--zz\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
    }

    @Test func multipartPreambleEpilogueAndPadding() throws {
        let body = "preamble\r\n" + Self.part("a", "1") + "--zz  \r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--zz--\r\nepilogue"
        #expect(try parse(Array(body.utf8), "multipart/form-data; boundary=zz") == ["a": .string("1"), "b": .string("2")])
    }

    @Test(arguments: [
        part("a", "1"),                                     // no closing boundary
        part("a", "1") + "--zy--\r\n",                       // another closing boundary
        part("a", "1") + "--zzz--\r\n",                      // a longer boundary line
        "--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1",  // the part never ends
        "--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n--zz--", // no blank line after the headers
        "no boundary at all",
        part("a", "1") + part("a", "2") + "--zz--",            // a name twice
    ])
    func malformedMultipartIsRefused(body: String) {
        #expect(throws: AtelierError.self) { try parse(Array(body.utf8), "multipart/form-data; boundary=zz") }
    }

    /// Every prefix of a valid multipart body is refused (never parameters from a cut-off body), and every
    /// single-byte change of it is refused or keeps the body's shape: a change inside a value keeps the same
    /// parameters with that value changed, a change of the closing delimiter is refused, and no change yields more
    /// parameters than the body has.
    @Test func truncationsAndFlipsOfMultipartNeverYieldACutOffBody() throws {
        let text = Self.part("prompt", "Cute 3d Kawaii") + Self.part("seed", "42") + "--zz--\r\n"
        let body = Array(text.utf8)
        let type = "multipart/form-data; boundary=zz"
        let whole = try parse(body, type)
        let closeEnd = body.count - 2  // the "\r\n" after "--zz--" is epilogue
        for n in 1..<closeEnd {  // (an empty body is no parameters at all)
            #expect(throws: AtelierError.self) { try parse(Array(body.prefix(n)), type) }
        }
        func flipped(_ i: Int) -> [UInt8] {
            var m = body
            m[i] = m[i] == UInt8(ascii: "x") ? UInt8(ascii: "y") : UInt8(ascii: "x")
            return m
        }
        func offsets(of value: String) -> Range<Int> {
            let start = text.utf8.distance(from: text.utf8.startIndex, to: text.range(of: "\r\n\r\n\(value)\r\n")!.lowerBound) + 4
            return start..<(start + value.utf8.count)
        }
        for i in offsets(of: "Cute 3d Kawaii").lowerBound..<offsets(of: "Cute 3d Kawaii").upperBound {
            let p = try parse(flipped(i), type)
            #expect(Set(p.keys) == Set(whole.keys) && p["prompt"] != whole["prompt"] && p["seed"] == whole["seed"])
        }
        for i in (closeEnd - 6)..<closeEnd {  // "--zz--"
            #expect(throws: AtelierError.self) { try parse(flipped(i), type) }
        }
        for i in 0..<body.count {
            if let p = try? parse(flipped(i), type) { #expect(p.count <= whole.count, "byte \(i)") }
        }
    }
}
