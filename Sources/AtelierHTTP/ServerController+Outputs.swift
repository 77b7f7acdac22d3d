import AtelierCore
import AtelierRuns
import AtelierStorage
import Hummingbird
import HTTPTypes
import NIOCore

extension ServerController {
    /// Names are random and never reused, so an image never changes: cache it for good.
    static let immutable = "public, max-age=31536000, immutable"

    /// With output retention, a missing image is most likely one the sweeper deleted: say so, and where to look.
    var missingOutput: String {
        guard let retention = outputRetention else { return "no such output" }
        return "no such output: this server deletes images \(retention.components.seconds) s after their run finished (--output-retention); /api/v4/check shows the run with output_expired"
    }

    static var outputEndpoint: Endpoint<ServerController> {
        let images: [String: OpenAPI.MediaType] = ["image/webp": .init(), "image/jpeg": .init(), "image/png": .init()]
        return Endpoint(.get("/storage/outputs/{name}", .init(
            "output", "A generated image", isPublic: true,
            parameters: [.path("name", .string()),
                         .header("Range", .string(), description: "One range, bytes=A-B or bytes=A-, honoured when images are in an S3 bucket.")],
            responses: ["200": .init(description: "The image; names are random and never reused, so it is cached for good.", content: images),
                        "206": .init(description: "The requested range of the image (images in an S3 bucket).", content: images),
                        "307": .described("With --output-urls presigned: the image at a presigned URL of the bucket (Location).")]
                + ErrorMapping.documented([404, 503], [404: "No such output.",
                                                       503: "The image store is unreachable for the moment (storage_unavailable); see Retry-After."])))) { api in
            { try await api.output($0, context: $1) }
        }
    }

    /// `GET /storage/outputs/NAME`: from this machine's disk, streamed from the bucket (honouring one `Range`),
    /// or a redirect to a presigned URL, as `--output-urls` says.
    func output(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        guard let name = context.parameters.get("name"), ImageName.isValid(name),
              let format = OutputFormat(rawValue: String(name.split(separator: ".").last ?? ""))
        else {
            throw AtelierError.notFound(missingOutput)
        }
        if case .presigned(let expires) = outputURLs, let url = storage.presignedURL(for: name, expires: expires) {
            // The redirect may be reused while the URL it names is still valid, by this client only.
            return Response(status: .temporaryRedirect, headers: [.location: url, .cacheControl: "private, max-age=\(max(0, expires / 2))"])
        }
        if let path = storage.localPath(for: name) {
            return try await HTTPEdge.imageFile(path: path, format: format, cacheControl: Self.immutable, missing: missingOutput, context: context)
        }
        let range = request.headers[.range].flatMap(Self.byteRange)
        guard let image = try await storage.read(name: name, range: range) else { throw AtelierError.notFound(missingOutput) }
        var headers: HTTPFields = [.contentType: format.contentType, .cacheControl: Self.immutable, .acceptRanges: "bytes",
                                   HTTPField.Name("X-Content-Type-Options")!: "nosniff"]
        if let length = image.contentLength { headers[.contentLength] = String(length) }
        if let contentRange = image.contentRange { headers[.contentRange] = contentRange }
        let body = ResponseBody(asyncSequence: image.chunks.map { ByteBuffer(bytes: $0) })
        return Response(status: image.contentRange == nil ? .ok : .partialContent, headers: headers, body: body)
    }

    /// `bytes=A-B` or `bytes=A-`; anything else (several ranges, suffixes) is answered whole, as RFC 9110 allows.
    static func byteRange(_ header: String) -> ClosedRange<Int>? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let parts = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let start = Int(parts[0]), start >= 0 else { return nil }
        if parts[1].isEmpty { return start...(Int.max / 2) }
        guard let end = Int(parts[1]), end >= start else { return nil }
        return start...end
    }
}
