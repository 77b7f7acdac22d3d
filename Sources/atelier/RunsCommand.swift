import AtelierCore
import ArgumentParser
import AtelierServer
import Foundation

/// `atelier runs list` and `atelier runs show ID`: what operators ask of the queue and its history, read from the
/// database the server uses (`--data-dir` or `--database`).
struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List runs and show one: status, timings, attempts, path, error and charge.",
        subcommands: [List.self, Show.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Runs, newest first.")
        @Option(help: "queued, running, succeeded, failed or canceled.") var status: String?
        @Option(help: "An account's name.") var account: String?
        @Option(help: "Created within this long: 90s, 30m, 1h, 7d.") var since: String?
        @Option(help: "At most this many (1–10000; default 50).") var limit: Int = 50
        @OptionGroup var data: DataDirOption

        func run() async throws {
            var filter = RunFilter(limit: limit)
            guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be from 1 to 10000; got \(limit)") }
            if let status {
                guard let s = JobStatus(rawValue: status) else {
                    throw ValidationError("--status must be one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", ")); got \"\(status)\"")
                }
                filter.status = s
            }
            if let since {
                guard let seconds = DurationText.seconds(since) else {
                    throw ValidationError("--since takes a number and a unit (s, m, h, d), such as 30m or 7d; got \"\(since)\"")
                }
                filter.since = Date().addingTimeInterval(-seconds)
            }
            let store = try await data.openStore()
            let accounts = Dictionary(uniqueKeysWithValues: try await store.accounts().map { ($0.id, $0.name) })
            if let account {
                guard let id = accounts.first(where: { $0.value == account })?.key else {
                    throw ValidationError("no account \"\(account)\"; `atelier accounts list` shows them")
                }
                filter.accountID = id
            }
            let rows = try await store.runs(filter)
            let header = ["REQUEST_ID", "STATUS", "MODEL", "ACCOUNT", "CREATED (UTC)", "SECONDS", "ATTEMPTS", "IMAGES", "CHARGED", "ERROR"]
            let widths = [16, 10, 22, 12, 20, 8, 9, 7, 10, 0]
            func line(_ cols: [String]) -> String {
                zip(cols, widths).map { $1 == 0 ? $0 : $0.padding(toLength: max($1, $0.count + 1), withPad: " ", startingAt: 0) }.joined()
            }
            print(line(header))
            for job in rows {
                print(line([String(job.id), job.status.rawValue, job.request.modelID, accounts[job.accountID] ?? String(job.accountID),
                            RunsCommand.time(job.createdAt), RunsCommand.took(job).map { String(format: "%.1f", $0) } ?? "-",
                            String(job.attempts), String(RunsCommand.images(job)), MoneyText.format(RunsCommand.charged(job), currency),
                            job.failure?.code.rawValue ?? ""]))
            }
            if rows.count == limit { print("(\(limit) shown; --limit for more)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One run in full.")
        @Argument(help: "The run's request_id.") var id: Int64
        @OptionGroup var data: DataDirOption

        func run() async throws {
            let store = try await data.openStore()
            guard let job = try await store.job(id: id) else { throw ValidationError("no run \(id)") }
            let account = try await store.accounts().first { $0.id == job.accountID }?.name ?? String(job.accountID)
            var lines: [(String, String)] = [
                ("request_id", String(job.id)), ("status", job.status.rawValue), ("model", job.request.modelID),
                ("account", account), ("created", RunsCommand.time(job.createdAt)),
                ("started", job.startedAt.map(RunsCommand.time) ?? "-"), ("finished", job.finishedAt.map(RunsCommand.time) ?? "-"),
                ("queued for", job.startedAt.map { String(format: "%.1f s", $0.timeIntervalSince(job.createdAt)) } ?? "-"),
                ("took", RunsCommand.took(job).map { String(format: "%.1f s (created to finished)", $0) } ?? "-"),
                ("attempts", String(job.attempts)),
                ("size", "\(job.request.size.width)x\(job.request.size.height), \(job.request.numInferenceSteps) steps, \(job.request.numOutputs) image(s)"),
                ("seed", String(job.seed)),
            ]
            if let r = job.result {
                lines += [("path", "\(r.path): \(r.pathReason)"), ("inference", String(format: "%.0f ms", r.inferenceMs)),
                          ("encode", String(format: "%.0f ms", r.encodeMs)), ("batch", String(r.batchSize ?? 1)),
                          ("outputs", r.outputs.map(\.name).joined(separator: ", "))]
            }
            if let f = job.failure { lines.append(("error", "\(f.code.rawValue): \(f.message)")) }
            lines += [("price", "\(MoneyText.format(job.pricePerImage, currency)) per image"),
                      ("held", job.status.isTerminal ? "-" : MoneyText.format(job.holdAmount, currency)),
                      ("charged", MoneyText.format(RunsCommand.charged(job), currency))]
            if let p = job.progress, job.status == .running { lines.append(("progress", "step \(p.step) of \(p.total)")) }
            for (k, v) in lines { print("\((k + ":").padding(toLength: 12, withPad: " ", startingAt: 0)) \(v)") }
        }
    }

    static func time(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return f.string(from: date)
    }

    static func took(_ job: Job) -> TimeInterval? { job.finishedAt.map { $0.timeIntervalSince(job.createdAt) } }
    static func images(_ job: Job) -> Int { job.status == .succeeded ? job.result?.outputs.count ?? 0 : 0 }
    /// What the ledger captured for it: price × delivered images (LedgerRules; `accounts audit` checks the two agree).
    static func charged(_ job: Job) -> Int64 { Int64(images(job)) * job.pricePerImage }
}
