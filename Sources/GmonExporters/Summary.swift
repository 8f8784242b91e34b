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
        public init(ringBufferFull: (UInt64, UInt64, UInt64), failedReads: UInt64, failedStacks: UInt64, processMapFull: UInt64, undecodable: UInt64) {
            self.ringBufferFull = ringBufferFull; self.failedReads = failedReads; self.failedStacks = failedStacks
            self.processMapFull = processMapFull; self.undecodable = undecodable
        }

        /// Totals by the `reason` label of gmon_events_lost_total.
        public var byReason: [String: UInt64] {
            ["ringbuf_full": ringBufferFull.creations + ringBufferFull.exits + ringBufferFull.processExits,
             "read_failed": failedReads, "stack_failed": failedStacks, "process_table_full": processMapFull, "undecodable": undecodable]
        }
    }

    public static func render(tracker: Tracker, losses: Losses, maxRows: Int = 15) -> String {
        let rows = tracker.sites.sorted { ($0.created, $0.site.createdBy) > ($1.created, $1.site.createdBy) }
        var out = ["gmon summary: \(rows.reduce(0) { $0 + $1.created }) goroutines created, \(rows.reduce(0) { $0 + $1.exited }) exited, \(tracker.liveCount) still live, \(tracker.unpairedExits) exits of goroutines created before gmon attached\(tracker.exitsLost > 0 ? ", \(tracker.exitsLost) goroutines closed when their g was reused (exit lost)" : "")"]
        out.append(pad("CREATED", 9) + pad("EXITED", 9) + pad("LIVE", 8) + pad("AVG LIFE", 11) + "FUNCTION  <-  CREATED BY")
        for r in rows.prefix(maxRows) {
            let avg = r.exited > 0 ? formatDuration(r.lifetimeSumNs / r.exited) : "-"
            out.append(pad(String(r.created), 9) + pad(String(r.exited), 9) + pad(String(r.live), 8) + pad(avg, 11)
                       + "\(r.site.function)  <-  \(r.site.createdBy)")
        }
        if rows.count > maxRows { out.append("… and \(rows.count - maxRows) more creation sites") }
        let rb = losses.ringBufferFull
        out.append("lost events: ring buffer full \(rb.creations + rb.exits + rb.processExits) (creations \(rb.creations), exits \(rb.exits), process exits \(rb.processExits)), failed reads \(losses.failedReads), stacks missing \(losses.failedStacks), process table full \(losses.processMapFull), undecodable \(losses.undecodable)")
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
