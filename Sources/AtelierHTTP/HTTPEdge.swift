import AtelierCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// What every controller shares at the edge: bodies read within the limit and parsed, the base of the links an
/// answer carries, and how output URLs reach the images.
public struct HTTPEdge: Sendable {
    /// Public base URL for links (e.g. https://images.example.com); nil: built from the request's Host.
    let publicBaseURL: String?
    /// Largest body accepted; a larger Content-Length is refused before the body is read.
    let maxBodyBytes: Int
    let links: OutputLinks

    init(config: APIConfiguration, storage: any ImageStorage) {
        publicBaseURL = config.publicBaseURL
        maxBodyBytes = config.maxBodyBytes
        links = OutputLinks(mode: config.outputURLs, storage: storage)
    }

    func baseURL(for request: Request) -> String {
        if let configured = publicBaseURL { return configured }
        let host = request.head.authority ?? "127.0.0.1"
        return "http://\(host)"
    }

    /// The body's fields: JSON, form or multipart (`BodyParser`).
    func readParameters(_ request: Request) async throws -> [String: ParameterValue] {
        try BodyParser.parse(try await readBody(request), contentType: request.headers[.contentType])
    }

    /// The whole body, refused with 413 past `maxBodyBytes` (before it is read when Content-Length says so).
    func readBody(_ request: Request) async throws -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBodyBytes {
            throw AtelierError.bodyTooLarge(limit: maxBodyBytes)
        }
        do {
            return try await request.body.collect(upTo: maxBodyBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw AtelierError.bodyTooLarge(limit: maxBodyBytes)
        } catch is NIOTooManyBytesError {
            // A body without Content-Length (chunked) that grew past the limit while it streamed.
            throw AtelierError.bodyTooLarge(limit: maxBodyBytes)
        }
    }

    /// An image file from disk, or a 404 saying `missing` if it is not there.
    static func imageFile(path: String, format: OutputFormat, cacheControl: String, missing: String,
                          context: AtelierRequestContext) async throws -> Response {
        let body: ResponseBody
        do {
            body = try await FileIO().loadFile(path: path, context: context)
        } catch {
            throw AtelierError.notFound(missing)
        }
        let headers: HTTPFields = [.contentType: format.contentType, .cacheControl: cacheControl,
                                   HTTPField.Name("X-Content-Type-Options")!: "nosniff"]
        return Response(status: .ok, headers: headers, body: body)
    }
}
