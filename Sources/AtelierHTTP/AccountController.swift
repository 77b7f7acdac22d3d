import AtelierCore
import Foundation
import Hummingbird

/// The catalog, the account and its usage: what a key may read about itself.
struct AccountController: Sendable {
    let catalog: ModelCatalog
    let accounts: any KeyStore & LedgerStore
    let clock: any WallClock

    // MARK: /api/v4/models, /api/v4/account

    struct ModelView: Encodable, Sendable {
        struct Price: Encodable, Sendable {
            var currency: String
            var minorUnits: Int
            var display: String
            enum CodingKeys: String, CodingKey, CaseIterable {
                case currency, display
                case minorUnits = "minor_units"
            }
            static var schema: JSONSchema {
                .keyed(CodingKeys.self, required: [.currency, .minorUnits]) { key in
                    switch key {
                    case .currency, .display: .string()
                    case .minorUnits: .integer(minimum: 0)
                    }
                }
            }
        }
        var id: String
        var title: String
        var description: String
        var triggerWords: [String]
        var pricePerImage: Price
        var license: String?
        var parameters: [ParameterDefinition]
        enum CodingKeys: String, CodingKey, CaseIterable {
            case id, title, description, license, parameters
            case triggerWords = "trigger_words"
            case pricePerImage = "price_per_image"
        }
        static var schema: JSONSchema {
            .component("Model", .keyed(CodingKeys.self, required: [.id, .title, .description, .pricePerImage, .parameters]) { key in
                switch key {
                case .id, .title, .description, .license: .string()
                case .triggerWords: .array(of: .string())
                case .pricePerImage: Price.schema
                case .parameters: .array(of: ParameterDefinition.schema)
                }
            })
        }
        init(_ e: ModelEntry) {
            id = e.id
            title = e.title
            description = e.description
            triggerWords = e.triggerWords
            pricePerImage = Price(currency: e.pricePerImage.currency, minorUnits: e.pricePerImage.minorUnits,
                                  display: e.pricePerImage.display)
            license = e.license
            parameters = e.parameters.filter(\.supported)
        }
    }

    static var endpoints: [Endpoint<AccountController>] {
        let date = JSONSchema.anyOf([.string(format: "date"), .string(format: "date-time")])
        return [
            Endpoint(.get("/api/v4/models", .init(
                "models", "The catalog: models, prices and parameters",
                responses: ["200": .json("Every model.", SuccessEnvelope<[ModelView]>.schema(.array(of: ModelView.schema)))]
                    + ErrorMapping.documented([401, 429])))) { api in { request, _ in try await api.models(request) } },
            Endpoint(.get("/api/v4/models/{id}", .init(
                "model", "One model", parameters: [.path("id", .string())],
                responses: ["200": .json("The model.", SuccessEnvelope<ModelView>.schema(ModelView.schema))]
                    + ErrorMapping.documented([401, 404, 429], [404: "No such model."])))) { api in { try await api.model($0, context: $1) } },
            Endpoint(.get("/api/v4/account", .init(
                "account", "The key's account: balance, open holds, available credit, spend per model",
                parameters: [.query("from", date), .query("to", date)],
                responses: ["200": .json("Amounts in minor units (cents) and for people.", SuccessEnvelope<AccountView>.schema(AccountView.schema))]
                    + ErrorMapping.documented([400, 401, 429])))) { api in { try await api.accountView($0, context: $1) } },
            Endpoint(.get("/api/v4/usage", .init(
                "usage", "Charged runs of the key's account, newest first, paged",
                parameters: [.query("limit", .string(pattern: "^\\+?0*(?:[1-9]|[1-9][0-9]{1}|1[0-9][0-9]{1}|200)$")),
                             .query("cursor", .string(pattern: "^\\+?0*[1-9][0-9]{0,17}$"))],
                responses: ["200": .json("One page.", SuccessEnvelope<UsagePage>.schema(UsagePage.schema))]
                    + ErrorMapping.documented([400, 401, 429])))) { api in { try await api.usageView($0, context: $1) } },
        ]
    }

    func models(_ request: Request) async throws -> Response {
        return JSONResponse.make(status: .ok, SuccessEnvelope(data: catalog.ids.compactMap { catalog[$0] }.map(ModelView.init)))
    }

