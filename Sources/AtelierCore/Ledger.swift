import Foundation

/// The kinds of ledger entries. The ledger is append-only; an account's balance is derived from it.
///
/// - credit / adjustment: money in (or out, for a negative adjustment) by an operator, with a reason;
/// - hold: placed when a run is accepted (price × num_outputs), per run;
/// - capture: what a run is charged, price × images delivered, at most its hold, once per run;
/// - release: the rest of the hold given back, once per run (0 when everything was captured), which resolves it.
public enum LedgerKind: String, Sendable, Codable, CaseIterable {
    case credit, adjustment, hold, capture, release

    /// How an entry of this kind moves the account's balance (credits and adjustments minus captures), as a sign of
    /// its amount. With `heldEffect`, the one definition of an account's money: `LedgerRules.balance` applies it to
    /// entries, and both stores' SQL is generated from it (`LedgerSQL`, AtelierPersistence).
    public var balanceEffect: Int64 {
        switch self {
        case .credit, .adjustment: 1
        case .capture: -1
        case .hold, .release: 0
        }
    }

    /// How an entry of this kind moves what is held: a hold adds its amount; its capture and release (which add up
    /// to it) take it away again.
    public var heldEffect: Int64 {
        switch self {
        case .hold: 1
        case .capture, .release: -1
        case .credit, .adjustment: 0
        }
    }

    /// How it moves what a new run may hold (balance − held).
    public var availableEffect: Int64 { balanceEffect - heldEffect }
}

public struct LedgerEntry: Sendable, Equatable, Codable {
    public var id: Int64
    public var accountID: Int64
    public var jobID: Int64?
    public var kind: LedgerKind
    /// Minor units (cents), always ≥ 0 except for an adjustment, which may be negative.
    public var amount: Int64
    public var reason: String?
    public var createdAt: Date

    public init(id: Int64, accountID: Int64, jobID: Int64?, kind: LedgerKind, amount: Int64, reason: String?, createdAt: Date) {
        self.id = id
        self.accountID = accountID
        self.jobID = jobID
        self.kind = kind
        self.amount = amount
        self.reason = reason
        self.createdAt = createdAt
    }
}

/// An account's money at one moment, derived from its ledger.
public struct Balance: Sendable, Equatable, Codable {
    /// Credits and adjustments minus captures.
    public var balance: Int64
    /// Holds not yet resolved.
    public var held: Int64
    /// What a new run may hold: balance − held.
    public var available: Int64 { balance - held }

    public init(balance: Int64, held: Int64) {
        self.balance = balance
        self.held = held
    }
}

/// One charged run, for the account holder's usage list.
public struct UsageItem: Sendable, Equatable, Codable {
    public var cursor: Int64
    public var requestID: Int64
    public var modelID: String
    public var images: Int
    public var amount: Int64
    public var chargedAt: Date
    public init(cursor: Int64, requestID: Int64, modelID: String, images: Int, amount: Int64, chargedAt: Date) {
        self.cursor = cursor
        self.requestID = requestID
        self.modelID = modelID
        self.images = images
        self.amount = amount
        self.chargedAt = chargedAt
    }
}

/// Spend on one model over a period.
public struct ModelSpend: Sendable, Equatable, Codable {
    public var modelID: String
    public var runs: Int
    public var images: Int
    public var amount: Int64
    enum CodingKeys: String, CodingKey, CaseIterable {
        case runs, images, amount
        case modelID = "model_id"
    }

    /// One model's line of an account's spend.
    public static var schema: JSONSchema {
        .keyed(CodingKeys.self, required: Array(CodingKeys.allCases)) { key in
            switch key {
            case .modelID: .string()
            case .runs, .images: .integer(minimum: 0)
            case .amount: .integer()
            }
        }
    }

    public init(modelID: String, runs: Int, images: Int, amount: Int64) {
        self.modelID = modelID
        self.runs = runs
        self.images = images
        self.amount = amount
    }
}

/// The money rules, free of storage, so every store applies the same ones and tests can check them alone.
public enum LedgerRules {
    /// The hold for a run: price per image × images asked for.
    public static func hold(pricePerImage: Int64, images: Int) -> Int64 {
        pricePerImage * Int64(images)
    }

