import AtelierCore
import AtelierPersistence
import ArgumentParser
import Foundation

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, list and revoke API keys.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key for an account (created if new); prints the key alone.")
        @Option(help: "Account name.") var account: String
        @OptionGroup var data: DataDirOption

        func run() async throws {
            guard !account.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--account must not be empty") }
            let store = try await data.openStore()
            let id = try await store.ensureAccount(named: account)
            let key = APIKey.generate()
            try await store.addKey(key, accountID: id)
            // The key alone on stdout, so scripts can capture it; it is not stored and cannot be shown again.
            print(key.plaintext)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys by prefix (secrets are never shown).")
        @OptionGroup var data: DataDirOption

        func run() async throws {
            let store = try await data.openStore()
            let keys = try await store.listKeys()
            let formatter = ISO8601DateFormatter()
            print("PREFIX            ACCOUNT          CREATED               STATUS")
            for k in keys {
                let status = k.revokedAt.map { "revoked \(formatter.string(from: $0))" } ?? "active"
                print("\(k.prefix.padding(toLength: 17, withPad: " ", startingAt: 0)) \(k.accountName.padding(toLength: 16, withPad: " ", startingAt: 0)) \(formatter.string(from: k.createdAt))  \(status)")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke the key with this prefix (from `atelier keys list`).")
        @Argument(help: "The key's prefix, e.g. atl_AbC123dEf456.") var prefix: String
        @OptionGroup var data: DataDirOption

        func run() async throws {
            let store = try await data.openStore()
            guard try await store.revokeKey(prefix: prefix) else {
                throw ValidationError("no key with prefix \(prefix); `atelier keys list` shows them")
            }
            FileHandle.standardError.write(Data("revoked \(prefix)\n".utf8))
        }
    }
}
