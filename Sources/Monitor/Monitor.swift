import CGmonEvents
import GmonExporters
import GmonMetrics
import GmonModel
import GmonProbes
import GoroutineTracker
import LibBPF
import ProcFS

/// The event loop around the per-event path: drains the probes' rings on a tick and on
/// wake-ups, refreshes the metrics, watches for the end (a stop request, a deadline, the
/// watched process gone, the log's reader gone) and stops in the right order. gmon's
/// watch command runs it; other commands can.
public final class Monitor {
    public struct Options: Sendable {
        /// Stop after this many seconds.
        public var duration: Double?
        /// The one process watched: stop when it is gone.
        public var pid: Int32?
        /// At most this many bytes of records wait in gmon's memory (bursts of new call paths).
        public var bufferBytes: Int

        public init(duration: Double? = nil, pid: Int32? = nil, bufferBytes: Int = 32 << 20) {
            self.duration = duration; self.pid = pid; self.bufferBytes = bufferBytes
        }
    }

    /// How it ended, for the summary.
    public struct Outcome {
        public var losses: Summary.Losses
        /// Records stamped after the stop instant, left out.
        public var afterStop: Int
        /// Why it stopped, for the user (nil: asked to stop, or the duration ran out).
        public var reason: String?
    }

    let session: ProbeSession
    let pipeline: EventPipeline
    let metrics: GoroutineMetrics?
    let log: LogWriter
    let options: Options
    let stop: StopToken
    /// Called about once a second on the loop's thread (a place for checks of the caller's).
    public var everySecond: () -> Void = {}
    /// Called after each drain of the rings on the loop's thread (the agent attaches to new
    /// programs there: their events wait in the rings meanwhile).
    public var afterDrain: () -> Void = {}
    /// Called once the loop has ended, before the probes are detached.
    public var willDetach: () -> Void = {}
    /// Set (from a signal handler: SIGUSR1) to have `summary` called on the loop's thread,
    /// with the counts so far, without stopping.
    public var summaryRequest: StopToken?
    public var summary: (Summary.Losses) -> Void = { _ in }
    /// gmon's own warnings (stderr): events begin to be lost (LossWarning).
    public var warn: (String) -> Void = { _ in }

    public init(session: ProbeSession, pipeline: EventPipeline, metrics: GoroutineMetrics?, log: LogWriter, options: Options, stop: StopToken) {
        self.session = session; self.pipeline = pipeline; self.metrics = metrics; self.log = log
        self.options = options; self.stop = stop
    }

