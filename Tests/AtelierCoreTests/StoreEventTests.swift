import AtelierCore
import Foundation
import Testing

@Suite struct StoreEventTests {
    @Test(arguments: [
        StoreEvent.queued(123_456_789_012_345), .started(123_456_789_012_345, attempt: 2),
        .progress(123_456_789_012_345, step: 7, total: 28), .requeued(1), .finished(999_999_999_999_999),
    ])
    func payloadsRoundTrip(event: StoreEvent) throws {
        let parsed = try #require(StoreEvent.parse(event.payload(node: "ab12cd34")))
        #expect(parsed.node == "ab12cd34" && parsed.event == event)
    }

    @Test func unknownPayloadsAreIgnored() {
        #expect(StoreEvent.parse("n exploded 12") == nil)
        #expect(StoreEvent.parse("n progress 12 3") == nil)
        #expect(StoreEvent.parse("garbage") == nil)
    }
}

@Suite struct AttemptOutputNamesTests {
    let job = Job(id: 1, accountID: 1, request: RunRequest(
        modelID: "m", prompt: "p", aspectRatio: "1:1", megapixels: "1", size: .init(width: 8, height: 8), numOutputs: 2,
        numInferenceSteps: 1, guidance: 3, seed: 1, outputFormat: .png, outputQuality: 80, loraScale: 1, goFast: false,
        promptStrength: 0.8, disableSafetyChecker: false
    ), outputNames: ["0123456789abcdef0123456789abcdef.png", "fedcba9876543210fedcba9876543210.png"], createdAt: Date())

    @Test func theFirstAttemptUsesTheReservedNamesAndLaterOnesNamesOfTheirOwn() {
        #expect(job.outputNames(forAttempt: 1) == job.outputNames)
        let second = job.outputNames(forAttempt: 2)
        let third = job.outputNames(forAttempt: 3)
        #expect(Set(second).isDisjoint(with: job.outputNames) && Set(third).isDisjoint(with: second))
        #expect(second == job.outputNames(forAttempt: 2))  // the same node or another derives the same names
        for name in second + third {
            let parts = name.split(separator: ".")
            #expect(parts.count == 2 && parts[0].count == 32 && parts[1] == "png")
            #expect(parts[0].allSatisfy { $0.isHexDigit && !$0.isUppercase })
        }
    }
}
