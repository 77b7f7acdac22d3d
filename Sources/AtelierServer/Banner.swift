import AtelierCore
import Foundation

/// What a node prints (to standard output, not the log) once it listens.
enum Banner {
    static func printWorker(host: String, port: Int, workers: Int) {
        let text = "\nAtelier worker node: \(workers) worker(s) on the shared queue; health on http://\(host):\(port)/healthz and /readyz\n"
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func print(host: String, port: Int, profile: Profile, modelID: String, newKey: APIKey?) {
        var lines = ["", "Atelier is listening on http://\(host):\(port) (profile: \(profile.rawValue))"]
        if profile == .demo {
            lines.append("DEMO PROFILE: the model's weights are RANDOM; images are noise. See README.md for real weights.")
        }
        let key = newKey?.plaintext ?? "<your API key>"
        if newKey != nil {
            lines += ["", "Created account \"demo\" with \(MoneyText.format(AtelierNode.demoCredit, "USD")) of credit and API key (shown once, keep it):", "    \(key)"]
        } else {
            lines += ["", "Create an API key with: atelier keys create --account NAME"]
        }
        lines += [
            "", "Try it:",
            "    curl -s http://\(host):\(port)/api/v4/run \\",
            "      -H 'Authorization: Bearer \(key)' \\",
            "      -H 'Content-Type: application/json' \\",
            "      -d '{\"model_id\": \"\(modelID)\", \"prompt\": \"Cute 3d Kawaii, a small cat in a teacup\", \"aspect_ratio\": \"1:1\"}'",
            "",
        ]
        // stdout, not the log: the key is shown to the person who started the server and never logged.
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }
}
