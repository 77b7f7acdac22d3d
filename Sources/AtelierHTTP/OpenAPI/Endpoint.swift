import AtelierCore
import HTTPTypes
import Hummingbird

/// One operation of the public API, declared once: how it is called and what it answers.
public struct APIRoute: Sendable {
    public var method: HTTPRequest.Method
    public var path: String
    public var operation: OpenAPI.Operation

    public static func get(_ path: String, _ operation: OpenAPI.Operation) -> APIRoute { APIRoute(method: .get, path: path, operation: operation) }
    public static func post(_ path: String, _ operation: OpenAPI.Operation) -> APIRoute { APIRoute(method: .post, path: path, operation: operation) }
    public static func delete(_ path: String, _ operation: OpenAPI.Operation) -> APIRoute { APIRoute(method: .delete, path: path, operation: operation) }
}

typealias RouteHandler = @Sendable (Request, AtelierRequestContext) async throws -> Response

/// A route and the handler that serves it, from one declaration: the router registers the handler from it and
/// /openapi.json describes it from the same value, so a route cannot be served undocumented, or documented and
/// not served. `Controller` is the type whose method answers (the API, a dialect's routes); the document is built
/// without one.
struct Endpoint<Controller: Sendable>: Sendable {
    var route: APIRoute
    /// How the caller presents a key: none for a public operation, else Bearer unless the declaration says more.
    var credentials: Credentials
    /// Whose error shape a refused key (or body) is answered in, before the handler runs.
    var dialect: ErrorDialect
    var handler: @Sendable (Controller) -> RouteHandler

    init(_ route: APIRoute, credentials: Credentials = .bearer, dialect: ErrorDialect = .atelier,
         _ handler: @escaping @Sendable (Controller) -> RouteHandler) {
        self.route = route
        self.credentials = route.operation.security?.isEmpty == true ? .none : credentials
        self.dialect = dialect
        self.handler = handler
    }

    /// The same endpoint served by a controller that `make` picks from another (a controller of the API).
    func lifted<Outer: Sendable>(_ make: @escaping @Sendable (Outer) -> Controller) -> Endpoint<Outer> {
        let handler = self.handler
        return Endpoint<Outer>(route, credentials: credentials, dialect: dialect) { outer in handler(make(outer)) }
    }
}

/// Which API's error shape an answer takes: /api/v4's envelope, Replicate's RFC 7807 problem or OpenAI's error
/// object. The status, code and headers are `ErrorMapping`'s in every shape.
enum ErrorDialect: Sendable, Hashable {
    case atelier, replicate, openAI
}

/// A set of endpoints that share how their key is presented and how a refusal is shaped: one router group.
private struct Gate: Hashable {
    var credentials: Credentials
    var dialect: ErrorDialect
}

extension Router where Context == AtelierRequestContext {
    /// Registers each endpoint's handler on `controller`, at the endpoint's method and path, behind the
    /// authentication its declaration asks for.
    func add<Controller>(_ endpoints: [Endpoint<Controller>], on controller: Controller,
                         authentication: (Credentials, ErrorDialect) -> AuthenticationMiddleware) {
        let groups = Dictionary(grouping: endpoints) { Gate(credentials: $0.credentials, dialect: $0.dialect) }
        for (gate, endpoints) in groups.sorted(by: { "\($0.key)" < "\($1.key)" }) {
            let routes = gate.credentials == .none ? group() : group().add(middleware: authentication(gate.credentials, gate.dialect))
            for endpoint in endpoints {
                routes.on(RouterPath(endpoint.route.path), method: endpoint.route.method, use: endpoint.handler(controller))
            }
        }
    }
}

extension OpenAPI.Document {
    /// The document of these routes: their operations by path and method, and every named schema they use.
    init(info: OpenAPI.Info, routes: [APIRoute], extraSchemas: [JSONSchema] = []) {
        var paths: [String: [String: OpenAPI.Operation]] = [:]
        for route in routes { paths[route.path, default: [:]][route.method.rawValue.lowercased()] = route.operation }
        var schemas: [String: JSONSchema] = [:]
        Self.collect(routes.flatMap(\.operation.schemas) + extraSchemas, into: &schemas)
        let bearer = OpenAPI.SecurityScheme(type: "http", scheme: "bearer",
                                            description: "An Atelier key (atl_…); `atelier keys create --account NAME` makes one.")
        self.init(info: info, paths: paths, components: .init(securitySchemes: ["bearerAuth": bearer], schemas: schemas))
    }

    /// Every named schema inside these, by name. Two different schemas under one name are a programming error
    /// that every test of the document meets, so it stops the process rather than serve either of them.
    static func collect(_ schemas: [JSONSchema], into found: inout [String: JSONSchema]) {
        for schema in schemas {
            if let component = schema.component {
                if let known = found[component.name] {
                    precondition(known == component.schema, "two different schemas are named \(component.name)")
                    continue
                }
                found[component.name] = component.schema
                collect([component.schema], into: &found)
            }
            collect(schema.children, into: &found)
        }
    }
}
