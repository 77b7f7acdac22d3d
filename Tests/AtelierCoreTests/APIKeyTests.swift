import AtelierCore
import Testing

@Suite struct APIKeyTests {
    @Test func generatedKeysAreWellFormedAndDistinct() {
        let a = APIKey.generate(), b = APIKey.generate()
        #expect(a.isWellFormed && b.isWellFormed)
        #expect(a != b)
        #expect(a.plaintext.count == 48 && a.prefix.count == 16 && a.plaintext.hasPrefix(a.prefix))
    }

    @Test func hashIsSHA256Hex() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        #expect(APIKey.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let key = APIKey.generate()
        #expect(key.hash.count == 64 && !key.hash.contains(key.plaintext))
    }

    @Test(arguments: ["", "atl_", "atl_short", "sk-" + String(repeating: "a", count: 45), "atl_" + String(repeating: "!", count: 44)])
    func malformedKeysAreRecognised(text: String) {
        #expect(!APIKey(plaintext: text).isWellFormed)
    }
}

@Suite struct JobStatusTests {
    @Test func terminalStatesNeverChange() {
        for from in JobStatus.allCases where from.isTerminal {
            for to in JobStatus.allCases {
                #expect(!from.canTransition(to: to), "\(from) → \(to)")
            }
        }
    }

    @Test func lifecycle() {
        #expect(JobStatus.queued.canTransition(to: .running))
        #expect(JobStatus.running.canTransition(to: .succeeded))
        #expect(JobStatus.running.canTransition(to: .failed))
        #expect(!JobStatus.queued.canTransition(to: .succeeded))
        #expect(!JobStatus.running.canTransition(to: .running))
    }
}
