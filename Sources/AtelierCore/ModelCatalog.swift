/// The models this server offers, by id. Loading the files is the executable's job; Core only holds entries.
public struct ModelCatalog: Sendable {
    public private(set) var entries: [String: ModelEntry]

    public init(_ entries: [ModelEntry]) {
        self.entries = Dictionary(entries.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
    }

    public subscript(id: String) -> ModelEntry? { entries[id] }

    public var ids: [String] { entries.keys.sorted() }
}
