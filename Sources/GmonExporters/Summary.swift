import GmonModel
import GoroutineTracker

/// The one-screen report printed when gmon stops.
public struct Summary {
    public struct Losses {
        /// Dropped because the ring buffer was full: creations, exits, process exits.
        public var ringBufferFull: (creations: UInt64, exits: UInt64, processExits: UInt64)
        public var failedReads: UInt64
        public var failedStacks: UInt64
        public var processMapFull: UInt64
        public var undecodable: UInt64
        /// Creations lost to a full ring that the kernel side could not remember either (its
        /// table was full): their exits count as exits of goroutines created before gmon attached.
        public var lostCreationsUntracked: UInt64 = 0
        /// Log lines not written: stdout's reader was too slow, or writing failed.
        public var logLinesDropped: UInt64 = 0
        /// Program starts (--all) dropped because the ring buffer was full: those programs are
        /// found by the next scan of /proc instead (at most a minute later).
        public var programStarts: UInt64 = 0
        /// Creations dropped because every scratch slot of their CPU was held by preempted
        /// creations (preemptible kernels only; their exits are flagged like ring-full ones).
        public var scratchBusy: UInt64 = 0
        public init(ringBufferFull: (UInt64, UInt64, UInt64), failedReads: UInt64, failedStacks: UInt64, processMapFull: UInt64, undecodable: UInt64) {
            self.ringBufferFull = ringBufferFull; self.failedReads = failedReads; self.failedStacks = failedStacks
            self.processMapFull = processMapFull; self.undecodable = undecodable
        }

        /// Totals by the `reason` label of gmon_events_lost_total.
        public var byReason: [String: UInt64] {
            ["ringbuf_full": ringBufferFull.creations + ringBufferFull.exits + ringBufferFull.processExits + programStarts,
             "read_failed": failedReads, "scratch_busy": scratchBusy, "stack_failed": failedStacks, "process_table_full": processMapFull, "undecodable": undecodable]
        }
    }

    /// A row of the summary: the sites it shows as one (stacks that differ only below what
    /// is shown are one row, their counts added up).
    /// Goroutines that existed when gmon attached have a row of their own (their lifetimes unknown).
    struct Row {
        let function: String, createdBy: String, preexisting: Bool
        var created: UInt64 = 0, exited: UInt64 = 0, live: UInt64 = 0, lifetimeSumNs: UInt64 = 0, existing: UInt64 = 0
        /// Live when their process exited or ran exec (they did not exit).
        var closed: UInt64 = 0
        /// Creation time (kernel clock) of the oldest live goroutine; for goroutines that
        /// existed when gmon attached, when they were read.
        var oldestNs: UInt64 = .max
    }

    static func rows(_ tracker: Tracker) -> [Row] {
        var rows: [Row] = []
        var index: [[String]: Int] = [:]
        let oldest = tracker.oldestLiveCreation()
        for (n, st) in tracker.sites.enumerated() where !st.isFree {
            let key = [st.site.function, st.site.createdBy.description, st.isPreexisting ? "pre" : ""]
            let i = index[key] ?? {
                rows.append(Row(function: key[0], createdBy: key[1], preexisting: st.isPreexisting))
                index[key] = rows.count - 1
                return rows.count - 1
            }()
            rows[i].existing += st.preexisting
            rows[i].created += st.created
            rows[i].exited += st.exited
            rows[i].live += st.live
            rows[i].lifetimeSumNs &+= st.lifetimeSumNs
            rows[i].closed += st.closedByProcessExit
            if let t = oldest[Int32(n)] { rows[i].oldestNs = min(rows[i].oldestNs, t) }
        }
        return rows
    }

