import AtelierCore

/// The objects of an OpenAPI 3.1 document, as far as this server's document uses them. Routes declare their
/// `Operation` where they are registered (`Endpoint`); the document is encoded from these values at start-up.
public enum OpenAPI {
    public typealias SecurityRequirement = [String: [String]]

    public struct Document: Encodable, Sendable {
        public var openapi = "3.1.0"
        public var info: Info
        public var servers: [Server] = [Server(url: "/")]
        public var security: [SecurityRequirement] = [["bearerAuth": []]]
        public var paths: [String: [String: Operation]]
        public var components: Components
    }

    public struct Info: Encodable, Sendable {
        public var title: String
        public var version: String
        public var description: String
    }

    public struct Server: Encodable, Sendable {
        public var url: String
    }

    public struct Components: Encodable, Sendable {
        public var securitySchemes: [String: SecurityScheme]
        public var schemas: [String: JSONSchema]
    }

    public struct SecurityScheme: Encodable, Sendable {
        public var type: String
        public var scheme: String
        public var description: String
    }

    public struct Operation: Encodable, Sendable {
        public var operationId: String
        public var summary: String
        public var description: String?
        public var tags: [String]?
        /// `[]`: no key needed (health, images, the document itself).
        public var security: [SecurityRequirement]?
        public var parameters: [Parameter]?
        public var requestBody: RequestBody?
        public var responses: [String: Response]

        public init(_ id: String, _ summary: String, description: String? = nil, tags: [String]? = nil, isPublic: Bool = false,
                    parameters: [Parameter] = [], body: RequestBody? = nil, responses: [String: Response]) {
            operationId = id
            self.summary = summary
            self.description = description
            self.tags = tags
            security = isPublic ? [] : nil
            self.parameters = parameters.isEmpty ? nil : parameters
            requestBody = body
            self.responses = responses
        }

        /// Every schema the operation names, for the document's components.
        var schemas: [JSONSchema] {
            var out = (parameters ?? []).map(\.schema)
            out += requestBody.map { $0.content.values.compactMap(\.schema) } ?? []
            for response in responses.values {
                out += (response.content ?? [:]).values.compactMap(\.schema)
                out += (response.headers ?? [:]).values.map(\.schema)
            }
            return out
        }
    }

    public struct Parameter: Encodable, Sendable {
        public enum Location: String, Encodable, Sendable { case query, header, path }
        public var name: String
        public var location: Location
        public var required: Bool?
        public var description: String?
        public var schema: JSONSchema

        enum CodingKeys: String, CodingKey {
            case name, required, description, schema
            case location = "in"
        }

        public static func path(_ name: String, _ schema: JSONSchema) -> Parameter {
            Parameter(name: name, location: .path, required: true, schema: schema)
        }

        public static func query(_ name: String, _ schema: JSONSchema, required: Bool? = nil, description: String? = nil) -> Parameter {
            Parameter(name: name, location: .query, required: required, description: description, schema: schema)
        }

        public static func header(_ name: String, _ schema: JSONSchema, description: String) -> Parameter {
            Parameter(name: name, location: .header, required: false, description: description, schema: schema)
        }
    }

    public struct RequestBody: Encodable, Sendable {
        public var required = true
        public var content: [String: MediaType]

        public static func json(_ schema: JSONSchema) -> RequestBody { RequestBody(content: ["application/json": MediaType(schema)]) }

        public static func multipart(_ schema: JSONSchema) -> RequestBody { RequestBody(content: ["multipart/form-data": MediaType(schema)]) }

        /// JSON, or form and multipart bodies, which carry text only (`form`: the same fields as text).
        public static func forms(json: JSONSchema, form: JSONSchema) -> RequestBody {
            RequestBody(content: ["application/json": MediaType(json), "application/x-www-form-urlencoded": MediaType(form),
                                  "multipart/form-data": MediaType(form)])
        }
    }

    public struct MediaType: Encodable, Sendable {
        /// nil: the content's type says it all (an image).
        public var schema: JSONSchema?
        public init(_ schema: JSONSchema? = nil) { self.schema = schema }
    }

    public struct Response: Encodable, Sendable {
        public var description: String
        public var headers: [String: Header]?
        public var content: [String: MediaType]?
        public var links: [String: Link]?

        public static func json(_ description: String, _ schema: JSONSchema) -> Response {
            Response(description: description, content: ["application/json": MediaType(schema)])
        }

        public static func described(_ description: String) -> Response { Response(description: description) }
    }

    public struct Header: Encodable, Sendable {
        public var schema: JSONSchema
        public var description: String?
    }

    public struct Link: Encodable, Sendable {
        public var operationId: String
        public var parameters: [String: String]
        public var description: String
    }

    /// The error responses of a route in one dialect's shape: for each status, that dialect's description of it
    /// (or the route's own), with the dialect's error body.
    public static func errors(_ statuses: [Int], body: JSONSchema, contentType: String = "application/json",
                              texts: [Int: String], overriding: [Int: String] = [:]) -> [String: Response] {
        Dictionary(uniqueKeysWithValues: statuses.map { status in
            let text = overriding[status] ?? texts[status] ?? "See the error's code and message."
            return (String(status), Response(description: text, content: [contentType: MediaType(body)]))
        })
    }
}

extension Dictionary where Key == String, Value == OpenAPI.Response {
    /// Responses of a route from its parts (the answer, the dialect's errors); a later part wins a status.
    static func + (a: Self, b: Self) -> Self { a.merging(b) { $1 } }
}
