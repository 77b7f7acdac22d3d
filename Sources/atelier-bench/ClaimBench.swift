import AtelierCore
import AtelierPersistence
import Foundation
import Logging

/// Claim latency on each backend: `slots` claimers (one store each, as separate nodes or processes would have)
/// take `jobs` queued runs with `claimNext` and complete them, and every claim's time is recorded. Printed as one
/// JSON object per line for bench/database.py, which runs it against SQLite and PostgreSQL side by side.
///
///     atelier-bench claims --database sqlite:/tmp/b.sqlite --slots 2 --jobs 400
@main
struct ClaimBench {
    static func main() async throws {
        var args = CommandLine.arguments.dropFirst()
        guard args.first == "claims" else {
            FileHandle.standardError.write(Data("usage: atelier-bench claims --database URL --slots N --jobs M\n".utf8))
            exit(2)
        }
        args = args.dropFirst()
        var options: [String: String] = [:]
        while let flag = args.first, let value = args.dropFirst().first {
            options[String(flag.drop(while: { $0 == "-" }))] = value
            args = args.dropFirst(2)
        }
        let location = try DatabaseURL.parse(options["database"] ?? "sqlite:/tmp/atelier-bench.sqlite")
        let slots = Int(options["slots"] ?? "1") ?? 1
        let jobs = Int(options["jobs"] ?? "200") ?? 200
        var logger = Logger(label: "bench")
        logger.logLevel = .warning

        func open() async throws -> any AtelierStore {
            switch location {
            case .sqlite(let path): return try SQLiteStore(path: path)
            case .postgres(let settings):
                let store = PostgresStore(settings: settings, nodeID: "bench", logger: logger)
                Task { try await store.run() }
                try await store.migrate()
                return store
            }
        }
        let seeder = try await open()
        let account = try await seeder.ensureAccount(named: "bench-\(UUID().uuidString.prefix(8))")
        let request = RunRequest(
            modelID: "m", prompt: "p", aspectRatio: "1:1", megapixels: "1", size: .init(width: 8, height: 8), numOutputs: 1,
            numInferenceSteps: 1, guidance: 3, seed: 1, outputFormat: .webp, outputQuality: 80, loraScale: 1, goFast: false,
            promptStrength: 0.8, disableSafetyChecker: false
        )
        let base = Int64.random(in: 100_000_000_000_000...800_000_000_000_000)
        for i in 0..<jobs {
            try await seeder.insert(Job(id: base + Int64(i), accountID: account, request: request, outputNames: ["\(i).webp"], createdAt: Date()))
        }
        var stores: [any AtelierStore] = []
        for _ in 0..<slots { stores.append(try await open()) }
        let result = JobResult(outputs: [], path: "standard", pathReason: "", inferenceMs: 0, encodeMs: 0)
        let started = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for store in stores {
                group.addTask {
                    var mine: [Double] = []
                    while true {
                        let t0 = ContinuousClock.now
                        guard let job = try await store.claimNext(now: Date(), lease: 30) else { break }
                        let d = t0.duration(to: .now)
                        mine.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
                        _ = try await store.complete(id: job.id, attempt: job.attempts, result: result, now: Date())
                    }
                    return mine
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all
        }.sorted()
        let elapsed = started.duration(to: .now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        func pct(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        let line = String(format: #"{"slots": %d, "claims": %d, "claims_per_s": %.1f, "p50_ms": %.3f, "p99_ms": %.3f}"#,
                          slots, latencies.count, Double(latencies.count) / seconds, pct(0.5), pct(0.99))
        print(line)
        exit(0)
    }
}

