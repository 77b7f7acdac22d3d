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
