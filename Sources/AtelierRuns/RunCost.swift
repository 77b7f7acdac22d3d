import AtelierCore
import Foundation

/// What a run costs, in every dialect's answer, in its webhooks and in /check: the price per image it was accepted
/// at, the images charged and the amount (by the ledger's own rule: delivered images only, never more than the
/// hold), what is still held while it runs, and, in the answer to the request that made it, the account's
/// available credit afterwards. Amounts are minor units (cents) of `currency`; `display` has them for people.
public struct RunCost: Encodable, Sendable, Equatable {
    public var currency: String
    public var pricePerImage: Int64
    public var imagesCharged: Int
    public var amountCharged: Int64
    /// Held against the account while the run is queued or running (price × images asked for); 0 once it ended.
    public var amountHeld: Int64
    /// The account's available credit, where the caller owns the account and it was read for this answer.
    public var availableBalance: Int64?

    public init(job: Job, currency: String) {
        self.currency = currency
        pricePerImage = job.pricePerImage
        let delivered = job.status == .succeeded ? job.result?.outputs.count ?? 0 : 0
        let capture = LedgerRules.settle(hold: job.holdAmount, pricePerImage: job.pricePerImage, delivered: delivered).capture
        imagesCharged = job.pricePerImage > 0 ? Int(capture / job.pricePerImage) : delivered
        amountCharged = capture
        amountHeld = job.status.isTerminal ? 0 : job.holdAmount
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case currency, display
        case pricePerImage = "price_per_image"
        case imagesCharged = "images_charged"
        case amountCharged = "amount_charged"
        case amountHeld = "amount_held"
        case availableBalance = "available_balance"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(currency, forKey: .currency)
        try c.encode(pricePerImage, forKey: .pricePerImage)
        try c.encode(imagesCharged, forKey: .imagesCharged)
        try c.encode(amountCharged, forKey: .amountCharged)
        try c.encode(amountHeld, forKey: .amountHeld)
        try c.encodeIfPresent(availableBalance, forKey: .availableBalance)
        var display = ["price_per_image": MoneyText.format(pricePerImage, currency),
                       "amount_charged": MoneyText.format(amountCharged, currency)]
        if let availableBalance { display["available_balance"] = MoneyText.format(availableBalance, currency) }
        try c.encode(display, forKey: .display)
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