    /// Rows by live goroutines, most first (a leak is on top), then by goroutines created.
    /// Every row with live goroutines is shown; of the others, as many as fit in `maxRows`.
    /// `nowNs`: the kernel clock now (OLDEST is the age of each row's oldest live goroutine).
    public static func render(tracker: Tracker, losses: Losses, maxRows: Int = 15, nowNs: UInt64 = monotonicNow()) -> String {
        let rows = Self.rows(tracker).sorted { ($0.live, $0.created + $0.existing, $0.createdBy) > ($1.live, $1.created + $1.existing, $1.createdBy) }
        let existing = tracker.preexistingTotal
        var out = ["gmon summary: \(rows.reduce(0) { $0 + $1.created }) goroutines created\(existing > 0 ? " (and \(existing) already running when gmon attached)" : ""), \(rows.reduce(0) { $0 + $1.exited }) exited, \(tracker.liveCount) still live, \(tracker.unpairedExits) exits of goroutines created before gmon attached\(tracker.exitsOfLostCreations > 0 ? ", \(tracker.exitsOfLostCreations) exits of goroutines whose creation was lost" : "")\(tracker.exitsLost > 0 ? ", \(tracker.exitsLost) goroutines closed when their g was reused (exit lost)" : "")"]
        out.append(pad("CREATED", 9) + pad("EXITED", 9) + pad("LIVE", 8) + pad("OLDEST", 9) + pad("CLOSED", 8) + pad("AVG LIFE", 11) + "FUNCTION  <-  CREATED BY")
        let shown = rows.enumerated().filter { $0.offset < maxRows || $0.element.live > 0 }.map(\.element)
        for r in shown {
            let avg = r.exited > 0 && !r.preexisting ? formatDuration(r.lifetimeSumNs / r.exited) : "-"
            // Read from memory at attach: created earlier than that, by how much is unknown.
            let age = r.live == 0 || r.oldestNs == .max ? "-" : (r.preexisting ? ">" : "") + formatDuration(nowNs >= r.oldestNs ? nowNs - r.oldestNs : 0)
            out.append(pad(r.preexisting ? "(\(r.existing))" : String(r.created), 9) + pad(String(r.exited), 9) + pad(String(r.live), 8) + pad(age, 9)
                       + pad(String(r.closed), 8) + pad(avg, 11)
                       + "\(r.function)  <-  \(r.createdBy)\(r.preexisting ? "  (running when gmon attached)" : "")")
        }
        if rows.count > shown.count { out.append("… and \(rows.count - shown.count) more creation sites, none with live goroutines") }
        if shown.contains(where: { $0.closed > 0 }) {
            out.append("CLOSED: goroutines still live when their process exited or ran exec (they ended with it, they did not exit; not in EXITED)")
        }
        let rb = losses.ringBufferFull
        out.append("lost events: ring buffer full \(rb.creations + rb.exits + rb.processExits) (creations \(rb.creations), exits \(rb.exits), process exits \(rb.processExits)), failed reads \(losses.failedReads), stacks missing \(losses.failedStacks), process table full \(losses.processMapFull), undecodable \(losses.undecodable)")
        if tracker.stacksNotKept > 0 { out.append("creation stacks beyond --max-stacks \(tracker.maxStacks), counted under their function and created_by only: \(tracker.stacksNotKept)") }
        if losses.scratchBusy > 0 { out.append("creations lost while every scratch slot of their CPU was in use (preempted creations): \(losses.scratchBusy)") }
        if losses.programStarts > 0 { out.append("program starts lost (ring buffer full; found by the next scan of /proc): \(losses.programStarts)") }
        if losses.lostCreationsUntracked > 0 { out.append("creations lost and not remembered (table full; their exits count as before gmon attached): \(losses.lostCreationsUntracked)") }
        if losses.logLinesDropped > 0 { out.append("log lines dropped (stdout's reader too slow, or writing failed): \(losses.logLinesDropped)") }
        return out.joined(separator: "\n")
    }

    static func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count) }

    public static func formatDuration(_ ns: UInt64) -> String {
        switch ns {
        case ..<1_000: return "\(ns)ns"
        case ..<1_000_000: return "\(ns / 1_000)µs"
        case ..<1_000_000_000: return "\(ns / 1_000_000)ms"
        default: return String(format1(Double(ns) / 1e9)) + "s"
        }
    }

    static func format1(_ v: Double) -> String {
        let t = Int((v * 10).rounded())
        return "\(t / 10).\(t % 10)"
    }
}