    func model(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id"), let entry = catalog[id] else {
            throw AtelierError.modelNotFound(context.parameters.get("id") ?? "")
        }
        return JSONResponse.make(status: .ok, SuccessEnvelope(data: ModelView(entry)))
    }

    struct AccountView: Encodable, Sendable {
        struct Spend: Encodable, Sendable {
            var from: Date
            var to: Date
            var byModel: [ModelSpend]
            enum CodingKeys: String, CodingKey, CaseIterable {
                case from, to
                case byModel = "by_model"
            }
        }
        var account: String
        var currency: String
        var balance: Int64
        var held: Int64
        var available: Int64
        var display: [String: String]
        var spend: Spend
        /// The account's keys by prefix (never the key or its hash), newest first.
        var keys: [KeyView]
        enum CodingKeys: String, CodingKey, CaseIterable { case account, currency, balance, held, available, display, spend, keys }

        static var schema: JSONSchema {
            .keyed(CodingKeys.self, required: Array(CodingKeys.allCases)) { key in
                switch key {
                case .account, .currency: .string()
                case .balance, .held, .available: .integer()
                case .display: JSONSchema.anyObject.described("The amounts for people.")
                case .spend:
                    .keyed(Spend.CodingKeys.self, required: Array(Spend.CodingKeys.allCases)) { key in
                        switch key {
                        case .from, .to: .string(format: "date-time")
                        case .byModel: .array(of: ModelSpend.schema)
                        }
                    }
                case .keys: JSONSchema.array(of: KeyView.schema).described("The account's API keys by prefix, newest first.")
                }
            }
        }
    }

    struct KeyView: Encodable, Sendable {
        var prefix: String
        var createdAt: Date
        var revokedAt: Date?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case prefix
            case createdAt = "created_at"
            case revokedAt = "revoked_at"
        }
        static var schema: JSONSchema {
            .keyed(CodingKeys.self, required: [.prefix, .createdAt]) { key in
                switch key {
                case .prefix: .string()
                case .createdAt, .revokedAt: .string(format: "date-time")
                }
            }
        }
    }

    var currency: String { catalog.ids.first.flatMap { catalog[$0]?.pricePerImage.currency } ?? "USD" }

    static func date(_ text: String?, _ name: String) throws -> Date? {
        guard let text else { return nil }
        if let d = ISO8601DateFormatter().date(from: text) { return d }
        let day = ISO8601DateFormatter()
        day.formatOptions = [.withFullDate]
        if let d = day.date(from: text) { return d }
        throw AtelierError.invalid(name, "invalid_date", "\(name) must be an ISO 8601 date or time, e.g. 2026-11-01 or 2026-11-01T00:00:00Z; got \"\(text)\"")
    }

    /// The key's own account: balance, open holds, what is available (minor units, and for people), and spend per
    /// model between `from` and `to` (ISO 8601; default the last 30 days).
    func accountView(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let key = try context.account()
        let query = request.uri.queryParameters
        let to = try Self.date(query["to"].map(String.init), "to") ?? clock.now()
        let from = try Self.date(query["from"].map(String.init), "from") ?? to.addingTimeInterval(-30 * 86_400)
        let b = try await accounts.balance(accountID: key.accountID)
        let spend = try await accounts.spend(accountID: key.accountID, from: from, to: to)
        let ownKeys = try await accounts.listKeys().filter { $0.accountID == key.accountID }
            .sorted { $0.createdAt > $1.createdAt }
            .map { KeyView(prefix: $0.prefix, createdAt: $0.createdAt, revokedAt: $0.revokedAt) }
        let currency = self.currency
        return JSONResponse.make(status: .ok, SuccessEnvelope(data: AccountView(
            account: key.accountName, currency: currency, balance: b.balance, held: b.held, available: b.available,
            display: ["balance": MoneyText.format(b.balance, currency), "held": MoneyText.format(b.held, currency),
                      "available": MoneyText.format(b.available, currency)],
            spend: .init(from: from, to: to, byModel: spend), keys: ownKeys
        )))
    }

    struct UsagePage: Encodable, Sendable {
        struct Item: Encodable, Sendable {
            var requestID: Int64
            var modelID: String
            var images: Int
            var amount: Int64
            var chargedAt: Date
            enum CodingKeys: String, CodingKey, CaseIterable {
                case images, amount
                case requestID = "request_id"
                case modelID = "model_id"
                case chargedAt = "charged_at"
            }
        }
        var items: [Item]
        var currency: String
        var nextCursor: String?
        enum CodingKeys: String, CodingKey, CaseIterable {
            case items, currency
            case nextCursor = "next_cursor"
        }
        static var schema: JSONSchema {
            .keyed(CodingKeys.self, required: [.items, .currency]) { key in
                switch key {
                case .currency, .nextCursor: .string()
                case .items:
                    .array(of: .keyed(Item.CodingKeys.self, required: Array(Item.CodingKeys.allCases)) { key in
                        switch key {
                        case .requestID, .images, .amount: .integer()
                        case .modelID: .string()
                        case .chargedAt: .string(format: "date-time")
                        }
                    })
                }
            }
        }
    }

    /// Charged runs of the key's account, newest first: `limit` (1–200, default 50) per page, `cursor` from the
    /// previous page's `next_cursor`.
    func usageView(_ request: Request, context: AtelierRequestContext) async throws -> Response {
        let key = try context.account()
        let query = request.uri.queryParameters
        var limit = 50
        if let text = query["limit"] {
            guard let n = Int(text), (1...200).contains(n) else {
                throw AtelierError.invalid("limit", "out_of_range", "limit must be an integer from 1 to 200; got \"\(text)\"")
            }
            limit = n
        }
        var cursor: Int64?
        if let text = query["cursor"] {
            guard let c = Int64(text), c > 0 else {
                throw AtelierError.invalid("cursor", "invalid_cursor", "cursor must be the next_cursor of a previous page; got \"\(text)\"")
            }
            cursor = c
        }
        let rows = try await accounts.usage(accountID: key.accountID, before: cursor, limit: limit + 1)
        let page = rows.prefix(limit)
        let next = rows.count > limit ? page.last.map { String($0.cursor) } : nil
        return JSONResponse.make(status: .ok, SuccessEnvelope(data: UsagePage(
            items: page.map { .init(requestID: $0.requestID, modelID: $0.modelID, images: $0.images, amount: $0.amount, chargedAt: $0.chargedAt) },
            currency: currency, nextCursor: next
        )))
    }
}
