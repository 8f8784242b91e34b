import GmonModel
import GmonProbes
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

    /// How long (kernel time) a process's exit waits before its live goroutines are
    /// closed. exit_group stops the other threads asynchronously: one of them can still
    /// pass the exit probe a few µs after the leader's exit was reported, and that
    /// goroutine did exit (seen about once per 100 short-lived processes of make bench's
    /// program: an exit counted as unpaired, its goroutine as ended with the process).
    public static let processExitGraceNs: UInt64 = 10_000_000
    /// Process exits not yet applied, oldest first.
    /// An exec ends the old image's goroutines the same way, after the same grace.
    private var heldProcessExits: [HeldExit] = []
    private struct HeldExit { let pid: UInt32, timeNs: UInt64, exec: Bool }

    public init(tracker: Tracker, metrics: GoroutineMetrics?, log: LogWriter) {
        self.tracker = tracker; self.metrics = metrics; self.log = log
    }

    /// Processes that ran exec (--all), in the order reported: the agent looks at them after the drain.
    public private(set) var startedPrograms: [UInt32] = []
    public func takeStartedPrograms() -> [UInt32] {
        defer { startedPrograms.removeAll(keepingCapacity: true) }
        return startedPrograms
    }

    /// `gmon --all` with filters: whether a process's goroutine events count (nil: all do).
    /// Probes are on files: a filtered-out container of the same image as a watched one
    /// fires them too.
    public var admitsProcess: ((UInt32) -> Bool)?
    /// Goroutine events of processes the filters leave out (not losses).
    public private(set) var filteredOut: UInt64 = 0

    public func handle(_ raw: UnsafeRawBufferPointer) {
        if let pid = decoder.programStarted(raw) { startedPrograms.append(pid); return }
        guard let event = decoder.decode(raw) else { undecodable += 1; return }
        if let admits = admitsProcess {
            switch event {
            case .create(let c) where !admits(c.pid): filteredOut += 1; return
            case .exit(let p, _, _, _, _) where !admits(p): filteredOut += 1; return
            default: break
            }
        }
        switch event {
        case .processExit(let pid, let t):
            heldProcessExits.append(HeldExit(pid: pid, timeNs: t, exec: false))
            return
        case .processExec(let pid, let t):
            heldProcessExits.append(HeldExit(pid: pid, timeNs: t, exec: true))
            return
        case .create(let c) where !heldProcessExits.isEmpty && heldProcessExits.contains(where: { $0.pid == c.pid }):
            // A creation in a pid whose exit is held is a new process reusing the pid
            // (reuse comes after the exit): the old one ends first.
            applyHeldProcessExits { $0.pid == c.pid }
        default: break
        }
        dispatch(event)
    }

    private func applyHeldProcessExits(where due: (HeldExit) -> Bool) {
        let (apply, keep) = (heldProcessExits.filter(due), heldProcessExits.filter { !due($0) })
        heldProcessExits = keep
        for h in apply { dispatch(h.exec ? .processExec(pid: h.pid, timeNs: h.timeNs) : .processExit(pid: h.pid, timeNs: h.timeNs)) }
    }

    private func dispatch(_ event: Event) {
        switch tracker.handle(event) {
        case .created(let s, let exitLostOf, let replacedSeedOf):
            if let metrics {
                metrics.created(site: s, tracker.sites[Int(s)].site)
                if let l = exitLostOf { metrics.exitLost(site: l, tracker.sites[Int(l)].site) }
                if let r = replacedSeedOf { metrics.exitLost(site: r, tracker.sites[Int(r)].site) }
            }
            if case .create(let c) = event { log.created(c, site: tracker.sites[Int(s)].site, siteIndex: s) }
        case .exited(let s, let lifetime):
            metrics?.exited(site: s, tracker.sites[Int(s)].site, lifetimeNs: lifetime)
            if case .exit(let p, _, let goid, let t, _) = event {
                log.exited(pid: p, goid: goid, timeNs: t, lifetimeNs: lifetime, site: tracker.sites[Int(s)].site, siteIndex: s)
            }
        case .exitedPreexisting(let s):
            metrics?.exitedPreexisting(site: s, tracker.sites[Int(s)].site)
            if case .exit(let p, _, let goid, let t, _) = event {
                log.exited(pid: p, goid: goid, timeNs: t, lifetimeNs: nil, site: tracker.sites[Int(s)].site, siteIndex: s)
            }
        case .unpairedExit(let creationLost):
            metrics?.unpairedExit(creationLost: creationLost)
            if case .exit(let p, _, let goid, let t, _) = event {
                log.exited(pid: p, goid: goid, timeNs: t, lifetimeNs: nil, site: nil, creationLost: creationLost)
            }
        case .processEnded(let p, let closed):
            metrics?.processEnded(tracker: tracker, closedPerSite: closed)
            switch event {
            case .processExit(_, let t): log.processExited(pid: p, timeNs: t, liveGoroutines: closed.values.reduce(0, +))
            case .processExec(_, let t): log.processExited(pid: p, timeNs: t, liveGoroutines: closed.values.reduce(0, +), exec: true)
            default: break
            }
        }
    }

    /// Goroutines that existed when gmon attached, read from `pid`'s memory: live from the
    /// first scrape. Before any event is handled (the snapshot is taken after the probes
    /// are attached; their events wait in the rings meanwhile).
    public func seed(pid: UInt32, _ g: Goroutine, site: CreationSite) {
        guard let s = tracker.seed(pid: pid, g: g.gAddress, seenAtNs: g.seenAtNs, site: site) else { return }
        metrics?.preexisting(site: s, tracker.sites[Int(s)].site)
    }

    /// Makes the counts so far visible to scrapes (during a long backlog).
    public func publish() { metrics?.publish() }

    /// After each drain of the ring buffers, with the drain's time limit (every record
    /// stamped before it was handed out; .max: the last drain): held process exits that
    /// are due are applied, lines go to their file, counts to scrapes.
    public func flush(eventTimeLimit limit: UInt64 = .max) {
        if !heldProcessExits.isEmpty {
            applyHeldProcessExits { limit == .max || $0.timeNs &+ Self.processExitGraceNs <= limit }
        }
        log.flush()
        metrics?.publish()
    }
}
