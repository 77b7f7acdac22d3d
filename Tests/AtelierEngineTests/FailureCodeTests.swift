import AtelierCore
import Foundation
import Testing

/// Failure codes are one enum (`RunFailureCode`) shared with the worker through contracts/fixtures/
/// failure_codes.json. The HTTP map gives every code a status (an exhaustive switch, checked by the compiler);
/// these tests make sure the list is the contract's and that every code has something that produces it.
@Suite struct FailureCodeTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theCodesAreTheContracts() throws {
        let fixture = try JSONDecoder().decode([String: [String]].self, from: Data(contentsOf: Self.repository.appendingPathComponent("contracts/fixtures/failure_codes.json")))
        for producer in [RunFailureCode.Producer.worker, .server] {
            #expect(Set(fixture[producer.rawValue] ?? []) == Set(RunFailureCode.allCases.filter { $0.producer == producer }.map(\.rawValue)))
        }
        // A worker code the server does not know (a newer worker's) still fails the run with a mapped code.
        #expect(RunFailureCode(worker: "melted") == .generationFailed && RunFailureCode(worker: "timeout") == .generationFailed)
        #expect(RunFailureCode(worker: "safety_flagged") == .safetyFlagged)
    }

    /// Every server code is written somewhere outside its own declaration (the worker's codes are checked by the
    /// worker's tests, which make each of them happen): a code nothing produces is dead and must go.
    @Test func everyServerCodeHasAProducer() throws {
        let sources = Self.repository.appendingPathComponent("Sources")
        var text = ""
        for case let file as URL in FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        where file.pathExtension == "swift" && !["RunFailureCode.swift", "ErrorMapping.swift"].contains(file.lastPathComponent) {
            text += try String(contentsOf: file, encoding: .utf8)
        }
        for code in RunFailureCode.allCases where code.producer == .server {
            let name = String(describing: code)
            #expect(text.contains("code: .\(name)") || text.contains("RunFailureCode.\(name)"), "nothing produces \(code.rawValue)")
        }
    }
}
