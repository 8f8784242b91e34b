import GmonModel
import GoroutineTracker
import Prometheus
#if canImport(Glibc)
import Glibc
#endif

/// gmon's Prometheus metrics. Updated on the event thread, read by scrapes: gmon's own
/// counters in swift-prometheus's registry, the per-site series in SiteSeries.
/// Counts are added up per event in plain integers and published after each drain of
/// the ring buffer (`publish()`, every ≤ 20 ms): atomics per event were 8% of gmon's
/// CPU (perf), and no scrape comes more often than that.
public final class GoroutineMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    let exe: String
    /// Goroutines per site and status from periodic snapshots (--snapshot-interval).
    public let states: GoroutineStates
    /// The exe label of each watched executable's sites (the first one's is `exe`).
    public var executableNames: [ExecutableID: String] = [:]
    /// With --all: each site's owner labels (exe, container_id, pod, namespace), by the
    /// executable number its sites carry (one per executable and container).
    public var executableLabels: [ExecutableID: [(String, String)]] = [:]
    let maxSites: Int

    /// Per-site series, kept and rendered by gmon (SiteSeries says why).
    let series = SiteSeries(bounds: GoroutineMetrics.lifetimeBuckets)
    typealias Site = SiteSeries.Series
    /// Tracker site index → metrics (sites past --max-sites share "other").
    private var sites: [Site?] = []
    /// One series per label set: tracker sites whose stacks differ only below the frames the
    /// labels show share it (counts add up; the oldest age is the oldest of them all).
    private var byLabels: [[String]: Site] = [:]
    private var other: Site?
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
    let stacksNotKept: Counter
    var stacksNotKeptSeen: UInt64 = 0
    var logLinesDroppedSeen: UInt64 = 0
    var lostCounters: [String: Counter] = [:]
    var lostSeen: [String: UInt64] = [:]

    /// The exposition: the registry's families, then the per-site families.
    public func render(openMetrics: Bool) -> [UInt8] {
        // The registry's few families go through the text conversion; the per-site families
        // (all but a few lines of a large scrape) are written in the wanted format directly.
        var text = Exposition.sortedFamilies(registry.emitToBuffer())
        if openMetrics { text = Exposition.toOpenMetrics(text) }
        series.render(into: &text, openMetrics: openMetrics)
        states.render(into: &text, openMetrics: openMetrics)
        ProcessMetrics.render(into: &text, openMetrics: openMetrics)
        if openMetrics { text += "# EOF\n".utf8 }
        return text
    }

    /// `snapshots`: the per-status gauges of periodic snapshots are served.
    /// Frames of the creator's stack in labels past the go statement's (`--stack-labels`).
    let stackLabels: Int
    public static let defaultStackLabels = 2

    /// `snapshots`: the per-status gauges of periodic snapshots are served.
    /// gmon's own families carry `exe` when it watches one executable; with --all (`exe` empty)
    /// they count for the whole agent and carry none.
    public init(exe: String, maxSites: Int, version: String, goVersion: String, snapshots: Bool = false, stackLabels: Int = GoroutineMetrics.defaultStackLabels) {
        self.exe = exe
        self.stackLabels = max(0, stackLabels)
        let own: [(String, String)] = exe.isEmpty ? [] : [("exe", exe)]
        states = GoroutineStates(enabled: snapshots)
        self.maxSites = maxSites
        let r = registry
        eventsCreate = r.makeCounter(name: "gmon_events_total", labels: own + [("type", "create")], help: "Events received from the kernel.")
        eventsExit = r.makeCounter(name: "gmon_events_total", labels: own + [("type", "exit")], help: "Events received from the kernel.")
        eventsProcessExit = r.makeCounter(name: "gmon_events_total", labels: own + [("type", "process_exit")], help: "Events received from the kernel.")
        unpaired = r.makeCounter(name: "gmon_exits_unpaired_total", labels: own + [("reason", "created_before_attach")],
                                 help: "Exits without a creation: of goroutines created before gmon attached, or whose creation was lost.")
        unpairedCreationLost = r.makeCounter(name: "gmon_exits_unpaired_total", labels: own + [("reason", "creation_lost")],
                                             help: "Exits without a creation: of goroutines created before gmon attached, or whose creation was lost.")
        unpairedCreationLost.increment(by: Int64(0))
        processes = r.makeGauge(name: "gmon_processes_traced", labels: own, help: "Processes of the executable with goroutine events.")
        folded = r.makeCounter(name: "gmon_sites_folded_total", labels: own,
                               help: "Creation sites beyond --max-sites, counted under created_by=\"other\".")
        r.makeGauge(name: "gmon_build_info", labels: [("version", version), ("go_versions", goVersion)],
                    help: "gmon's version and the Go releases of the watched executables.").set(to: Double(1))
        logLinesDropped = r.makeCounter(name: "gmon_log_lines_dropped_total", labels: own,
                                        help: "Log lines not written: stdout's reader was too slow, or writing failed.")
        logLinesDropped.increment(by: Int64(0))
        stacksNotKept = r.makeCounter(name: "gmon_stacks_not_kept_total", labels: own,
                                      help: "New creation stacks beyond --max-stacks, counted under their function and created_by only.")
        stacksNotKept.increment(by: Int64(0))
        for reason in ["ringbuf_full", "read_failed", "stack_failed", "process_table_full", "undecodable", "scratch_busy"] {
            let c = r.makeCounter(name: "gmon_events_lost_total", labels: own + [("reason", reason)], help: "Events gmon could not deliver, by reason.")
            lostCounters[reason] = c
            c.increment(by: Int64(0))
        }
    }

    /// `stack_N` labels: the creator's stack, innermost first, `stackLabels` frames past the
    /// go statement's own. `stack_0` is that frame, which `created_by` already names: it is
    /// left out then (a note in its place, "created before gmon attached", stays), as is
    /// runtime.goexit, which ends every stack and tells nothing.
    func labels(_ s: CreationSite) -> [(String, String)] {
        var l = executableLabels[s.executable] ?? [("exe", executableNames[s.executable] ?? exe)]
        let createdBy = s.createdBy.description
        l += [("function", s.function), ("created_by", createdBy)]
        for (i, f) in s.stack.prefix(stackLabels + 1).enumerated() {
            if i == 0 && f.description == createdBy { continue }
            if f.function == "runtime.goexit" { continue }
            l.append(("stack_\(i)", f.description))
        }
        return l
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
            m = series.make(l)
            byLabels[key] = m
        } else {
            m = otherSite()
        }
        sites[i] = m
        return m
    }

    /// Removes the series of these executables' sites (their processes are gone: the grace
    /// period is the caller's). Sites of them seen again get new series.
    public func removeSeries(of gone: Set<ExecutableID>, tracker: Tracker) {
        var ids = Set<ObjectIdentifier>()
        for (i, st) in tracker.sites.enumerated() where gone.contains(st.site.executable) && i < sites.count {
            if let m = sites[i], m !== other { ids.insert(ObjectIdentifier(m)) }
            sites[i] = nil
        }
        guard !ids.isEmpty else { return }
        byLabels = byLabels.filter { !ids.contains(ObjectIdentifier($0.value)) }
        series.remove(ids)
        for g in gone { executableLabels[g] = nil }
    }

    /// The series sites past --max-sites share.
    private func otherSite() -> Site {
        if other == nil { other = series.make([("exe", exe), ("function", "other"), ("created_by", "other")]) }
        folded.increment()
        return other!
    }

    public func created(site index: Int32, _ s: @autoclosure () -> CreationSite) {
        pendingCreateEvents += 1
        series.created(site(index, s()))
    }

    public func exited(site index: Int32, _ s: @autoclosure () -> CreationSite, lifetimeNs: UInt64) {
        pendingExitEvents += 1
        series.exited(site(index, s()), lifetimeSeconds: Double(lifetimeNs) / 1e9)
    }

    /// A goroutine that existed when gmon attached (read from memory): live, not created.
    public func preexisting(site index: Int32, _ s: @autoclosure () -> CreationSite) {
        series.closed(site(index, s()), -1)
    }

    /// The exit of a goroutine that existed when gmon attached: counted, its lifetime unknown.
    public func exitedPreexisting(site index: Int32, _ s: @autoclosure () -> CreationSite) {
        pendingExitEvents += 1
        series.exitedWithoutLifetime(site(index, s()))
    }

    /// A goroutine of this site was found live on a reused g: its exit was lost (and
    /// counted as lost by the kernel side); it is no longer live.
    public func exitLost(site index: Int32, _ s: @autoclosure () -> CreationSite) {
        series.closed(site(index, s()), 1)
    }

    public func unpairedExit(creationLost: Bool = false) {
        pendingExitEvents += 1
        (creationLost ? unpairedCreationLost : unpaired).increment()
    }

    /// Makes the counts added since the last call visible to scrapes.
    public func publish() {
        if pendingCreateEvents > 0 { eventsCreate.increment(by: pendingCreateEvents); pendingCreateEvents = 0 }
        if pendingExitEvents > 0 { eventsExit.increment(by: pendingExitEvents); pendingExitEvents = 0 }
        series.publish()
    }

    /// A process ended: its live goroutines are gone (they did not exit, so no lifetime is recorded).
    public func processEnded(tracker: Tracker, closedPerSite: [Int32: Int]) {
        eventsProcessExit.increment()
        for (s, n) in closedPerSite { series.closed(site(s, tracker.sites[Int(s)].site), Int64(n)) }
        publish()
    }

    /// Refreshes the gauges that are derived from tracker state (ages, process count) and the loss counters.
    public func refresh(tracker: Tracker, nowNs: UInt64, losses: [String: UInt64], logLinesDropped dropped: UInt64 = 0) {
        if dropped > logLinesDroppedSeen { logLinesDropped.increment(by: Int64(dropped - logLinesDroppedSeen)); logLinesDroppedSeen = dropped }
        processes.set(Double(tracker.processesSeen.count))
        if tracker.stacksNotKept > stacksNotKeptSeen { stacksNotKept.increment(by: Int64(tracker.stacksNotKept - stacksNotKeptSeen)); stacksNotKeptSeen = tracker.stacksNotKept }
        let oldest = tracker.oldestLiveCreation()
        // Per series, not per site: several sites may share one, and the oldest of them all counts.
        var oldestPerSeries: [ObjectIdentifier: (Site, UInt64)] = [:]
        for (i, st) in tracker.sites.enumerated() where !st.isFree {
            let m = site(Int32(i), st.site)
            let t = oldest[Int32(i)] ?? .max
            let id = ObjectIdentifier(m)
            if let (_, was) = oldestPerSeries[id], was <= t { continue }
            oldestPerSeries[id] = (m, t)
        }
        series.setOldest(oldestPerSeries.values.map { ($0.0, $0.1 == .max ? 0 : Double(nowNs &- $0.1) / 1e9) })
        for (reason, total) in losses {
            let delta = total &- (lostSeen[reason] ?? 0)
            if delta > 0, delta < 1 << 62 { lostCounters[reason]?.increment(by: Int64(delta)) }
            lostSeen[reason] = total
        }
    }
}
