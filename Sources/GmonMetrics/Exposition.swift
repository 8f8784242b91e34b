import Prometheus

/// The two text formats a scraper may ask for. swift-prometheus writes the
/// Prometheus 0.0.4 format; OpenMetrics differs only where written here.
public enum Exposition {
    public static let prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"
    public static let openMetricsContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8"

    /// True when the Accept header prefers OpenMetrics (as Prometheus does by default).
    public static func wantsOpenMetrics(accept: String?) -> Bool {
        accept?.contains("application/openmetrics-text") ?? false
    }

    /// `name="value",…` (no braces), values escaped as both formats require.
    static func labelText(_ labels: [(String, String)]) -> [UInt8] {
        var text: [UInt8] = []
        for (i, (k, v)) in labels.enumerated() {
            if i > 0 { text.append(0x2c) }
            text += k.utf8
            text += "=\"".utf8
            for b in v.utf8 {
                switch b {
                case 0x5c: text += "\\\\".utf8
                case 0x22: text += "\\\"".utf8
                case 0x0a: text += "\\n".utf8
                default: text.append(b)
                }
            }
            text.append(0x22)
        }
        return text
    }

    /// The registry's families in a fixed order (by name; it emits them in its dictionary's
    /// order, which changes from run to run), each family's lines kept together.
    static func sortedFamilies(_ text: [UInt8]) -> [UInt8] {
        var families: [(name: Substring, lines: [Substring])] = []
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        for l in lines {
            if l.hasPrefix("# HELP ") {
                families.append((l.dropFirst(7).prefix { $0 != " " }, [l]))
            } else if families.isEmpty {
                families.append(("", [l]))
            } else {
                families[families.count - 1].lines.append(l)
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        for f in families.sorted(by: { $0.name < $1.name }) {
            for l in f.lines { out += l.utf8; out.append(0x0a) }
        }
        return out
    }

    /// OpenMetrics names a counter family without its `_total` suffix (the
    /// samples keep it); the caller ends the exposition with `# EOF`.
    static func toOpenMetrics(_ text: [UInt8]) -> [UInt8] {
        var counters = Set<Substring>()
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        for l in lines where l.hasPrefix("# TYPE ") && l.hasSuffix(" counter") {
            counters.insert(l.dropFirst(7).split(separator: " ").first ?? "")
        }
        var out = ""
        out.reserveCapacity(text.count + 16)
        for l in lines {
            if l.hasPrefix("# HELP ") || l.hasPrefix("# TYPE ") {
                let parts = l.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
                if parts.count >= 3, counters.contains(parts[2]), parts[2].hasSuffix("_total") {
                    out += "\(parts[0]) \(parts[1]) \(parts[2].dropLast(6))"
                    if parts.count == 4 { out += " " + parts[3] }
                    out += "\n"
                    continue
                }
            }
            out += l + "\n"
        }
        return Array(out.utf8)
    }
}
