import AtelierCore

/// The balance's SQL, generated from the one definition (`LedgerKind.balanceEffect` and `heldEffect`) for both
/// stores: SQLite's and PostgreSQL's balance queries, and PostgreSQL's `atelier_accept_run`, read these.
enum LedgerSQL {
    /// `COALESCE(SUM(CASE kind WHEN 'credit' THEN amount … ELSE 0 END), 0)` for an effect; kinds without effect
    /// are left to ELSE.
    static func sum(_ effect: (LedgerKind) -> Int64) -> String {
        let cases = LedgerKind.allCases.compactMap { kind -> String? in
            switch effect(kind) {
            case 0: nil
            case 1: "WHEN '\(kind.rawValue)' THEN amount"
            case let sign: "WHEN '\(kind.rawValue)' THEN \(sign) * amount"
            }
        }
        return "COALESCE(SUM(CASE kind \(cases.joined(separator: " ")) ELSE 0 END), 0)"
    }

    static let balance = sum(\.balanceEffect)
    static let held = sum(\.heldEffect)
    static let available = sum(\.availableEffect)
}
