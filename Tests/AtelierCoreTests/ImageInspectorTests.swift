@testable import AtelierCore
import AtelierTesting
import Foundation
import Testing

/// Minimal files of each format, built byte by byte (the inspector reads structure, not pixels).
enum SampleImages {
    static func be32(_ n: Int) -> [UInt8] { [UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] { be32(data.count) + Array(type.utf8) + data + [0, 0, 0, 0] }

    static func png(width: Int, height: Int, idat: Int = 20) -> [UInt8] {
        [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            + chunk("IHDR", be32(width) + be32(height) + [8, 2, 0, 0, 0])
            + chunk("IDAT", [UInt8](repeating: 0x78, count: idat)) + chunk("IEND", [])
    }

    static func jpeg(width: Int, height: Int) -> [UInt8] {
        let sof: [UInt8] = [0xFF, 0xC0, 0x00, 0x11, 0x08, UInt8(height >> 8), UInt8(height & 0xFF), UInt8(width >> 8), UInt8(width & 0xFF), 0x03]
            + [UInt8](repeating: 0x11, count: 9)
        let sos: [UInt8] = [0xFF, 0xDA, 0x00, 0x0C, 0x03] + [UInt8](repeating: 0, count: 7)
        // Entropy-coded data with a stuffed 0xFF00 and a restart marker, which are not the end.
        return [0xFF, 0xD8] + [0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46] + sof + sos + [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56] + [0xFF, 0xD9]
    }

    static func webpLossless(width: Int, height: Int) -> [UInt8] {
        let bits = (width - 1) | (height - 1) << 14
        let payload: [UInt8] = [0x2F, UInt8(bits & 0xFF), UInt8(bits >> 8 & 0xFF), UInt8(bits >> 16 & 0xFF), UInt8(bits >> 24 & 0xFF)]
            + [UInt8](repeating: 0, count: 10)
        let chunkBytes = Array("VP8L".utf8) + [UInt8(payload.count), 0, 0, 0] + payload
        let size = 4 + chunkBytes.count
        return Array("RIFF".utf8) + [UInt8(size & 0xFF), UInt8(size >> 8 & 0xFF), 0, 0] + Array("WEBP".utf8) + chunkBytes
    }
}

@Suite struct ImageInspectorTests {
    let limits = ImageLimits()

    func code(_ bytes: [UInt8], limits: ImageLimits = ImageLimits()) -> String? {
        do {
            _ = try ImageInspector.inspect(bytes, param: "image", limits: limits)
            return nil
        } catch {
            guard case .invalidParameters(let p) = error else { return "unexpected" }
            #expect(p.first?.param == "image")
            #expect(p.first?.message.hasPrefix("image: ") == true)
            return p.first?.code
        }
    }

    @Test func readsTheSizeOfEachAcceptedFormat() throws {
        #expect(try ImageInspector.inspect(SampleImages.png(width: 640, height: 480), param: "image", limits: limits)
                == ImageHeader(format: .png, width: 640, height: 480))
        #expect(try ImageInspector.inspect(SampleImages.jpeg(width: 1200, height: 900), param: "image", limits: limits)
                == ImageHeader(format: .jpg, width: 1200, height: 900))
        #expect(try ImageInspector.inspect(SampleImages.webpLossless(width: 300, height: 200), param: "image", limits: limits)
                == ImageHeader(format: .webp, width: 300, height: 200))
    }

    @Test func aDecompressionBombIsRefusedFromItsHeader() {
        // 60000 × 60000 = 3.6 gigapixels in a file of a few dozen bytes.
        let bomb = SampleImages.png(width: 60000, height: 60000)
        #expect(bomb.count < 100)
        #expect(code(bomb) == "too_many_pixels")
        #expect(code(SampleImages.png(width: Int(Int32.max), height: Int(Int32.max))) == "too_many_pixels")
    }

    @Test func truncatedFilesAreRefused() {
        let png = SampleImages.png(width: 64, height: 64)
        #expect(code(Array(png.dropLast(12))) == "truncated_image")  // IEND missing
        #expect(code(Array(png.prefix(40))) == "truncated_image")
        let jpeg = SampleImages.jpeg(width: 64, height: 64)
        #expect(code(Array(jpeg.dropLast(2))) == "truncated_image")  // no end-of-image marker
        let webp = SampleImages.webpLossless(width: 8, height: 8)
        #expect(code(Array(webp.dropLast(4))) == "truncated_image")  // shorter than its RIFF size
    }

    @Test func otherFormatsAreNamed() throws {
        let gif = Array("GIF89a".utf8) + [UInt8](repeating: 0, count: 20)
        #expect(code(gif) == "unsupported_format")
        do {
            _ = try ImageInspector.inspect(gif, param: "mask", limits: limits)
        } catch {
            guard case .invalidParameters(let p) = error else { throw error }
            #expect(p[0].param == "mask" && p[0].message.contains("GIF"))
        }
        #expect(code(Array("<svg xmlns=\"http://www.w3.org/2000/svg\"/>".utf8)) == "unsupported_format")
        #expect(code([]) == "empty_image")
    }

    @Test func bytesAndPixelsAreBoundedByTheLimits() {
        let png = SampleImages.png(width: 100, height: 100, idat: 500)
        #expect(code(png, limits: ImageLimits(maxBytes: 400, maxPixels: 40_000_000)) == "image_too_large")
        #expect(code(png, limits: ImageLimits(maxBytes: 20_000_000, maxPixels: 9_999)) == "too_many_pixels")
        #expect(code(png) == nil)
    }
}

