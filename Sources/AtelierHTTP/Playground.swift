import AtelierCore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// The "run the model" pages: `/` lists the catalog, `/models/{id}` is a model's playground, `/account` the key's
/// account. The server renders only the page shells and the catalog data (public: the same text as the API
/// reference); everything a key unlocks is fetched by `web/app.js` from the public API, with the key the visitor
/// typed (kept in the browser's local storage, sent only to this server). No build step, no CDN.
public struct Playground: Sendable {
    public let catalog: ModelCatalog
    /// Where `app.js`, `style.css` live (served under /static with caching headers).
    public let webDirectory: String
    /// Where operator-chosen sample images live (`<model id>.webp|png|jpg`), served under /samples.
    public let samples: URL?

    public init(catalog: ModelCatalog, webDirectory: String, samples: URL?) {
        self.catalog = catalog
        self.webDirectory = webDirectory
        self.samples = samples
    }

    func add(to router: Router<AtelierRequestContext>) {
        router.get("/static/{name}") { request, context in try self.asset(request, context) }
        router.get("/") { _, _ in Self.html(self.index()) }
        router.get("/models/{id}") { _, context in
            guard let id = context.parameters.get("id"), let entry = self.catalog[id] else {
                return Self.html(self.page(title: "No such model", body: "<h1>No such model</h1><p><a href=\"/\">See the models</a>.</p>"), status: .notFound)
            }
            return Self.html(self.modelPage(entry))
        }
        router.get("/account") { _, _ in Self.html(self.accountPage()) }
        router.get("/samples/{name}") { _, context in try await self.sample(context) }
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache",
                                           HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                                           HTTPField.Name("Content-Security-Policy")!: "default-src 'self'; img-src 'self' data: blob: http: https:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// HTML-escapes text for element content and quoted attributes.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    func page(title: String, body: String, script: Bool = false) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(Self.escape(title)) · Atelier</title>
        <link rel="stylesheet" href="/static/style.css">
        \(script ? "<script type=\"module\" src=\"/static/app.js\"></script>" : "")
        </head>
        <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top"><nav aria-label="Site"><a href="/" class="brand">Atelier</a>
        <a href="/">Models</a><a href="/account">Account</a><a href="/openapi.json">API (OpenAPI)</a></nav></header>
        <main id="main">
        \(body)
        </main>
        </body>
        </html>
        """
    }

    func sampleURL(_ id: String) -> String? {
        guard let samples else { return nil }
        // `atelier models set-sample` keeps at most one, in the run's output format.
        return OutputFormat.allCases.map { "\(id).\($0.fileExtension)" }
            .first { FileManager.default.fileExists(atPath: samples.appendingPathComponent($0).path) }
            .map { "/samples/\($0)" }
    }

    func index() -> String {
        let cards = catalog.ids.compactMap { catalog[$0] }.map { e -> String in
            let price = e.pricePerImage.display
            let sample = sampleURL(e.id).map { "<img src=\"\(Self.escape($0))\" alt=\"A sample image made by \(Self.escape(e.title))\" width=\"256\" height=\"256\" loading=\"lazy\">" }
                ?? "<div class=\"no-sample\" role=\"img\" aria-label=\"No sample image yet\">No sample yet</div>"
            let words = e.triggerWords.map { "<code>\(Self.escape($0))</code>" }.joined(separator: ", ")
            return """
            <li class="card" data-model="\(Self.escape(e.id))">
            \(sample)
            <h2><a href="/models/\(Self.escape(e.id))">\(Self.escape(e.title))</a></h2>
            <p>\(Self.escape(e.description))</p>
            <dl><dt>Price</dt><dd class="price">\(Self.escape(price)) per image</dd>
            <dt>Trigger words</dt><dd>\(words.isEmpty ? "none" : words)</dd>
            <dt>Model id</dt><dd><code>\(Self.escape(e.id))</code></dd></dl>
            <p><a class="button" href="/models/\(Self.escape(e.id))">Run the model</a></p>
            </li>
            """
        }.joined(separator: "\n")
        return page(title: "Models", body: "<h1>Models</h1>\n<ul class=\"cards\">\n\(cards)\n</ul>")
    }

    func modelPage(_ e: ModelEntry) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // JSONEncoder escapes "/", so "</script>" cannot appear in the embedded data.
        let data = (try? encoder.encode(AccountController.ModelView(e))).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let price = e.pricePerImage.display
        let body = """
        <h1>\(Self.escape(e.title))</h1>
        <p class="lede">\(Self.escape(e.description)) <span class="price">\(Self.escape(price)) per image.</span></p>
        <script type="application/json" id="model-data">\(data)</script>
        <div class="playground">
        <section aria-labelledby="input-heading">
        <h2 id="input-heading">Input</h2>
        <div class="field" data-param="api_key">
        <label for="api-key">API key</label>
        <input id="api-key" type="password" autocomplete="off" spellcheck="false" aria-describedby="api-key-help error-api_key" placeholder="atl_…">
        <p class="help" id="api-key-help">Kept in this browser only and sent only to this server. Create one with <code>atelier keys create --account NAME</code>.</p>
        <p class="error" id="error-api_key" role="alert"></p>
        </div>
        <form id="run-form" novalidate>
        <div id="fields"></div>
        <p class="error" id="error-general" role="alert"></p>
        <div class="actions"><button type="submit" id="run-button">Run the model</button>
        <button type="button" id="cancel-button" hidden>Cancel</button></div>
        </form>
        </section>
        <section aria-labelledby="output-heading">
        <h2 id="output-heading">Output</h2>
        <div role="tablist" aria-label="Output views" class="tabs">
        <button role="tab" id="tab-preview" aria-controls="panel-preview" aria-selected="true">Preview</button>
        <button role="tab" id="tab-json" aria-controls="panel-json" aria-selected="false" tabindex="-1">JSON response</button>
        <button role="tab" id="tab-code" aria-controls="panel-code" aria-selected="false" tabindex="-1">Code</button>
        </div>
        <div role="tabpanel" id="panel-preview" aria-labelledby="tab-preview">
        <div id="status" aria-live="polite">Run the model to see results.</div>
        <progress id="progress" max="1" value="0" hidden aria-label="Progress"></progress>
        <div id="images"></div>
        <dl id="facts" hidden></dl>
        </div>
        <div role="tabpanel" id="panel-json" aria-labelledby="tab-json" hidden><pre id="json-output" tabindex="0">Run the model to see the JSON response.</pre></div>
        <div role="tabpanel" id="panel-code" aria-labelledby="tab-code" hidden>
        <label for="code-language">Language</label>
        <select id="code-language"><option value="curl">curl</option><option value="php">PHP</option><option value="python">Python</option><option value="swift">Swift</option></select>
        <pre id="code-output" tabindex="0"></pre>
        </div>
        </section>
        </div>
        """
        return page(title: e.title, body: body, script: true)
    }

    func accountPage() -> String {
        let body = """
        <h1>Account</h1>
        <div class="field" data-param="api_key">
        <label for="api-key">API key</label>
        <input id="api-key" type="password" autocomplete="off" spellcheck="false" aria-describedby="error-api_key" placeholder="atl_…">
        <p class="error" id="error-api_key" role="alert"></p>
        </div>
        <div id="account" aria-live="polite"></div>
        """
        return page(title: "Account", body: body, script: true)
    }

    /// The page assets, by name from a fixed list (nothing else in the folder is served). They change with a
    /// release, not per request: an hour in caches, then revalidated by their ETag (a hash of the content).
    static let assets = ["app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"]

    func asset(_ request: Request, _ context: AtelierRequestContext) throws -> Response {
        guard let name = context.parameters.get("name"), let type = Self.assets[name],
              let data = FileManager.default.contents(atPath: URL(fileURLWithPath: webDirectory).appendingPathComponent(name).path)
        else {
            throw AtelierError.notFound("no such asset")
        }
        let etag = "\"\(SHA256.hash(data: data).prefix(12).map { String(format: "%02x", $0) }.joined())\""
        var headers: HTTPFields = [.contentType: type, .cacheControl: "public, max-age=3600", .eTag: etag,
                                   HTTPField.Name("X-Content-Type-Options")!: "nosniff"]
        if request.headers[.ifNoneMatch]?.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == etag }) == true {
            headers[.contentType] = nil
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func sample(_ context: AtelierRequestContext) async throws -> Response {
        guard let samples, let name = context.parameters.get("name") else { throw AtelierError.notFound("no such sample") }
        let parts = name.split(separator: ".")
        guard parts.count == 2, catalog[String(parts[0])] != nil, let format = OutputFormat(rawValue: String(parts[1])) else {
            throw AtelierError.notFound("no such sample")
        }
        return try await HTTPEdge.imageFile(path: samples.appendingPathComponent(name).path, format: format,
                                              cacheControl: "public, max-age=3600", missing: "no such sample", context: context)
    }
}
