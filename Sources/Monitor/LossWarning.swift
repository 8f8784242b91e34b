import GmonExporters

/// Says on stderr when events begin to be lost, while gmon runs (the counters and the exit
/// summary say how many; a user watching the log should not learn it only at the end), and
/// what the numbers point to: a reader that fell behind, or rings too small for a burst.
/// The first loss is reported at once; later ones at most every `interval`, each warning
/// covering what was lost since the one before.
public struct LossWarning {
    /// The reasons counted here: events that never reached gmon (not partial ones such as a
    /// failed stack read), by their `gmon_events_lost_total` label.
    static let reasons = ["ringbuf_full", "scratch_busy", "process_table_full", "undecodable"]

    let intervalNs: UInt64
    /// The ring size per CPU, for the advice.
    let ringBytes: UInt32
    /// gmon's drain tick: a longer time between two reads of the rings means the reader was late.
    let tickNs: UInt64
    private var reported: [String: UInt64] = [:]
    private var lastWarningNs: UInt64?
    private var lastReadNs: UInt64?
    /// Since the last warning: the longest time between two reads of the rings, and the
    /// fullest a ring was when read.
    private var longestGapNs: UInt64 = 0
    private var fullest: Double = 0

    public init(ringBytes: UInt32, intervalSeconds: Double = 10, tickMs: UInt64 = 20) {
        self.ringBytes = ringBytes
        self.intervalNs = UInt64(intervalSeconds * 1e9)
        self.tickNs = tickMs * 1_000_000
        for r in Self.reasons { reported[r] = 0 }
    }

    /// A read of the rings at `nowNs`, the fullest ring `fill` full when it began.
    public mutating func read(atNs nowNs: UInt64, fullest fill: Double) {
        observe(nowNs: nowNs, fullest: fill)
        lastReadNs = nowNs
    }

    /// The time since the last read, and how full the rings are now.
    private mutating func observe(nowNs: UInt64, fullest fill: Double) {
        if let last = lastReadNs, nowNs &- last > longestGapNs { longestGapNs = nowNs &- last }
        if fill > fullest { fullest = fill }
    }

    /// The warning to give now, if any (called about once a second with the totals so far, and
    /// how full the fullest ring is now). gmon may have been stopped (not scheduled) just
    /// before this check, the losses of that time in the counters already and no read since:
    /// the time since the last read counts as a read's would.
    public mutating func check(losses: [String: UInt64], nowNs: UInt64, fullest fill: Double) -> String? {
        observe(nowNs: nowNs, fullest: fill)
        var lost: [(String, UInt64)] = []
        for r in Self.reasons {
            let n = losses[r, default: 0], before = reported[r, default: 0]
            if n > before { lost.append((r, n - before)) }
        }
        if lost.isEmpty {
            // Quiet: the diagnostics describe the next losses' time only.
            if lastWarningNs.map({ nowNs &- $0 >= intervalNs }) ?? true { longestGapNs = 0; fullest = 0 }
            return nil
        }
        if let last = lastWarningNs, nowNs &- last < intervalNs { return nil }
        let total = lost.reduce(0) { $0 + $1.1 }
        let firstTime = lastWarningNs == nil
        var text = "gmon: warning: \(total) event\(total == 1 ? "" : "s") lost\(firstTime ? "" : " since the last warning") ("
            + lost.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + ")"
        if lost.contains(where: { $0.0 == "ringbuf_full" }) {
            let gapMs = Double(longestGapNs) / 1e6, tickMs = Double(tickNs) / 1e6
            let fill = Int((fullest * 100).rounded())
            let mib = ringBytes >> 20 > 0 ? "\(ringBytes >> 20) MiB" : "\(ringBytes >> 10) KiB"
            text += "; the longest time between two reads of the rings was \(Self.ms(gapMs)) (gmon reads them every \(Self.ms(tickMs)) and when one is a quarter full), the fullest ring \(fill)% full when read"
            if longestGapNs >= 5 * tickNs {
                text += ": gmon's reader fell behind (it was not running, or was busy with a backlog); give it CPU time (its priority, a CPU limit of its cgroup) or raise --ring-buffer-mb (\(mib) per CPU now)"
            } else {
                text += ": the rings filled between reads that came on time; raise --ring-buffer-mb (\(mib) per CPU now)"
            }
        }
        if lost.contains(where: { $0.0 == "scratch_busy" }) {
            text += "; scratch_busy: creation programs were preempted inside by others on their CPU"
        }
        if lost.contains(where: { $0.0 == "process_table_full" }) {
            text += "; process_table_full: more processes of the watched programs than gmon's table holds"
        }
        for (r, n) in lost { reported[r, default: 0] += n }
        lastWarningNs = nowNs
        longestGapNs = 0
        fullest = 0
        return text
    }

    static func ms(_ v: Double) -> String {
        v >= 10 ? "\(Int(v.rounded())) ms" : "\((v * 10).rounded() / 10) ms"
    }
}