@Suite struct ImageSourceTests {
    @Test func eachFormOfInput() throws {
        let png = SampleImages.png(width: 4, height: 4)
        #expect(try ImageSource.parse(.file(bytes: png, filename: "a.png", contentType: nil), param: "image") == .bytes(png, origin: .upload))
        let uri = "data:image/png;base64," + Data(png).base64EncodedString()
        #expect(try ImageSource.parse(.string(uri), param: "image") == .bytes(png, origin: .dataURI))
        // Padding left off, as some encoders do.
        let unpadded = uri.trimmingCharacters(in: CharacterSet(charactersIn: "="))
        #expect(try ImageSource.parse(.string(unpadded), param: "image") == .bytes(png, origin: .dataURI))
        #expect(try ImageSource.parse(.string("https://example.com/cat.png"), param: "image") == .url(URL(string: "https://example.com/cat.png")!))
        #expect(try ImageSource.parse(.string(""), param: "image") == nil)
        #expect(try ImageSource.parse(nil, param: "image") == nil)
    }

    @Test(arguments: [
        ("ftp://example.com/a.png", "unsupported_scheme"), ("file:///etc/passwd", "unsupported_scheme"),
        ("a picture of a cat", "invalid_image"), ("data:image/png,abc", "invalid_data_uri"),
        ("data:image/png;base64", "invalid_data_uri"), ("data:image/png;base64,!!!!", "invalid_data_uri"),
        ("http://", "invalid_url"),
    ])
    func badSourcesNameTheProblem(text: String, expected: String) {
        do {
            _ = try ImageSource.parse(.string(text), param: "mask")
            Issue.record("\(text) was accepted")
        } catch {
            guard case .invalidParameters(let p) = error else { Issue.record("\(error)"); return }
            #expect(p.first?.code == expected && p.first?.param == "mask")
        }
    }
}

@Suite struct InputSizeTests {
    @Test func outputTakesTheInputSizeCappedAndRounded() {
        #expect(SizeTable.size(forInput: 1024, 768) == ImageSize(width: 1024, height: 768))
        #expect(SizeTable.size(forInput: 1000, 750) == ImageSize(width: 1008, height: 752))
        #expect(SizeTable.size(forInput: 2880, 1440) == ImageSize(width: 1440, height: 720))
        #expect(SizeTable.size(forInput: 4000, 3000) == ImageSize(width: 1440, height: 1088))
        #expect(SizeTable.size(forInput: 5, 5) == ImageSize(width: 16, height: 16))
    }

    @Test func stepsFollowDiffusersStrengthRule() {
        #expect(SizeTable.imageToImageSteps(28, strength: 0.8) == 23)
        #expect(SizeTable.imageToImageSteps(4, strength: 0.2) == 1)
        #expect(SizeTable.imageToImageSteps(4, strength: 0) == 0)
    }

    @Test func decoderWithAnImage() throws {
        let decoder = RunRequestDecoder(catalog: ModelCatalog([try RepositoryCatalog.entry()]))
        let png = SampleImages.png(width: 4, height: 4)
        // aspect_ratio is not required with an image.
        let (request, inputs) = try decoder.decodeWithInputs([
            "model_id": .string("flux-cute-3d-kawaii"), "prompt": .string("a cat"),
            "image": .file(bytes: png, filename: nil, contentType: nil), "prompt_strength": .string("0.5"),
        ])
        #expect(inputs.image == .bytes(png, origin: .upload) && inputs.mask == nil && request.promptStrength == 0.5)
        var attached = request
        attached.attach(image: InputImage(file: "f.png", format: .png, width: 1000, height: 750, bytes: 10, sha256: "", origin: .upload), mask: nil)
        #expect(attached.size == ImageSize(width: 1008, height: 752) && attached.aspectRatio == "input")

        for (raw, code) in [
            (["mask": ParameterValue.string("https://example.com/m.png"), "aspect_ratio": .string("1:1")], "mask_without_image"),
            (["image": .string("https://example.com/i.png"), "prompt_strength": .string("0")], "too_few_steps"),
        ] {
            var full: [String: ParameterValue] = ["model_id": .string("flux-cute-3d-kawaii"), "prompt": .string("a cat")]
            full.merge(raw) { $1 }
            do {
                _ = try decoder.decodeWithInputs(full)
                Issue.record("accepted \(raw)")
            } catch {
                guard case .invalidParameters(let p) = error else { throw error }
                #expect(p.map(\.code) == [code])
            }
        }
    }
}