    /// How a resolved run splits its hold: captured for the images delivered (never more than the hold), the rest
    /// released. A failed or cancelled run delivers nothing and is released whole.
    public static func settle(hold: Int64, pricePerImage: Int64, delivered: Int) -> (capture: Int64, release: Int64) {
        let capture = min(hold, pricePerImage * Int64(max(0, delivered)))
        return (capture, hold - capture)
    }

    /// The balance an account's entries give: each entry's amount by its kind's effects.
    public static func balance(of entries: [LedgerEntry]) -> Balance {
        Balance(balance: entries.reduce(0) { $0 + $1.kind.balanceEffect * $1.amount },
                held: entries.reduce(0) { $0 + $1.kind.heldEffect * $1.amount })
    }

    /// Everything wrong with a ledger, given the runs it refers to: empty when the money is right.
    /// Checked after every billing test: one hold per run, every finished run's hold resolved exactly once, no
    /// capture without a delivered image, captures equal price × delivered and never exceed the hold, and no
    /// balance below zero.
    public static func audit(entries: [LedgerEntry], jobs: [Job]) -> [String] {
        var problems: [String] = []
        let byJob = Dictionary(grouping: entries.filter { $0.jobID != nil }, by: { $0.jobID! })
        for job in jobs {
            let mine = byJob[job.id] ?? []
            let holds = mine.filter { $0.kind == .hold }
            let captures = mine.filter { $0.kind == .capture }
            let releases = mine.filter { $0.kind == .release }
            if holds.count != 1 { problems.append("run \(job.id): \(holds.count) holds") }
            if captures.count > 1 { problems.append("run \(job.id): \(captures.count) captures") }
            if releases.count > 1 { problems.append("run \(job.id): \(releases.count) releases") }
            let hold = holds.first?.amount ?? 0
            let captured = captures.first?.amount ?? 0
            let released = releases.first?.amount ?? 0
            let delivered = job.status == .succeeded ? (job.result?.outputs.count ?? 0) : 0
            if job.status.isTerminal {
                if releases.count != 1 { problems.append("run \(job.id) is \(job.status.rawValue) but its hold is not resolved") }
                if captured + released != hold { problems.append("run \(job.id): captured \(captured) + released \(released) ≠ hold \(hold)") }
                if captured != job.pricePerImage * Int64(delivered) {
                    problems.append("run \(job.id): captured \(captured) for \(delivered) delivered image(s) at \(job.pricePerImage)")
                }
            } else if !captures.isEmpty || !releases.isEmpty {
                problems.append("run \(job.id) is \(job.status.rawValue) but its hold was already resolved")
            }
        }
        for (account, list) in Dictionary(grouping: entries, by: \.accountID) {
            let b = balance(of: list)
            if b.balance < 0 { problems.append("account \(account): balance \(b.balance) < 0") }
        }
        return problems
    }
}

/// Amounts for people: minor units with two decimals (USD cents → "0.03 USD"). Arithmetic never uses this.
public enum MoneyText {
    public static func format(_ minor: Int64, _ currency: String) -> String {
        let sign = minor < 0 ? "-" : ""
        let m = abs(minor)
        let cents = m % 100
        return "\(sign)\(m / 100).\(cents < 10 ? "0" : "")\(cents) \(currency)"
    }
}

extension MoneyText {
    /// Parses "10", "10.5", "0.03" or "-2.50" (major units, at most two decimals) into minor units, exactly:
    /// by digits, never through a float.
    public static func parse(_ text: String) -> Int64? {
        var s = Substring(text.trimmingCharacters(in: .whitespaces))
        var negative = false
        if s.hasPrefix("-") { negative = true; s = s.dropFirst() }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty, parts[0].allSatisfy(\.isASCII), parts[0].allSatisfy(\.isNumber),
              parts[0].count <= 12, let whole = Int64(parts[0]) else { return nil }
        var cents: Int64 = 0
        if parts.count == 2 {
            let f = parts[1]
            guard (1...2).contains(f.count), f.allSatisfy(\.isASCII), f.allSatisfy(\.isNumber), let v = Int64(f) else { return nil }
            cents = f.count == 1 ? v * 10 : v
        }
        let value = whole * 100 + cents
        return negative ? -value : value
    }
}
