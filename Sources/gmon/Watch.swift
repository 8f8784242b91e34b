import ArgumentParser
import AttachPoints
import CGmonEvents
import Foundation
import GmonBPF
import GmonExporters
import GmonMetrics
import GmonPipeline
import GoBinary
import GoroutineTracker
import LibBPF
import ProcFS
import Symbolization

/// Set by the signal handler; the event loop polls it.
nonisolated(unsafe) var stopRequested: sig_atomic_t = 0

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch goroutines being created and exiting in every process of a Go executable (default command).")

    @Option(name: [.customLong("path"), .customLong("path", withSingleDash: true)],
            help: "Go executable to watch: every running and future process of it.")
    var path: String?

    @Option(name: [.customLong("pid"), .customLong("pid", withSingleDash: true)], help: "Watch only this process.")
    var pid: Int32?

    @Option(name: [.customLong("log-level"), .customLong("level", withSingleDash: true)],
            help: "debug (also exits), info (creations), warn, error.")
    var logLevel: String = "info"

    @Option(name: .customLong("log-format"), help: "logfmt or json.")
    var logFormat: String = "logfmt"

    @Option(name: .customLong("duration"), help: "Stop after this many seconds (default: until SIGINT/SIGTERM).")
    var duration: Double?

    @Option(name: .customLong("metrics-address"), help: "Serve Prometheus metrics here (HOST:PORT; 0.0.0.0 binds every interface).")
    var metricsAddress: String = "127.0.0.1:5500"

    @Option(name: [.customLong("metrics-port"), .customLong("metrics", withSingleDash: true)], help: "Serve metrics on 127.0.0.1:PORT.")
    var metricsPort: Int?

    @Flag(name: .customLong("no-metrics"), help: "Do not serve metrics.")
    var noMetrics = false

    @Option(name: .customLong("max-sites"), help: "At most this many creation sites get their own series; the rest share created_by=\"other\".")
    var maxSites: Int = 1000

    @Option(name: .customLong("ring-buffer-mb"),
            help: "Size of each CPU's kernel-to-gmon ring buffer in MiB (a power of two). Larger absorbs longer bursts; it is counted twice in gmon's RSS. Default: 16 MiB in all, 1 to 4 MiB per CPU.")
    var ringBufferMB: Int?

    /// 16 MiB of rings in all, 1 to 4 MiB per CPU. A burst of 60,000 goroutines from new call
    /// paths (~18 MB of records in ~55 ms) keeps both CPUs of a small machine busy, and gmon
    /// gets one only after milliseconds: two 1 MiB rings lost 4,000-11,000 of its events
    /// (release build), two 4 MiB rings none. A ring's memory is the kernel's from the start
    /// (and counted twice in RSS: its pages are mapped twice), so big machines get 1 MiB a CPU.
    static func defaultRingMB(cpus: Int) -> Int {
        var mb = 4
        while mb > 1 && mb * cpus > 16 { mb /= 2 }
        return mb
    }

    @Option(name: .customLong("max-stacks"),
            help: "At most this many distinct creation stacks are kept (~5 KB each); goroutines from further stacks count under their function and created_by.")
    var maxStacks: Int = 10_000

    @Option(name: .customLong("buffer-mb"),
            help: "At most this many MiB of events wait in gmon's memory to be processed (bursts of new call paths); taken only while needed.")
    var bufferMB: Int = 32

    @Flag(name: .customLong("no-stacks"), help: "Do not collect creator stacks (cheapest; stack labels stay empty).")
    var noStacks = false

    @Flag(name: .customLong("classic-probes"), help: "Probe where earlier tools do (uretprobe on runtime.newproc1, entry of runtime.goexit1): ~30x costlier, for comparison.")
    var classicProbes = false

    @Flag(name: .customLong("count-only"), help: .hidden)   // benchmarks: count probe hits, nothing else
    var countOnly = false

    @Flag(name: .customLong("deliver-only"), help: .hidden)   // benchmarks: an empty record per hit, counted and dropped
    var deliverOnly = false

    @Flag(name: .customLong("drop-in-user-space"), help: .hidden)   // benchmarks: gmon's BPF programs, records counted and dropped
    var dropInUserSpace = false

    // Tests: pause this long between loading the BPF programs and attaching the uprobes,
    // to signal gmon or end the watched process exactly during attach.
    @Option(name: .customLong("attach-pause-ms"), help: .hidden)
    var attachPauseMs: Int = 0

    @Flag(name: .customLong("version", withSingleDash: true), help: .hidden)
    var legacyVersion = false

    @OptionGroup var overrides: LayoutOverrides

    func validate() throws {
        if legacyVersion { return }
        guard path != nil || pid != nil else { throw ValidationError("give --path /path/to/go-binary or --pid N") }
        guard LogWriter.Level(name: logLevel) != nil else { throw ValidationError("--log-level \(logLevel): use debug, info, warn or error") }
        guard LogWriter.Format(rawValue: logFormat) != nil else { throw ValidationError("--log-format \(logFormat): use logfmt or json") }
        if let d = duration, !(d > 0 && d < 1e9) { throw ValidationError("--duration must be a positive number of seconds") }
        if let p = pid, p <= 0 { throw ValidationError("--pid \(p) is not a process id") }
        if let p = metricsPort, !(0...65535).contains(p) { throw ValidationError("--metrics-port \(p) is not a port number (0–65535)") }
        if !(1...1_000_000).contains(maxSites) { throw ValidationError("--max-sites must be between 1 and 1000000") }
        if !(1...65536).contains(bufferMB) { throw ValidationError("--buffer-mb \(bufferMB): use 1 to 65536") }
        if !(1...10_000_000).contains(maxStacks) { throw ValidationError("--max-stacks \(maxStacks): use 1 to 10000000") }
        if let mb = ringBufferMB, !(1...1024).contains(mb) || mb & (mb - 1) != 0 {
            throw ValidationError("--ring-buffer-mb \(mb): use a power of two from 1 to 1024")
        }
    }

    func run() throws {
        if legacyVersion { print("gmon \(GMon.version)"); return }
        // First: a signal during attach must end in a clean stop, not kill gmon half-attached.
        installSignalHandlers()
        try checkPrivileges()
        do { try KernelSupport.check() } catch let m as KernelSupport.Missing { throw CLIError(m.description) }
        let file = try openExecutable()
        let binary = file.displayPath
        // Parsed through the open file: the kernel later gets the same file (never a name to resolve again).
        let exe = try loadExecutable(file.kernelPath, shownAs: binary)
        let layout: RuntimeLayout
        do { layout = try overrides.layout(for: exe) } catch let e as GoBinaryError { throw CLIError("\(binary): \(e)") }
        let plan = try AttachPoints.plan(for: exe, classic: classicProbes)
        for w in plan.warnings { FileHandle.standardErrorLine("gmon: warning: \(w)") }

        let metrics = GoroutineMetrics(exe: (binary as NSString).lastPathComponent, maxSites: maxSites, version: GMon.version, goVersion: exe.goVersion)
        var server: MetricsServer?
        if !noMetrics {
            let (host, port) = try metricsPort.map { ("127.0.0.1", $0) } ?? parseListenAddress(metricsAddress)
            let s = MetricsServer(metrics: metrics)
            try s.start(host: host, port: port)
            server = s
        }
        let level = LogWriter.Level(name: logLevel)!   // validated
        let session: BPFSession
        do {
            // Only debug logs show an exit's goid; reading it costs the exiting thread a cache miss.
            session = try BPFSession(exe: exe, file: file, layout: layout, plan: plan, pid: pid, collectStacks: !noStacks,
                                     exitGoid: level == .debug,
                                     ringBufferBytes: UInt32(try ringBufferMB ?? Self.defaultRingMB(cpus: CPURings.possibleCPUs())) << 20,
                                     probes: countOnly ? .countOnly : deliverOnly ? .deliverOnly : .gmon,
                                     pauseBeforeUprobesMs: attachPauseMs)
        } catch is BPFSession.Interrupted {
            // Whatever was attached went with the session's links.
            FileHandle.standardErrorLine("gmon: stopped while attaching; nothing is left attached")
            server?.stop()
            return
        }
        let log = LogWriter(fd: 1, format: LogWriter.Format(rawValue: logFormat)!, level: level)
        // Where the creation probes fire tells a PIE's load address (not a uretprobe: it fires on return).
        let resolver = GoSiteResolver(exe: exe, file: file.identity,
                                      creationProbeAddresses: plan.creation.isReturnProbe ? [] : ([plan.creation] + plan.otherCreations).map(\.address))
        let tracker = Tracker(resolver: resolver, gStride: layout.gSizeFloor, maxStacks: maxStacks)
        let pipeline = EventPipeline(tracker: tracker, metrics: server == nil ? nil : metrics, log: log)
        var delivered: UInt64 = 0
        // Read once: a property-wrapped flag read per event instantiates generic metadata (perf).
        let dropEveryRecord = deliverOnly || dropInUserSpace
        let metricsOn = server != nil
        let rings = session.rings
        // Records of different CPUs' rings are handed out in timestamp order, up to a time
        // taken before each drain (CPURings says why that keeps every goroutine's events in
        // order). They are processed straight from the rings while that keeps up; once a drain
        // has taken 250 µs (a burst of new stacks, each symbolized), the rest is copied into
        // `waiting` (RecordQueue says why) and processed from there, the rings copied again
        // every 250 µs of work. Copying every record cost ~0.1 µs per event (make bench).
        let waiting = RecordQueue(maxBytes: bufferMB << 20)
        var pulledBefore: UInt64 = 0
        func pull(before limit: UInt64) {
            pulledBefore = limit
            var copying = !waiting.isEmpty, n = 0
            let start = copying ? 0 : monotonicNow()
            rings.drain(before: limit) { r in
                if !copying {
                    pipeline.handle(r)
                    n += 1
                    if n & 15 == 0 && monotonicNow() &- start >= 250_000 { copying = true }
                    return
                }
                if !waiting.append(r) {
                    // Full: what waits goes first, then this record (order kept); the rings
                    // fill meanwhile, and the kernel counts what it cannot deliver.
                    while waiting.pop({ pipeline.handle($0) }) {}
                    pipeline.handle(r)
                }
            }
        }
        func drain(everything: Bool = false) {
            if dropEveryRecord {
                rings.drain(before: .max) { _ in delivered += 1 }
                return
            }
            pull(before: everything ? UInt64.max : monotonicNow())
            var n = 0, lastPublish = pulledBefore
            while waiting.pop({ pipeline.handle($0) }) {
                n += 1
                // The clock is read every 16 records; a record with a new stack is slow
                // (symbolized), and the rings must not wait long for the next copy.
                if n & 15 == 0, !everything {
                    let now = monotonicNow()
                    if now &- pulledBefore >= 250_000 { pull(before: now) }
                    // A long backlog: scrapes see the counts so far.
                    if metricsOn && now &- lastPublish >= 20_000_000 { pipeline.publish(); lastPublish = now }
                }
            }
            pipeline.flush(eventTimeLimit: pulledBefore)
        }

        server?.isAttached = true
        let others = plan.otherCreations.map(\.function) + plan.otherExits.map(\.function)
        let otherNote = others.isEmpty ? "" : " (also in \(others.joined(separator: ", ")))"
        let metricsNote = server.map { "; metrics on http://\($0.boundAddress)/metrics" } ?? ""
        FileHandle.standardErrorLine("gmon: watching \(pid.map { "process \($0) of " } ?? "")\(binary) (\(exe.goVersion)); creation probe at \(plan.creation.kind.rawValue) site in \(plan.creation.function), exit probe at \(plan.exit.kind.rawValue) site in \(plan.exit.function)\(otherNote)\(metricsNote); stop with Ctrl-C")
        let deadline = duration.map { Date().addingTimeInterval($0) }
        var lastRefresh = Date.distantPast
        var warnedReplaced = false
        while stopRequested == 0 && !log.broken {
            // The BPF side wakes us only for a backlog or a process exit; drain on a 20 ms tick.
            try rings.wait(timeoutMs: 20)
            drain()
            if Date().timeIntervalSince(lastRefresh) >= 1 {
                // The age gauges walk every live goroutine: not for metrics nobody serves.
                if metricsOn {
                    metrics.refresh(tracker: tracker, nowNs: monotonicNow(), losses: session.losses(undecodable: pipeline.undecodable).byReason,
                                    logLinesDropped: log.droppedLines)
                }
                lastRefresh = Date()
                // A deployment replaces the file: the probes stay on the old inode, so say so.
                if !warnedReplaced, pid == nil, FileIdentity(path: binary) != file.identity {
                    warnedReplaced = true
                    FileHandle.standardErrorLine("gmon: warning: \(binary) was replaced on disk; processes already running are still watched, processes started from the new file are not: restart gmon to watch them")
                }
            }
            if let d = deadline, Date() >= d { break }
            if let p = pid, ProcFS.processIsGone(p) {
                drain(everything: true)
                FileHandle.standardErrorLine("gmon: process \(p) exited")
                break
            }
        }
        // Watching ends at one instant for both probes: the events stamped before it are
        // complete (a goroutine created before it and exiting after is live, as it was), and
        // those the probes sent while being detached are left out, counted. Detaching one probe
        // before the other would show creations without exits (or exits without creations,
        // counted as goroutines created before gmon attached) for the time between the two.
        server?.isAttached = false
        let stopTime = monotonicNow()
        session.detach()
        var afterStop = 0
        if dropEveryRecord {
            drain(everything: true)
        } else {
            // Every record stamped before the stop is processed (at most --buffer-mb waits).
            pull(before: stopTime)
            while waiting.pop({ pipeline.handle($0) }) {}
            pipeline.flush()
            rings.drain(before: .max) { _ in afterStop += 1 }
        }
        // A reader that does not read gets half a second for what is queued: gmon stops anyway.
        log.finish(within: 0.5)
        let c = session.counters()
        var losses = session.losses(undecodable: pipeline.undecodable, counters: c)
        losses.logLinesDropped = log.droppedLines
        FileHandle.standardErrorLine(Summary.render(tracker: tracker, losses: losses))
        if afterStop > 0 { FileHandle.standardErrorLine("gmon: \(afterStop) events stamped after gmon stopped watching were left out") }
        if dropEveryRecord { FileHandle.standardErrorLine("gmon: records delivered and dropped: \(delivered)") }
        if countOnly {
            FileHandle.standardErrorLine("gmon: count-only: creations \(c[Int(GMON_COUNT_ONLY_CREATE.rawValue)]) exits \(c[Int(GMON_COUNT_ONLY_EXIT.rawValue)])")
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu = { (t: timeval) in Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        FileHandle.standardErrorLine("gmon: own cost: user \(cpu(usage.ru_utime)) s, system \(cpu(usage.ru_stime)) s, peak RSS \(usage.ru_maxrss / 1024) MB")
        server?.stop()
        // Logs are gmon's main output: when they could not be written, say why and fail.
        if log.writeError > 0 {
            throw CLIError("writing the logs to stdout failed: \(String(cString: strerror(log.writeError))); gmon stopped (\(log.droppedLines) lines not written)")
        }
    }

    func checkPrivileges() throws {
        if geteuid() == 0 { return }
        // CAP_PERFMON is 38, CAP_BPF is 39.
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let capEff = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
            .flatMap { UInt64($0.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) } ?? 0
        if capEff & (1 << 38) == 0 || capEff & (1 << 39) == 0 {
            throw CLIError("gmon needs root, or the capabilities CAP_BPF and CAP_PERFMON, to load BPF programs and attach uprobes: run it with sudo")
        }
    }

    /// The executable to watch, opened once: --path as given (never looked up on $PATH), or
    /// the file --pid runs, through /proc/PID/exe (its own file, whatever its mount namespace).
    /// Both given: they must be the same file.
    func openExecutable() throws -> OpenedExecutable {
        do {
            guard let p = pid else { return try OpenedExecutable(path: path!) }
            guard !ProcFS.processIsGone(p) else { throw CLIError("no process with pid \(p): is it still running?") }
            let running = try OpenedExecutable(pid: p)
            if let path {
                let given = try OpenedExecutable(path: path)
                guard given.identity == running.identity else {
                    throw CLIError("process \(p) runs \(running.displayPath), not \(given.displayPath); drop --path or pass the right --pid")
                }
            }
            return running
        } catch let f as OpenedExecutable.Failure {
            throw CLIError(f.description)
        }
    }

    func installSignalHandlers() {
        signal(SIGPIPE, SIG_IGN)
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGINT, SIGTERM, SIGHUP] {
            signal(s) { _ in stopRequested = 1 }
            sigaddset(&set, s)
        }
        // A parent may have started gmon with these blocked (masks are inherited).
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}

/// The loaded BPF object and its links for one watched executable.
final class BPFSession {
    /// A stop signal arrived while attaching.
    struct Interrupted: Error {}

    /// What the uprobes run: gmon's programs, or the benchmarks' floors.
    enum Probes { case gmon, countOnly, deliverOnly }

    let object: BPFObject
    /// Process exit and exec tracepoints; the exit and creation uprobes.
    private var processLinks: [BPFLink] = []
    private var exitLinks: [BPFLink] = []
    private var createLinks: [BPFLink] = []
    let rings: CPURings
    let countersMap: BPFMap

    init(exe: GoExecutable, file: OpenedExecutable, layout: RuntimeLayout, plan: AttachPlan, pid: Int32?, collectStacks: Bool, exitGoid: Bool,
         ringBufferBytes: UInt32, probes: Probes = .gmon, pauseBeforeUprobesMs: Int = 0) throws {
        do {
            let object = try BPFObject(image: GmonBPF.object, name: "gmon")
            self.object = object
            let cfg = try EventDecoder.config(goid: layout.goid, gopc: layout.gopc, startpc: layout.startpc,
                                              parentGoid: layout.parentGoid, collectStack: collectStacks, exitGoid: exitGoid,
                                              ringBufferBytes: ringBufferBytes)
            try cfg.withUnsafeBytes { try object.setReadOnlyData($0) }
            let cpus = try CPURings.possibleCPUs()
            try object.setMaxEntries(map: GmonBPF.MapName.rings, UInt32(cpus))
            typealias P = GmonBPF.ProgramName
            // Each probe site with the program that reads its register; the benchmarks' floors
            // only on the two main sites.
            func creationProgram(_ a: AttachPoint) -> String { a.register == .rax ? P.createAtReturnRAX : P.createAtCallRBX }
            func exitProgram(_ a: AttachPoint) -> String { a.register == .rax ? P.exitRAX : P.exit }
            let creations, exits: [(AttachPoint, String)]
            switch probes {
            case .gmon:
                creations = ([plan.creation] + plan.otherCreations).map { ($0, creationProgram($0)) }
                exits = ([plan.exit] + plan.otherExits).map { ($0, exitProgram($0)) }
            case .countOnly: (creations, exits) = ([(plan.creation, P.countCreate)], [(plan.exit, P.countExit)])
            case .deliverOnly: (creations, exits) = ([(plan.creation, P.deliver)], [(plan.exit, P.deliver)])
            }
            let used = Set((creations + exits).map(\.1))
            for p in [P.createAtReturnRAX, P.createAtCallRBX, P.countCreate, P.exit, P.exitRAX, P.countExit, P.deliver] {
                try object.setAutoload(p, used.contains(p))
            }
            try object.load()
            rings = try CPURings(outer: try object.map(GmonBPF.MapName.rings), count: cpus, bytesPerRing: ringBufferBytes,
                                 timestampOffset: MemoryLayout<gmon_event_header>.offset(of: \.ktime_ns)!)
            countersMap = try object.map(GmonBPF.MapName.counters)
            // Process exits first, so no exit of a process with events is missed.
            processLinks.append(try object.program(GmonBPF.ProgramName.processExit).attachRawTracepoint("sched_process_exit"))
            processLinks.append(try object.program(GmonBPF.ProgramName.processExec).attachRawTracepoint("sched_process_exec"))
            var paused = 0
            while paused < pauseBeforeUprobesMs && stopRequested == 0 { usleep(10_000); paused += 10 }
            if stopRequested != 0 { throw Interrupted() }
            // The exit probe before the creation probe: a goroutine that exits between the two was
            // created before gmon attached, and its exit is counted as such; the other order would
            // keep a goroutine created in between live forever.
            for (a, program) in exits {
                exitLinks.append(try object.program(program).attachUprobe(binary: file.kernelPath, fileOffset: a.fileOffset, pid: pid, returnProbe: false))
            }
            for (a, program) in creations {
                createLinks.append(try object.program(program).attachUprobe(binary: file.kernelPath, fileOffset: a.fileOffset, pid: pid,
                                                                            returnProbe: a.isReturnProbe))
            }
            if stopRequested != 0 { throw Interrupted() }
        } catch let e as BPFError {
            if let p = pid, ProcFS.processIsGone(p) {
                throw CLIError("process \(p) exited while gmon was attaching to it: nothing to watch (nothing is left attached)")
            }
            throw CLIError(e.description)
        } catch let e as EventDecoder.LayoutNotReadable {
            throw CLIError(e.description)
        }
    }

    /// In the order of attaching: the exit probe first, so a goroutine created while
    /// detaching stays live (it is) instead of its exit being counted as one of a goroutine
    /// created before gmon attached; the process tracepoints last, so every process with
    /// events still has its end reported.
    func detach() {
        for l in exitLinks { l.destroy() }
        exitLinks.removeAll()
        for l in createLinks { l.destroy() }
        createLinks.removeAll()
        for l in processLinks { l.destroy() }
        processLinks.removeAll()
    }

    /// What the kernel side could not deliver, from its per-CPU counters.
    func losses(undecodable: UInt64, counters c: [UInt64]? = nil) -> Summary.Losses {
        let c = c ?? counters()
        func n(_ i: gmon_counter) -> UInt64 { c[Int(i.rawValue)] }
        var l = Summary.Losses(ringBufferFull: (n(GMON_LOST_CREATE_RINGBUF), n(GMON_LOST_EXIT_RINGBUF), n(GMON_LOST_PROC_RINGBUF)),
                              failedReads: n(GMON_FAILED_READ), failedStacks: n(GMON_FAILED_STACK),
                              processMapFull: n(GMON_TGID_MAP_FULL), undecodable: undecodable)
        l.lostCreationsUntracked = n(GMON_LOST_CREATE_UNTRACKED)
        return l
    }

    func counters() -> [UInt64] {
        (0..<UInt32(GMON_COUNTER_MAX.rawValue)).map { (try? countersMap.perCPUSum(index: $0)) ?? 0 }
    }
}

func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
