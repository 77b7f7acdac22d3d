import AtelierCore
import AtelierRuns
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /v1/files` (multipart field `content`), `GET` and `DELETE /v1/files/{id}`: how Replicate's clients send a
/// local file as an input. The client uploads it and passes the file's `urls.get` as the input; a prediction
/// whose input is such a URL of this server reads the file from the input store (no fetch over the network, so
/// the address policy that keeps fetches off internal hosts is not in the way). Files are images (what the
/// models take), checked like any input image; their 128-bit random ids are capabilities like output names.
/// They stay until deleted.
struct ReplicateFiles: Sendable {
    let runs: RunService
    let edge: HTTPEdge
    var imageLimits: ImageLimits { runs.inputs?.limits ?? ImageLimits() }

    struct FileObject: Encodable, Sendable {
        var id: String
        var name: String
        var contentType: String
        var size: Int
        var etag: String
        var checksums: [String: String]
        var metadata: [String: String] = [:]
        var createdAt: Date
        var expiresAt: Date? = nil
        var urls: [String: String]
        enum CodingKeys: String, CodingKey, CaseIterable {
            case id, name, size, etag, checksums, metadata, urls
            case contentType = "content_type"
            case createdAt = "created_at"
            case expiresAt = "expires_at"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(name, forKey: .name)
            try c.encode(contentType, forKey: .contentType)
            try c.encode(size, forKey: .size)
            try c.encode(etag, forKey: .etag)
            try c.encode(checksums, forKey: .checksums)
            try c.encode(metadata, forKey: .metadata)
            try c.encode(createdAt, forKey: .createdAt)
            try c.encode(expiresAt, forKey: .expiresAt)
            try c.encode(urls, forKey: .urls)
        }

        static var schema: JSONSchema {
            .component("File", .keyed(CodingKeys.self, required: CodingKeys.allCases.filter { $0 != .metadata }) { key in
                switch key {
                case .id, .name, .contentType, .etag: .string()
                case .size: .integer(minimum: 0)
                case .checksums: .object(["sha256": .string()])
                case .metadata: .anyObject
                case .createdAt: .string(format: "date-time")
                case .expiresAt: JSONSchema(type: .string, .null)
                case .urls: .object(["get": .string()], required: ["get"])
                }
            })
        }
    }

    var store: any ImageStorage {
        get throws {
            guard let inputs = runs.inputs else {
                throw AtelierError.invalid("content", "unsupported_parameter", "image inputs are not enabled on this server, so files cannot be uploaded")
            }
            return inputs.storage
        }
    }

    func object(id: String, name: String, bytes: [UInt8], format: OutputFormat, created: Date, request: Request) -> FileObject {
        let digest = SHA256.hash(data: bytes).hex
        return FileObject(id: id, name: name, contentType: format.contentType, size: bytes.count, etag: digest,
                          checksums: ["sha256": digest], createdAt: created, urls: ["get": "\(edge.baseURL(for: request))/v1/files/\(id)"])
    }

    func create(_ request: Request) async throws -> Response {
        let store = try self.store
        let parts = try await edge.readParameters(request)
        // The client sends the file as content, and metadata (JSON text) when given; nothing else is a field.
        if let unknown = parts.keys.sorted().first(where: { $0 != "content" && $0 != "metadata" }) {
            throw AtelierError.invalid(unknown, "unknown_parameter", "\(unknown.prefix(40)) is not a field of a file upload; send content (and metadata)")
        }
        switch parts["metadata"] {
        case nil, .null?: break
        case .string(let text)? where (try? JSONBody.parameters(Array(text.utf8))) != nil: break
        default: throw AtelierError.invalid("metadata", "invalid_metadata", "metadata must be a JSON object, e.g. {\"source\": \"camera\"}")
        }
        guard case .file(let bytes, let filename, _)? = parts["content"] else {
            throw AtelierError.invalid("content", "required", "content is required: the file, as the multipart/form-data field content")
        }
        let header = try ImageInspector.inspect(bytes, param: "content", limits: imageLimits)
        let name = store.newName(format: header.format)
        try await store.put(name: name, bytes: bytes)
        let file = object(id: name, name: filename ?? name, bytes: bytes, format: header.format, created: runs.clock.now(), request: request)
        return JSONResponse.make(status: .created, file)
    }

    func read(_ id: String, param: String) async throws -> ([UInt8], OutputFormat)? {
        guard let format = OutputFormat(rawValue: String(id.split(separator: ".").last ?? "")),
              let stored = try await store.read(name: id, range: nil) else { return nil }
        var bytes: [UInt8] = []
        for try await chunk in stored.chunks { bytes += chunk }
        return (bytes, format)
    }

    func get(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let (bytes, format) = try await read(id, param: "id") else { throw AtelierError.notFound("no file \(id)") }
        return JSONResponse.make(status: .ok, object(id: id, name: id, bytes: bytes, format: format, created: runs.clock.now(), request: request))
    }

    func delete(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard try await read(id, param: "id") != nil else { throw AtelierError.notFound("no file \(id)") }
        await (try store).remove(name: id)
        return Response(status: .noContent)
    }

    /// Inputs that are this server's file URLs (`…/v1/files/ID`) become the file's bytes.
    func resolveUploads(in parameters: inout [String: ParameterValue], request: Request) async throws {
        let base = edge.baseURL(for: request)
        for (name, value) in parameters {
            guard case .string(let text) = value else { continue }
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("\(base)/v1/files/") else { continue }
            let id = String(trimmed.dropFirst("\(base)/v1/files/".count))
            guard let (bytes, format) = try await read(id, param: name) else {
                throw AtelierError.invalid(name, "fetch_failed", "\(name): no uploaded file \(id) on this server; upload it with POST /v1/files")
            }
            parameters[name] = .file(bytes: bytes, filename: id, contentType: format.contentType)
        }
    }
}
