import AtelierCore
import AtelierPersistence
import ArgumentParser
import Foundation

/// Amounts on the command line are in major units with at most two decimals: `10` is 10.00 USD.
private func parseAmount(_ text: String) throws -> Int64 {
    guard let v = MoneyText.parse(text) else {
        throw ValidationError("AMOUNT must be a number with at most two decimals, in whole currency units (10 or 2.50); got \"\(text)\"")
    }
    return v
}

private func requireAccount(_ store: any AccountStore, _ name: String) async throws -> Account {
    guard let account = try await store.account(named: name) else {
        throw ValidationError("no account \"\(name)\"; `atelier accounts list` shows them, `atelier accounts create \(name)` makes it")
    }
    return account
}

/// The server's one currency: prices in the catalog and amounts here are in it.
let currency = "USD"

struct AccountsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accounts",
        abstract: "Create, list and show accounts and their balances.",
        subcommands: [Create.self, List.self, Show.self, Audit.self, RotateWebhookSecret.self]
    )

    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every account's ledger against its runs; exits 1 and lists the problems if any.",
            discussion: "One hold per run, every finished run's hold resolved exactly once, captures equal to price × delivered images, no balance below zero."
        )
        @OptionGroup var data: DataDirOption
        func run() async throws {
            let audit = try await LedgerAudit.run(on: try await data.openStore())
            audit.print()
            if !audit.problems.isEmpty { throw ExitCode(1) }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an account (no error if it exists).")
        @Argument(help: "Account name.") var name: String
        @OptionGroup var data: DataDirOption
        func run() async throws {
            guard !name.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("NAME must not be empty") }
            let store = try await data.openStore()
            let id = try await store.ensureAccount(named: name)
            print("account \(name) (id \(id))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts with their balances.")
        @OptionGroup var data: DataDirOption
        func run() async throws {
            let store = try await data.openStore()
            print("ACCOUNT          BALANCE          HELD             AVAILABLE")
            for a in try await store.accounts() {
                let b = try await store.balance(accountID: a.id)
                let cols = [a.name, MoneyText.format(b.balance, currency), MoneyText.format(b.held, currency)]
                print(cols.map { $0.padding(toLength: 16, withPad: " ", startingAt: 0) }.joined(separator: " ") + " " + MoneyText.format(b.available, currency))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An account's balance, keys and ledger.")
        @Argument(help: "Account name.") var name: String
        @OptionGroup var data: DataDirOption
        func run() async throws {
            let store = try await data.openStore()
            let account = try await requireAccount(store, name)
            let b = try await store.balance(accountID: account.id)
            print("account:   \(account.name) (id \(account.id))")
            print("balance:   \(MoneyText.format(b.balance, currency))")
            print("held:      \(MoneyText.format(b.held, currency))")
            print("available: \(MoneyText.format(b.available, currency))")
            let keys = try await store.listKeys().filter { $0.accountID == account.id }
            print("keys:      \(keys.map { $0.prefix + ($0.revokedAt == nil ? "" : " (revoked)") }.joined(separator: ", "))")
            print("webhook secret: \(try await store.webhookSecret(accountID: account.id))  (verifies this account's webhook signatures)")
            print("ledger:")
            let formatter = ISO8601DateFormatter()
            for e in try await store.ledger(accountID: account.id) {
                let run = e.jobID.map { " run \($0)" } ?? ""
                print("  \(formatter.string(from: e.createdAt))  \(e.kind.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) \(MoneyText.format(e.amount, currency))\(run)\(e.reason.map { "  \($0)" } ?? "")")
            }
        }
    }
}

struct CreditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credits",
        abstract: "Add credit to an account or adjust it; every change is a ledger entry with its reason.",
        subcommands: [Add.self, Adjust.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add prepaid credit (a positive amount).")
        @Option(help: "Account name.") var account: String
        @Argument(help: "Amount in whole currency units, e.g. 10 or 2.50.") var amount: String
        @Option(help: "Why (kept in the ledger).") var reason: String
        @OptionGroup var data: DataDirOption
        func run() async throws {
            let value = try parseAmount(self.amount)
            guard value > 0 else { throw ValidationError("AMOUNT must be positive; use `credits adjust` to take credit away") }
            try await CreditsCommand.apply(kind: .credit, value: value, account: account, reason: reason, data: data)
        }
    }

    struct Adjust: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Correct a balance by a positive or negative amount.")
        @Option(help: "Account name.") var account: String
        // An option read unconditionally, so a negative amount (-2.50) is not taken for a flag.
        @Option(parsing: .unconditional, help: "Amount in whole currency units; negative takes credit away (never below zero available).")
        var amount: String
        @Option(help: "Why (kept in the ledger).") var reason: String
        @OptionGroup var data: DataDirOption
        func run() async throws {
            let value = try parseAmount(self.amount)
            guard value != 0 else { throw ValidationError("AMOUNT must not be zero") }
            try await CreditsCommand.apply(kind: .adjustment, value: value, account: account, reason: reason, data: data)
        }
    }

    static func apply(kind: LedgerKind, value: Int64, account: String, reason: String, data: DataDirOption) async throws {
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason must say why") }
        let store = try await data.openStore()
        let a = try await requireAccount(store, account)
        do {
            let b = try await store.addCredit(accountID: a.id, amount: value, kind: kind, reason: reason, now: Date())
            print("\(account): balance \(MoneyText.format(b.balance, currency)), available \(MoneyText.format(b.available, currency))")
        } catch JobStoreError.wouldGoNegative(let available) {
            throw ValidationError("that would leave \(account) below zero: only \(MoneyText.format(available, currency)) is available")
        }
    }
}

extension AccountsCommand {
    struct RotateWebhookSecret: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-webhook-secret",
            abstract: "Replace the account's webhook signing secret (receivers must switch to the new one)."
        )
        @Argument(help: "Account name.") var name: String
        @OptionGroup var data: DataDirOption
        func run() async throws {
            let store = try await data.openStore()
            let account = try await requireAccount(store, name)
            print("webhook secret: \(try await store.rotateWebhookSecret(accountID: account.id))")
        }
    }
}
