import AtelierCore
import Foundation
import Testing

@Suite struct LedgerRulesTests {
    func entry(_ kind: LedgerKind, _ amount: Int64, job: Int64? = nil, account: Int64 = 1) -> LedgerEntry {
        LedgerEntry(id: 0, accountID: account, jobID: job, kind: kind, amount: amount, reason: nil, createdAt: Date())
    }

    @Test func settleCapturesDeliveredImagesOnly() {
        #expect(LedgerRules.settle(hold: 300, pricePerImage: 75, delivered: 3) == (225, 75))
        #expect(LedgerRules.settle(hold: 300, pricePerImage: 75, delivered: 0) == (0, 300))
        #expect(LedgerRules.settle(hold: 300, pricePerImage: 75, delivered: 9) == (300, 0))  // never above the hold
    }

    @Test func balanceFromEntries() {
        let entries = [entry(.credit, 500), entry(.hold, 150, job: 1), entry(.capture, 75, job: 1), entry(.release, 75, job: 1),
                       entry(.hold, 75, job: 2), entry(.adjustment, -25)]
        let b = LedgerRules.balance(of: entries)
        #expect(b == Balance(balance: 400, held: 75) && b.available == 325)
    }

    @Test func auditCatchesADoubleCaptureAndAnUnresolvedHold() {
        let request = RunRequest(modelID: "m", prompt: "p", aspectRatio: "1:1", megapixels: "1", size: .init(width: 8, height: 8),
                                 numOutputs: 1, numInferenceSteps: 1, guidance: 3, seed: 1, outputFormat: .webp,
                                 outputQuality: 80, loraScale: 1, goFast: false, promptStrength: 0.8, disableSafetyChecker: false)
        var done = Job(id: 1, accountID: 1, request: request, outputNames: ["a"], pricePerImage: 75, status: .succeeded, createdAt: Date())
        done.result = JobResult(outputs: [JobOutput(name: "a", seed: 1, width: 8, height: 8, bytes: 1)], path: "standard",
                                pathReason: "", inferenceMs: 0, encodeMs: 0)
        let failed = Job(id: 2, accountID: 1, request: request, outputNames: ["b"], pricePerImage: 75, status: .failed, createdAt: Date())
        let clean = [entry(.credit, 500), entry(.hold, 75, job: 1), entry(.capture, 75, job: 1), entry(.release, 0, job: 1),
                     entry(.hold, 75, job: 2), entry(.release, 75, job: 2)]
        #expect(LedgerRules.audit(entries: clean, jobs: [done, failed]).isEmpty)
        let doubled = clean + [entry(.capture, 75, job: 1)]
        #expect(!LedgerRules.audit(entries: doubled, jobs: [done, failed]).isEmpty)
        let unresolved = Array(clean.dropLast())
        #expect(LedgerRules.audit(entries: unresolved, jobs: [done, failed]).contains { $0.contains("not resolved") })
        let chargedForFailure = clean.dropLast() + [entry(.capture, 75, job: 2), entry(.release, 0, job: 2)]
        #expect(!LedgerRules.audit(entries: Array(chargedForFailure), jobs: [done, failed]).isEmpty)
    }

    @Test func moneyTextParsesExactlyAndFormats() {
        #expect(MoneyText.parse("10") == 1000)
        #expect(MoneyText.parse("2.5") == 250)
        #expect(MoneyText.parse("0.03") == 3)
        #expect(MoneyText.parse("-2.50") == -250)
        for bad in ["", "1.234", "abc", "1,00", ".5", "1e3", "١٢"] { #expect(MoneyText.parse(bad) == nil, "\(bad)") }
        #expect(MoneyText.format(3, "USD") == "0.03 USD")
        #expect(MoneyText.format(-250, "USD") == "-2.50 USD")
        #expect(MoneyText.format(10_000, "USD") == "100.00 USD")
    }
}

@Suite struct TokenBucketTests {
    @Test func burstThenRefill() {
        let t0 = Date(timeIntervalSince1970: 0)
        var bucket = TokenBucket(capacity: 3, refillPerSecond: 1, now: t0)
        #expect((0..<3).map { _ in bucket.take(now: t0).allowed } == [true, true, true])
        let refused = bucket.take(now: t0)
        #expect(!refused.allowed && refused.retryAfter == 1 && refused.remaining == 0)
        #expect(bucket.take(now: t0.addingTimeInterval(1)).allowed)
        #expect(!bucket.take(now: t0.addingTimeInterval(1)).allowed)
        // Never more than the capacity, however long it was idle.
        let later = t0.addingTimeInterval(3600)
        #expect((0..<4).map { _ in bucket.take(now: later).allowed } == [true, true, true, false])
    }
}
