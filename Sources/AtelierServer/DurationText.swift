import Foundation

/// Durations as operators write them on the command line: a number and a unit, `45s`, `90m`, `12h`, `30d`
/// (`runs list --since`, `--output-retention`).
public enum DurationText {
    public static func seconds(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let n = Double(text.dropLast()), n >= 0, n.isFinite else { return nil }
        switch unit {
        case "s": return n
        case "m": return n * 60
        case "h": return n * 3_600
        case "d": return n * 86_400
        default: return nil
        }
    }
}
