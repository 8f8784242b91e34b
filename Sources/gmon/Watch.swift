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
            help: "Size of each CPU's kernel-to-gmon ring buffer in MiB (a power of two). Larger absorbs longer bursts; it is counted twice in gmon's RSS.")
    // 1 MiB per CPU: ~20 ms at the highest rate measured here (~100 MB/s of events from two
    // CPUs), seconds at ordinary rates; a 5 s storm of 2.9 M goroutines with logs to a file
    // lost none. Keeps gmon under 64 MB of RSS with a million live goroutines (make bench).
    var ringBufferMB: Int = 1

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
        if !(1...1024).contains(ringBufferMB) || ringBufferMB & (ringBufferMB - 1) != 0 {
            throw ValidationError("--ring-buffer-mb \(ringBufferMB): use a power of two from 1 to 1024")
        }
    }

    func run() throws {
        if legacyVersion { print("gmon \(GMon.version)"); return }
        // First: a signal during attach must end in a clean stop, not kill gmon half-attached.
        installSignalHandlers()
        try checkPrivileges()
        do { try KernelSupport.check() } catch let m as KernelSupport.Missing { throw CLIError(m.description) }
        let binary = try resolveBinary()
        let exe = try loadExecutable(binary)
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
            session = try BPFSession(exe: exe, layout: layout, plan: plan, pid: pid, collectStacks: !noStacks,
                                     exitGoid: level == .debug,
                                     ringBufferBytes: UInt32(ringBufferMB) << 20,
                                     probes: countOnly ? .countOnly : deliverOnly ? .deliverOnly : .gmon,
                                     pauseBeforeUprobesMs: attachPauseMs)
        } catch is BPFSession.Interrupted {
            // Whatever was attached went with the session's links.
            FileHandle.standardErrorLine("gmon: stopped while attaching; nothing is left attached")
            server?.stop()
            return
        }
        let log = LogWriter(fd: 1, format: LogWriter.Format(rawValue: logFormat)!, level: level)
        let resolver = GoSiteResolver(exe: exe, creationProbeAddress: plan.creation.isReturnProbe ? nil : plan.creation.address)
        let tracker = Tracker(resolver: resolver, gStride: layout.gSizeFloor)
        let pipeline = EventPipeline(tracker: tracker, metrics: server == nil ? nil : metrics, log: log)
        var delivered: UInt64 = 0
        // Read once: a property-wrapped flag read per event instantiates generic metadata (perf).
        let dropEveryRecord = deliverOnly || dropInUserSpace
        let metricsOn = server != nil
        let rings = session.rings
        // Records of different CPUs' rings are handed out in timestamp order, up to a time
        // taken before each drain (CPURings says why that keeps every goroutine's events in order).
        func drain(everything: Bool = false) {
            if dropEveryRecord {
                rings.drain(before: .max) { _ in delivered += 1 }
                return
            }
            let limit = everything ? UInt64.max : monotonicNow()
            rings.drain(before: limit) { pipeline.handle($0) }
            pipeline.flush(eventTimeLimit: limit)
        }

        server?.isAttached = true
        let metricsNote = server.map { "; metrics on http://\($0.boundAddress)/metrics" } ?? ""
        FileHandle.standardErrorLine("gmon: watching \(pid.map { "process \($0) of " } ?? "")\(binary) (\(exe.goVersion)); creation probe at \(plan.creation.kind.rawValue) site in \(plan.creation.function), exit probe at \(plan.exit.kind.rawValue) site in \(plan.exit.function)\(metricsNote); stop with Ctrl-C")
        let deadline = duration.map { Date().addingTimeInterval($0) }
        var lastRefresh = Date.distantPast
        let watchedFile = FileIdentity(path: binary)
        var warnedReplaced = false
        while stopRequested == 0 && !log.broken {
            // The BPF side wakes us only for a backlog or a process exit; drain on a 20 ms tick.
            try rings.wait(timeoutMs: 20)
            drain()
            if Date().timeIntervalSince(lastRefresh) >= 1 {
                // The age gauges walk every live goroutine: not for metrics nobody serves.
                if metricsOn {
                    metrics.refresh(tracker: tracker, nowNs: monotonicNow(), losses: session.losses(undecodable: pipeline.undecodable).byReason)
                }
                lastRefresh = Date()
                // A deployment replaces the file: the probes stay on the old inode, so say so.
                if !warnedReplaced, pid == nil, let was = watchedFile, FileIdentity(path: binary) != was {
                    warnedReplaced = true
                    FileHandle.standardErrorLine("gmon: warning: \(binary) was replaced on disk; processes already running are still watched, processes started from the new file are not: restart gmon to watch them")
                }
            }
            if let d = deadline, Date() >= d { break }
            if let p = pid, processIsGone(p) {
                drain(everything: true)
                FileHandle.standardErrorLine("gmon: process \(p) exited")
                break
            }
        }
        // Detach first, then drain what the probes already sent.
        server?.isAttached = false
        session.detach()
        drain(everything: true)
        let c = session.counters()
        FileHandle.standardErrorLine(Summary.render(tracker: tracker, losses: session.losses(undecodable: pipeline.undecodable, counters: c)))
        if dropEveryRecord { FileHandle.standardErrorLine("gmon: records delivered and dropped: \(delivered)") }
        if countOnly {
            FileHandle.standardErrorLine("gmon: count-only: creations \(c[Int(GMON_COUNT_ONLY_CREATE.rawValue)]) exits \(c[Int(GMON_COUNT_ONLY_EXIT.rawValue)])")
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu = { (t: timeval) in Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        FileHandle.standardErrorLine("gmon: own cost: user \(cpu(usage.ru_utime)) s, system \(cpu(usage.ru_stime)) s, peak RSS \(usage.ru_maxrss / 1024) MB")
        server?.stop()
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

    /// The executable to watch: --path, or the one --pid runs; both must agree.
    func resolveBinary() throws -> String {
        if let p = pid {
            guard !processIsGone(p) else { throw CLIError("no process with pid \(p): is it still running?") }
            let exeLink = "/proc/\(p)/exe"
            guard let running = try? FileManager.default.destinationOfSymbolicLink(atPath: exeLink) else {
                throw CLIError("cannot read \(exeLink): the process exited or is a kernel thread")
            }
            if let path {
                var a = stat(), b = stat()
                guard stat(path, &a) == 0 else { throw CLIError("\(path): \(String(cString: strerror(errno)))") }
                guard stat(exeLink, &b) == 0, a.st_ino == b.st_ino, a.st_dev == b.st_dev else {
                    throw CLIError("process \(p) runs \(running), not \(path); drop --path or pass the right --pid")
                }
                return path
            }
            // The running file; "(deleted)" means it was replaced on disk.
            if running.hasSuffix(" (deleted)") { return exeLink }
            return running
        }
        return path!
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
    var links: [BPFLink] = []
    let rings: CPURings
    let countersMap: BPFMap

    init(exe: GoExecutable, layout: RuntimeLayout, plan: AttachPlan, pid: Int32?, collectStacks: Bool, exitGoid: Bool,
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
            let createProgram, exitProgram: String
            switch probes {
            case .gmon: (createProgram, exitProgram) = (plan.creation.register == .rax ? P.createAtReturnRAX : P.createAtCallRBX, P.exit)
            case .countOnly: (createProgram, exitProgram) = (P.countCreate, P.countExit)
            case .deliverOnly: (createProgram, exitProgram) = (P.deliver, P.deliver)
            }
            for p in [P.createAtReturnRAX, P.createAtCallRBX, P.countCreate, P.exit, P.countExit, P.deliver] {
                try object.setAutoload(p, p == createProgram || p == exitProgram)
            }
            try object.load()
            rings = try CPURings(outer: try object.map(GmonBPF.MapName.rings), count: cpus, bytesPerRing: ringBufferBytes,
                                 timestampOffset: MemoryLayout<gmon_event_header>.offset(of: \.ktime_ns)!)
            countersMap = try object.map(GmonBPF.MapName.counters)
            var links: [BPFLink] = []
            defer { self.links = links }
            // Process exits first, so no exit of a process with events is missed.
            links.append(try object.program(GmonBPF.ProgramName.processExit).attachRawTracepoint("sched_process_exit"))
            var paused = 0
            while paused < pauseBeforeUprobesMs && stopRequested == 0 { usleep(10_000); paused += 10 }
            if stopRequested != 0 { throw Interrupted() }
            links.append(try object.program(exitProgram).attachUprobe(
                binary: exe.path, fileOffset: plan.exit.fileOffset, pid: pid, returnProbe: false))
            links.append(try object.program(createProgram).attachUprobe(
                binary: exe.path, fileOffset: plan.creation.fileOffset, pid: pid, returnProbe: plan.creation.isReturnProbe))
            if stopRequested != 0 { throw Interrupted() }
        } catch let e as BPFError {
            if let p = pid, processIsGone(p) {
                throw CLIError("process \(p) exited while gmon was attaching to it: nothing to watch (nothing is left attached)")
            }
            throw CLIError(e.description)
        } catch let e as EventDecoder.LayoutNotReadable {
            throw CLIError(e.description)
        }
    }

    func detach() {
        for l in links.reversed() { l.destroy() }
        links.removeAll()
    }

    /// What the kernel side could not deliver, from its per-CPU counters.
    func losses(undecodable: UInt64, counters c: [UInt64]? = nil) -> Summary.Losses {
        let c = c ?? counters()
        func n(_ i: gmon_counter) -> UInt64 { c[Int(i.rawValue)] }
        return Summary.Losses(ringBufferFull: (n(GMON_LOST_CREATE_RINGBUF), n(GMON_LOST_EXIT_RINGBUF), n(GMON_LOST_PROC_RINGBUF)),
                              failedReads: n(GMON_FAILED_READ), failedStacks: n(GMON_FAILED_STACK),
                              processMapFull: n(GMON_TGID_MAP_FULL), undecodable: undecodable)
    }

    func counters() -> [UInt64] {
        (0..<UInt32(GMON_COUNTER_MAX.rawValue)).map { (try? countersMap.perCPUSum(index: $0)) ?? 0 }
    }
}

/// True when `pid` no longer runs: no such process, or a zombie its parent has not reaped
/// (kill(pid, 0) still succeeds for a zombie).
func processIsGone(_ pid: Int32) -> Bool {
    if kill(pid, 0) != 0 && errno == ESRCH { return true }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
    // "pid (comm) S …": the state follows the last ')' (comm may contain one).
    guard let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
    return state == "Z" || state == "X"
}

func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Device and inode of a file, to notice it being replaced.
struct FileIdentity: Equatable {
    let device: UInt64, inode: UInt64
    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev); inode = UInt64(st.st_ino)
    }
}
