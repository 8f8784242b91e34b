import GmonBPF
import GmonExporters
import GmonMetrics
import GoroutineTracker

/// The per-event path, in the order data flows: a ring-buffer record → decoder →
/// tracker → exporters (metrics, log lines). One thread runs it; `make bench` measures
/// it on its own ("pipeline" micro-benchmark).
///
/// Sites go to the exporters as autoclosures: they render a site once and then only
/// need its index.
public final class EventPipeline {
    public let tracker: Tracker
    let decoder = EventDecoder()
    /// nil with --no-metrics: nothing would read them.
    let metrics: GoroutineMetrics?
    let log: LogWriter
    /// Records too short for their type (never produced by gmon's program).
    public private(set) var undecodable: UInt64 = 0

    public init(tracker: Tracker, metrics: GoroutineMetrics?, log: LogWriter) {
        self.tracker = tracker; self.metrics = metrics; self.log = log
    }

    public func handle(_ raw: UnsafeRawBufferPointer) {
        guard let event = decoder.decode(raw) else { undecodable += 1; return }
        switch tracker.handle(event) {
        case .created(let s, let exitLostOf):
            if let metrics {
                metrics.created(site: s, tracker.sites[Int(s)].site)
                if let l = exitLostOf { metrics.exitLost(site: l, tracker.sites[Int(l)].site) }
            }
            if case .create(let c) = event { log.created(c, site: tracker.sites[Int(s)].site, siteIndex: s) }
        case .exited(let s, let lifetime):
            metrics?.exited(site: s, tracker.sites[Int(s)].site, lifetimeNs: lifetime)
            if case .exit(let p, _, let goid, let t) = event {
                log.exited(pid: p, goid: goid, timeNs: t, lifetimeNs: lifetime, site: tracker.sites[Int(s)].site, siteIndex: s)
            }
        case .unpairedExit:
            metrics?.unpairedExit()
            if case .exit(let p, _, let goid, let t) = event { log.exited(pid: p, goid: goid, timeNs: t, lifetimeNs: nil, site: nil) }
        case .processEnded(let p, let closed):
            metrics?.processEnded(tracker: tracker, closedPerSite: closed)
            if case .processExit(_, let t) = event { log.processExited(pid: p, timeNs: t, liveGoroutines: closed.values.reduce(0, +)) }
        }
    }

    /// After each drain of the ring buffer: lines to their file, counts to scrapes.
    public func flush() {
        log.flush()
        metrics?.publish()
    }
}
