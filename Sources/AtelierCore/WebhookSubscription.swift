import Foundation

/// Which moments of a run a webhook hears about (`webhook_events_filter`).
public enum WebhookEvent: String, Sendable, Codable, CaseIterable, Comparable {
    /// The run started on a worker (sent once, for its first attempt).
    case start
    /// The run ended: succeeded, failed or canceled.
    case completed

    public static func < (a: WebhookEvent, b: WebhookEvent) -> Bool { a.rawValue < b.rawValue }
}

/// Whose body a webhook POSTs: the /api/v4/check object, or the Replicate prediction.
public enum WebhookFormat: String, Sendable, Codable {
    case atelier
    case replicate
}

/// A run's webhook: where its events are POSTed and which ones. Stored with the run so a restart loses none.
public struct WebhookSubscription: Sendable, Equatable, Codable {
    public var url: String
    public var events: [WebhookEvent]
    /// Base URL for output links in the payload (the request's own, as /run answers).
    public var baseURL: String
    /// The shape of the payload: the dialect the run was made in (nil in rows written before dialects: atelier).
    public var format: WebhookFormat?

    public init(url: String, events: [WebhookEvent], baseURL: String, format: WebhookFormat? = nil) {
        self.url = url
        self.events = events
        self.baseURL = baseURL
        self.format = format
    }

    public static let maxURLLength = 2048

    /// Validates the `webhook` and `webhook_events_filter` parameters. The filter is a comma-separated string
    /// (form, multipart) or a JSON array of strings (joined by the body parser); default: every event.
    public static func parse(url: ParameterValue?, filter: ParameterValue?, baseURL: String) throws(AtelierError) -> WebhookSubscription? {
        var problems = Problems()
        var link: String?
        switch url {
        case nil, .null?: link = nil
        // Blank is no webhook, as blank is no image.
        case .string(let s)? where s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty: link = nil
        case .string(let s)?:
            let trimmed = s.trimmingCharacters(in: .whitespaces)
            if trimmed.count > maxURLLength {
                problems.add("webhook", "too_long", "webhook must be at most \(maxURLLength) characters")
            } else if let u = URL(string: trimmed), ["http", "https"].contains(u.scheme?.lowercased() ?? ""), let host = u.host, !host.isEmpty,
                      u.user == nil, u.password == nil {
                link = trimmed
            } else {
                problems.add("webhook", "invalid_url", "webhook must be an http(s) URL such as https://example.com/hooks/atelier (no user:password@); got \"\(trimmed.prefix(80))\"")
            }
        default:
            problems.add("webhook", "invalid_type", "webhook must be a URL string")
        }
        var events = WebhookEvent.allCases
        switch filter {
        case nil, .null?, .string("")?: break
        case .string(let s)?:
            let names = s.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let unknown = names.filter { WebhookEvent(rawValue: $0) == nil }
            if !unknown.isEmpty || names.isEmpty {
                problems.add("webhook_events_filter", "invalid_choice",
                             "webhook_events_filter takes start and/or completed (comma-separated, or a JSON array); got \"\(s.prefix(80))\"")
            } else {
                events = Array(Set(names.compactMap(WebhookEvent.init(rawValue:)))).sorted()
            }
        default:
            problems.add("webhook_events_filter", "invalid_type", "webhook_events_filter must be start and/or completed")
        }
        if link == nil, filter != nil, filter != .null, filter != .string(""), problems.items.isEmpty {
            problems.add("webhook_events_filter", "requires_webhook", "webhook_events_filter needs a webhook URL")
        }
        if !problems.items.isEmpty { throw .invalidParameters(problems.items) }
        return link.map { WebhookSubscription(url: $0, events: events, baseURL: baseURL) }
    }
}
