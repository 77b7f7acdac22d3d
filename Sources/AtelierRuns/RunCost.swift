import AtelierCore
import Foundation

/// What a run costs, in every dialect's answer, in its webhooks and in /check: the price per image it was accepted
/// at, the images charged and the amount (by the ledger's own rule: delivered images only, never more than the
/// hold), what is still held while it runs, and, in the answer to the request that made it, the account's
/// available credit afterwards. Amounts are minor units (cents) of `currency`; `display` has them for people.
public struct RunCost: Encodable, Sendable, Equatable {
    public let currency: String
    public let pricePerImage: Int64
    public let imagesCharged: Int
    public let amountCharged: Int64
    /// Held against the account while the run is queued or running (price × images asked for); 0 once it ended.
    public let amountHeld: Int64
    /// The account's available credit, where the caller owns the account and it was read for this answer.
    public var availableBalance: Int64? {
        didSet { display = Self.display(self) }
    }
    /// The amounts for people ("$0.03"), kept in step with the numbers.
    public private(set) var display: [String: String] = [:]

    public init(job: Job, currency: String) {
        self.currency = currency
        pricePerImage = job.pricePerImage
        let delivered = job.status == .succeeded ? job.result?.outputs.count ?? 0 : 0
        let capture = LedgerRules.settle(hold: job.holdAmount, pricePerImage: job.pricePerImage, delivered: delivered).capture
        imagesCharged = job.pricePerImage > 0 ? Int(capture / job.pricePerImage) : delivered
        amountCharged = capture
        amountHeld = job.status.isTerminal ? 0 : job.holdAmount
        display = Self.display(self)
    }

    static func display(_ cost: RunCost) -> [String: String] {
        var display = ["price_per_image": MoneyText.format(cost.pricePerImage, cost.currency),
                       "amount_charged": MoneyText.format(cost.amountCharged, cost.currency)]
        if let available = cost.availableBalance { display["available_balance"] = MoneyText.format(available, cost.currency) }
        return display
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case currency, display
        case pricePerImage = "price_per_image"
        case imagesCharged = "images_charged"
        case amountCharged = "amount_charged"
        case amountHeld = "amount_held"
        case availableBalance = "available_balance"
    }
}

extension RunCost {
    public static var schema: JSONSchema {
        .component("Cost", JSONSchema.keyed(CodingKeys.self, required: CodingKeys.allCases.filter { $0 != .availableBalance }) { key in
            switch key {
            case .currency: .string()
            case .pricePerImage, .amountCharged, .amountHeld, .availableBalance: .integer()
            case .imagesCharged: .integer(minimum: 0)
            case .display: JSONSchema.anyObject.described("The amounts for people, e.g. \"$0.03\".")
            }
        }.described("What the run costs, in minor units (cents) of currency; available_balance where the caller owns the account."))
    }
}