    /// Runs until the end, then detaches the probes and processes what was stamped before.
    public func run() throws -> Outcome {
        let rings = session.rings
        let pipeline = self.pipeline
        // Records of different CPUs' rings are handed out in timestamp order, up to a time
        // taken before each drain (CPURings says why that keeps every goroutine's events in
        // order). They are processed straight from the rings while that keeps up; once a drain
        // has taken 250 µs (a burst of new stacks, each symbolized), the rest is copied into
        // `waiting` (RecordQueue says why) and processed from there, the rings copied again
        // every 250 µs of work. Copying every record cost ~0.1 µs per event (make bench).
        let waiting = RecordQueue(maxBytes: options.bufferBytes)
        var pulledBefore: UInt64 = 0
        var lossWarning = LossWarning(ringBytes: rings.bytesPerRing)
        // A long backlog: scrapes see the counts so far (every 20 ms of it).
        let metricsOn = metrics != nil
        var lastPublish: UInt64 = 0
        func publishIfDue(_ now: UInt64) {
            if metricsOn && now &- lastPublish >= 20_000_000 { pipeline.publish(); lastPublish = now }
        }
        func pull(before limit: UInt64) {
            pulledBefore = limit
            // What a warning about losses says: how late this read is, how full the rings are.
            let t = monotonicNow()
            lossWarning.read(atNs: t, fullest: rings.fullest())
            var copying = !waiting.isEmpty, n = 0
            let start = copying ? 0 : t
            rings.drain(before: limit) { r in
                if !copying {
                    pipeline.handle(r)
                    n += 1
                    if n & 15 == 0 && monotonicNow() &- start >= 250_000 { copying = true }
                    return
                }
                if !waiting.append(r) {
                    // Full: what waits goes first, then this record (order kept); the rings
                    // fill meanwhile, and the kernel counts what it cannot deliver. That is
                    // up to --buffer-mb of records (seconds for a debug build under load).
                    var k = 0
                    while waiting.pop({ pipeline.handle($0) }) {
                        k += 1
                        if k & 1023 == 0 { publishIfDue(monotonicNow()) }
                    }
                    pipeline.handle(r)
                }
            }
        }
        func drain(everything: Bool = false) {
            let began = monotonicNow()
            pull(before: everything ? UInt64.max : began)
            var n = 0, complete = true
            while waiting.pop({ pipeline.handle($0) }) {
                n += 1
                // The clock is read every 16 records; a record with a new stack is slow
                // (symbolized), and the rings must not wait long for the next copy.
                if n & 15 == 0, !everything {
                    let now = monotonicNow()
                    if now &- pulledBefore >= 250_000 { pull(before: now) }
                    publishIfDue(now)
                    // A backlog that outlasts 100 ms goes on after the loop's own work (a stop
                    // request, the per-second checks and warnings): under a load gmon cannot
                    // keep up with, it would otherwise never come back to them.
                    if now &- began >= 100_000_000 { complete = false; break }
                }
            }
            // Unfinished: records stamped before the limit still wait, so no held process exit is due.
            pipeline.flush(eventTimeLimit: complete ? pulledBefore : 0)
        }

        let deadline = options.duration.map { monotonicNow() &+ UInt64($0 * 1e9) }
        var lastSecond: UInt64 = 0
        var reason: String?
        while !stop.isRequested && !log.broken {
            // The BPF side wakes us only for a backlog or a process exit; drain on a 20 ms tick
            // (at once while a backlog waits).
            try rings.wait(timeoutMs: waiting.isEmpty ? 20 : 0)
            drain()
            afterDrain()
            if summaryRequest?.take() == true { summary(losses()) }
            let now = monotonicNow()
            if now &- lastSecond >= 1_000_000_000 {
                // The age gauges walk every live goroutine: not for metrics nobody serves.
                let lost = losses().byReason
                metrics?.refresh(tracker: pipeline.tracker, nowNs: now, losses: lost, logLinesDropped: log.droppedLines)
                if let w = lossWarning.check(losses: lost, nowNs: now, fullest: rings.fullest()) { warn(w) }
                everySecond()
                lastSecond = now
            }
            if let d = deadline, now >= d { break }
            if let p = options.pid, ProcFS.processIsGone(p) {
                drain(everything: true)
                reason = "process \(p) exited"
                break
            }
        }
        // Watching ends at one instant for both probes: the events stamped before it are
        // complete (a goroutine created before it and exiting after is live, as it was), and
        // those the probes sent while being detached are left out, counted. Detaching one probe
        // before the other would show creations without exits (or exits without creations,
        // counted as goroutines created before gmon attached) for the time between the two.
        willDetach()
        let stopTime = monotonicNow()
        session.detach()
        // Every record stamped before the stop is processed (at most the buffer waits).
        pull(before: stopTime)
        while waiting.pop({ pipeline.handle($0) }) {}
        pipeline.flush()
        var afterStop = 0
        rings.drain(before: .max) { _ in afterStop += 1 }
        // A reader that does not read gets half a second for what is queued: gmon stops anyway.
        log.finish(within: 0.5)
        return Outcome(losses: losses(), afterStop: afterStop, reason: reason)
    }

    /// What was lost so far: the kernel side's counters, undecodable records, unwritten lines.
    public func losses() -> Summary.Losses {
        let c = session.counters()
        var l = Summary.Losses(ringBufferFull: (c(GMON_LOST_CREATE_RINGBUF), c(GMON_LOST_EXIT_RINGBUF), c(GMON_LOST_PROC_RINGBUF)),
                               failedReads: c(GMON_FAILED_READ), failedStacks: c(GMON_FAILED_STACK),
                               processMapFull: c(GMON_TGID_MAP_FULL), undecodable: pipeline.undecodable)
        l.lostCreationsUntracked = c(GMON_LOST_CREATE_UNTRACKED)
        l.programStarts = c(GMON_LOST_EXEC_RINGBUF)
        l.scratchBusy = c(GMON_LOST_CREATE_BUSY)
        l.logLinesDropped = log.droppedLines
        return l
    }
}
