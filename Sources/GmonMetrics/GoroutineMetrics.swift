import GoroutineTracker
import Prometheus
#if canImport(Glibc)
import Glibc
#endif

/// gmon's Prometheus metrics. Updated on the event thread, read by scrapes:
/// swift-prometheus's metrics are thread-safe, so neither waits for the other.
/// Counts are added up per event in plain integers and published after each drain of
/// the ring buffer (`publish()`, every ≤ 20 ms): atomics per event were 8% of gmon's
/// CPU (perf), and no scrape comes more often than that.
public final class GoroutineMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    let exe: String
    let maxSites: Int

    final class Site {
        let created: Counter
        let exited: Counter
        let live: Gauge
        let lifetime: ValueHistogram
        let oldest: Gauge
        var pendingCreated: Int64 = 0
        var pendingExited: Int64 = 0
        init(created: Counter, exited: Counter, live: Gauge, lifetime: ValueHistogram, oldest: Gauge) {
            self.created = created; self.exited = exited; self.live = live; self.lifetime = lifetime; self.oldest = oldest
        }
    }
    /// Tracker site index → metrics (sites past --max-sites share "other").
    private var sites: [Site?] = []
    /// One series per label set: tracker sites whose stacks differ only below the frames the
    /// labels show share it (counts add up; the oldest age is the oldest of them all).
    private var byLabels: [[String]: Site] = [:]
    private var other: Site?
    /// Sites with counts not yet published.
    private var dirty: [Site] = []
    private var pendingCreateEvents: Int64 = 0
    private var pendingExitEvents: Int64 = 0

    /// 10 µs … 24 h: goroutines live microseconds to days.
    public static let lifetimeBuckets: [Double] = [
        0.00001, 0.0001, 0.001, 0.01, 0.1, 1, 10, 60, 600, 3600, 6 * 3600, 24 * 3600,
    ]

    let eventsCreate, eventsExit, eventsProcessExit: Counter
    let unpaired, unpairedCreationLost: Counter
    let processes: Gauge
    let folded: Counter
    let logLinesDropped: Counter
    var logLinesDroppedSeen: UInt64 = 0
    var lostCounters: [String: Counter] = [:]
    var lostSeen: [String: UInt64] = [:]

    public init(exe: String, maxSites: Int, version: String, goVersion: String) {
        self.exe = exe
        self.maxSites = maxSites
        let r = registry
        eventsCreate = r.makeCounter(name: "gmon_events_total", labels: [("type", "create")], help: "Events received from the kernel.")
        eventsExit = r.makeCounter(name: "gmon_events_total", labels: [("type", "exit")], help: "Events received from the kernel.")
        eventsProcessExit = r.makeCounter(name: "gmon_events_total", labels: [("type", "process_exit")], help: "Events received from the kernel.")
        unpaired = r.makeCounter(name: "gmon_exits_unpaired_total", labels: [("exe", exe), ("reason", "created_before_attach")],
                                 help: "Exits without a creation: of goroutines created before gmon attached, or whose creation was lost.")
        unpairedCreationLost = r.makeCounter(name: "gmon_exits_unpaired_total", labels: [("exe", exe), ("reason", "creation_lost")],
                                             help: "Exits without a creation: of goroutines created before gmon attached, or whose creation was lost.")
        unpairedCreationLost.increment(by: Int64(0))
        processes = r.makeGauge(name: "gmon_processes_traced", labels: [("exe", exe)], help: "Processes of the executable with goroutine events.")
        folded = r.makeCounter(name: "gmon_sites_folded_total", labels: [("exe", exe)],
                               help: "Creation sites beyond --max-sites, counted under created_by=\"other\".")
        r.makeGauge(name: "gmon_build_info", labels: [("version", version), ("go_versions", goVersion)],
                    help: "gmon's version and the Go releases of the watched executables.").set(to: Double(1))
        logLinesDropped = r.makeCounter(name: "gmon_log_lines_dropped_total", labels: [("exe", exe)],
                                        help: "Log lines not written: stdout's reader was too slow, or writing failed.")
        logLinesDropped.increment(by: Int64(0))
        for reason in ["ringbuf_full", "read_failed", "stack_failed", "process_table_full", "undecodable"] {
            let c = r.makeCounter(name: "gmon_events_lost_total", labels: [("reason", reason)], help: "Events gmon could not deliver, by reason.")
            lostCounters[reason] = c
            c.increment(by: Int64(0))
        }
    }

    func labels(_ s: CreationSite) -> [(String, String)] {
        var l = [("exe", exe), ("function", s.function), ("created_by", s.createdBy)]
        for (i, f) in s.stack.prefix(5).enumerated() { l.append(("stack_\(i)", f)) }
        return l
    }

    func make(_ labels: [(String, String)]) -> Site {
        let r = registry
        return Site(
            created: r.makeCounter(name: "gmon_goroutines_created_total", labels: labels, help: "Goroutines created, by creation site."),
            exited: r.makeCounter(name: "gmon_goroutines_exited_total", labels: labels, help: "Goroutines exited, by creation site."),
            live: r.makeGauge(name: "gmon_goroutines_live", labels: labels, help: "Goroutines alive now, by creation site."),
            lifetime: r.makeValueHistogram(name: "gmon_goroutine_lifetime_seconds", labels: labels, buckets: Self.lifetimeBuckets,
                                           help: "Lifetimes of exited goroutines (kernel clock), by creation site."),
            oldest: r.makeGauge(name: "gmon_goroutine_oldest_live_seconds", labels: labels, help: "Age of the oldest live goroutine, by creation site."))
    }

    func site(_ index: Int32, _ s: @autoclosure () -> CreationSite) -> Site {
        let i = Int(index)
        if i < sites.count, let m = sites[i] { return m }
        while sites.count <= i { sites.append(nil) }
        let m: Site
        let l = labels(s())
        let key = l.map(\.1)
        if let existing = byLabels[key] {
            m = existing
        } else if byLabels.count < maxSites {
            m = make(l)
            byLabels[key] = m
        } else {
            m = otherSite()
        }
        sites[i] = m
        return m
    }

    /// The series sites past --max-sites share.
    private func otherSite() -> Site {
        if other == nil { other = make([("exe", exe), ("function", "other"), ("created_by", "other")]) }
        folded.increment()
        return other!
    }

    /// The site's metrics, listed for the next `publish()` if nothing of it is pending yet.
    private func pendingSite(_ index: Int32, _ s: @autoclosure () -> CreationSite) -> Site {
        let m = site(index, s())
        if m.pendingCreated == 0 && m.pendingExited == 0 { dirty.append(m) }
        return m
    }

    public func created(site index: Int32, _ s: @autoclosure () -> CreationSite) {
        pendingCreateEvents += 1
        pendingSite(index, s()).pendingCreated += 1
    }

    public func exited(site index: Int32, _ s: @autoclosure () -> CreationSite, lifetimeNs: UInt64) {
        pendingExitEvents += 1
        let m = pendingSite(index, s())
        m.pendingExited += 1
        m.lifetime.record(Double(lifetimeNs) / 1e9)
    }

    /// A goroutine of this site was found live on a reused g: its exit was lost (and
    /// counted as lost by the kernel side); it is no longer live.
    public func exitLost(site index: Int32, _ s: @autoclosure () -> CreationSite) {
        site(index, s()).live.decrement()
    }

    public func unpairedExit(creationLost: Bool = false) {
        pendingExitEvents += 1
        (creationLost ? unpairedCreationLost : unpaired).increment()
    }

    /// Makes the counts added since the last call visible to scrapes.
    public func publish() {
        if pendingCreateEvents > 0 { eventsCreate.increment(by: pendingCreateEvents); pendingCreateEvents = 0 }
        if pendingExitEvents > 0 { eventsExit.increment(by: pendingExitEvents); pendingExitEvents = 0 }
        for m in dirty {
            if m.pendingCreated > 0 { m.created.increment(by: m.pendingCreated) }
            if m.pendingExited > 0 { m.exited.increment(by: m.pendingExited) }
            if m.pendingCreated != m.pendingExited { m.live.increment(by: Double(m.pendingCreated - m.pendingExited)) }
            m.pendingCreated = 0
            m.pendingExited = 0
        }
        dirty.removeAll(keepingCapacity: true)
    }

    /// A process ended: its live goroutines are gone (they did not exit, so no lifetime is recorded).
    public func processEnded(tracker: Tracker, closedPerSite: [Int32: Int]) {
        publish()
        eventsProcessExit.increment()
        for (s, n) in closedPerSite { site(s, tracker.sites[Int(s)].site).live.decrement(by: Double(n)) }
    }

    /// Refreshes the gauges that are derived from tracker state (ages, process count) and the loss counters.
    public func refresh(tracker: Tracker, nowNs: UInt64, losses: [String: UInt64], logLinesDropped dropped: UInt64 = 0) {
        if dropped > logLinesDroppedSeen { logLinesDropped.increment(by: Int64(dropped - logLinesDroppedSeen)); logLinesDroppedSeen = dropped }
        processes.set(Double(tracker.processesSeen.count))
        let oldest = tracker.oldestLiveCreation()
        // Per series, not per site: several sites may share one, and the oldest of them all counts.
        var oldestPerSeries: [ObjectIdentifier: (Site, UInt64)] = [:]
        for (i, st) in tracker.sites.enumerated() {
            let m = site(Int32(i), st.site)
            let t = oldest[Int32(i)] ?? .max
            let id = ObjectIdentifier(m)
            if let (_, was) = oldestPerSeries[id], was <= t { continue }
            oldestPerSeries[id] = (m, t)
        }
        for (m, t) in oldestPerSeries.values { m.oldest.set(t == .max ? 0 : Double(nowNs &- t) / 1e9) }
        for (reason, total) in losses {
            let delta = total &- (lostSeen[reason] ?? 0)
            if delta > 0, delta < 1 << 62 { lostCounters[reason]?.increment(by: Int64(delta)) }
            lostSeen[reason] = total
        }
    }
}
