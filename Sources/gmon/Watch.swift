import ArgumentParser
import Foundation
import GmonExporters
import GmonMetrics
import GmonModel
import GmonProbes
import GoBinary
import GoRuntime
import GoroutineTracker
import LibBPF
import Monitor
import ProcFS
import Symbolization

/// Set by the signal handler; the attach and the monitor's loop poll it.
let stopToken = StopToken()
let summaryToken = StopToken()

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch goroutines being created and exiting in every process of a Go executable (default command).")

    @Argument(help: ArgumentHelp("A Go executable's path (as --path) or, when no such file exists and it is all digits, a process id (as --pid).",
                                 valueName: "path-or-pid"))
    var target: String?

    @Option(name: [.customLong("path"), .customLong("path", withSingleDash: true)],
            help: "Go executable to watch: every running and future process of it.")
    var path: String?

    @Option(name: [.customLong("pid"), .customLong("pid", withSingleDash: true)], help: "Watch only this process.")
    var pid: Int32?

    @Flag(name: .customLong("all"), help: "Watch every Go program on the host, running now and started later, in containers too (a node agent).")
    var all = false

    @Option(name: .customLong("exe"), help: "With --all: only executables whose path or name matches this glob (repeatable).")
    var exeGlobs: [String] = []

    @Option(name: .customLong("exclude-exe"), help: "With --all: not executables whose path or name matches this glob (repeatable).")
    var excludeExeGlobs: [String] = []

    @Option(name: .customLong("container"), help: "With --all: only processes of this container (an id or its prefix; repeatable).")
    var containers: [String] = []

    @Option(name: .customLong("stale-after"), help: "With --all: the series of an executable or container whose processes are all gone are removed after this many seconds.")
    var staleAfter: Double = 300

    // Tests: where the kubelet's pod log directories are (pod namespace and name).
    @Option(name: .customLong("pod-log-root"), help: .hidden)
    var podLogRoot: String = "/var/log/pods"

    @Option(name: [.customLong("log-level"), .customLong("level", withSingleDash: true)],
            help: "debug (also exits), info (creations), warn, error.")
    var logLevel: String = "info"

    @Option(name: .customLong("log-format"), help: "logfmt or json.")
    var logFormat: String = "logfmt"

    @Option(name: .customLong("stack-depth"), help: "At most this many creator stack frames on a log line (default: every frame collected, as the earlier gmon).")
    var stackDepth: Int?

    @Option(name: .customLong("duration"), help: "Stop after this many seconds (default: until SIGINT/SIGTERM).")
    var duration: Double?

    @Option(name: .customLong("metrics-address"), help: "Serve Prometheus metrics here (HOST:PORT; :PORT binds every interface).")
    var metricsAddress: String = "127.0.0.1:5500"

    @Option(name: .customLong("metrics-port"), help: "Serve metrics on 127.0.0.1:PORT.")
    var metricsPort: Int?

    // The earlier tool's flag: the same as --metrics-port, with a note at start-up since that
    // tool bound every interface (gmon keeps loopback: its metrics name the program's code).
    @Option(name: .customLong("metrics", withSingleDash: true), help: .hidden)
    var legacyMetricsPort: Int?

    @Flag(name: .customLong("no-metrics"), help: "Do not serve metrics.")
    var noMetrics = false

    /// Tests only (scripts/vm/e2e-core.sh's preemption stress): each creation holds its scratch
    /// slot this many µs, so that a preemptible kernel's preemptions land inside it.
    @Option(name: .customLong("test-hold-scratch-us"), help: .hidden)
    var testHoldScratchMicroseconds: Int = 0

    /// Tests only (the same stress): creations may claim this many scratch slots per CPU (0:
    /// all), so the stress shows that its preemptions land inside creations (one slot loses some).
    @Option(name: .customLong("test-scratch-slots"), help: .hidden)
    var testScratchSlots: Int = 0

    @Option(name: .customLong("max-sites"), help: "At most this many creation sites get their own series; the rest share created_by=\"other\".")
    var maxSites: Int = 1000

    @Option(name: .customLong("stack-labels"), help: "Creator stack frames past the go statement's on each site's series (stack_1 …; 0 to 8).")
    var stackLabels: Int = GoroutineMetrics.defaultStackLabels

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

    @Option(name: .customLong("snapshot-interval"),
            help: "Every this many seconds, read the watched processes' goroutines from memory and serve how many of each creation site are in each status, and for how long (0: never). Default 60.")
    var snapshotInterval: Double = 60

    @Flag(name: .customLong("no-stacks"), help: "Do not collect creator stacks (cheapest; stack labels stay empty).")
    var noStacks = false

    @Flag(name: .customLong("classic-probes"), help: "Probe where earlier tools do (uretprobe on runtime.newproc1, entry of runtime.goexit1): ~30x costlier, for comparison.")
    var classicProbes = false

    // Tests: pause this long between loading the BPF programs and attaching the uprobes,
    // to signal gmon or end the watched process exactly during attach.
    @Option(name: .customLong("attach-pause-ms"), help: .hidden)
    var attachPauseMs: Int = 0

    @Flag(name: .customLong("version", withSingleDash: true), help: .hidden)
    var legacyVersion = false

    @OptionGroup var overrides: LayoutOverrides

    func validate() throws {
        if legacyVersion { return }
        if all {
            if let target { throw ValidationError("--all watches every Go program: drop \(target) (or drop --all)") }
            guard path == nil && pid == nil else { throw ValidationError("--all watches every Go program: drop --path and --pid (or drop --all)") }
        } else {
            guard path != nil || pid != nil || target != nil else { throw ValidationError("give --path /path/to/go-binary, --pid N or --all") }
            guard exeGlobs.isEmpty && excludeExeGlobs.isEmpty && containers.isEmpty else {
                throw ValidationError("--exe, --exclude-exe and --container choose among every Go program: use them with --all")
            }
        }
        if !(staleAfter >= 0 && staleAfter <= 86_400 * 365) { throw ValidationError("--stale-after \(staleAfter): use 0 to 31536000 seconds") }
        guard LogWriter.Level(name: logLevel) != nil else { throw ValidationError("--log-level \(logLevel): use debug, info, warn or error") }
        guard LogWriter.Format(rawValue: logFormat) != nil else { throw ValidationError("--log-format \(logFormat): use logfmt or json") }
        if let n = stackDepth, !(0...1000).contains(n) { throw ValidationError("--stack-depth \(n): use 0 (no stack) to 1000 frames") }
        if let d = duration, !(d > 0 && d < 1e9) { throw ValidationError("--duration must be a positive number of seconds") }
        if let p = pid, p <= 0 { throw ValidationError("--pid \(p) is not a process id") }
        if let p = metricsPort, !(0...65535).contains(p) { throw ValidationError("--metrics-port \(p) is not a port number (0–65535)") }
        if let p = legacyMetricsPort, !(0...65535).contains(p) { throw ValidationError("-metrics \(p) is not a port number (0–65535)") }
        if !(snapshotInterval == 0 || (snapshotInterval >= 1 && snapshotInterval <= 86_400)) {
            throw ValidationError("--snapshot-interval \(snapshotInterval): use 0 (never) or 1 to 86400 seconds")
        }
        if !(1...1_000_000).contains(maxSites) { throw ValidationError("--max-sites must be between 1 and 1000000") }
        if !(0...1000).contains(testHoldScratchMicroseconds) { throw ValidationError("--test-hold-scratch-us: 0 to 1000") }
        if !(0...ProbeSession.scratchSlots).contains(testScratchSlots) { throw ValidationError("--test-scratch-slots: 0 to \(ProbeSession.scratchSlots)") }
        if !(0...8).contains(stackLabels) { throw ValidationError("--stack-labels \(stackLabels): use 0 (function and created_by only) to 8 frames") }
        if !(1...65536).contains(bufferMB) { throw ValidationError("--buffer-mb \(bufferMB): use 1 to 65536") }
        if !(1...10_000_000).contains(maxStacks) { throw ValidationError("--max-stacks \(maxStacks): use 1 to 10000000") }
        if let mb = ringBufferMB, !(1...1024).contains(mb) || mb & (mb - 1) != 0 {
            throw ValidationError("--ring-buffer-mb \(mb): use a power of two from 1 to 1024")
        }
    }

    /// A positional path or pid, as --path or --pid: an existing file is a path (a program
    /// may well be named 1234); otherwise all digits is a pid. Resolved here, not in validate(),
    /// so that what is neither gets one line, not the usage.
    func resolvingTarget() throws -> Watch {
        guard let t = target else { return self }
        guard path == nil && pid == nil else {
            throw CLIError("\(t): give the program once, as an argument or with --path/--pid, not both")
        }
        var w = self
        w.target = nil
        if FileManager.default.fileExists(atPath: t) {
            w.path = t
        } else if !t.isEmpty, t.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let p = Int32(t) {
            w.pid = p
        } else {
            throw CLIError("\(t): no such file, and not a process id: give the path of a Go executable or a pid (see gmon --help)")
        }
        do { try w.validate() } catch let e as ValidationError { throw CLIError(e.message) }
        return w
    }

    func run() throws {
        if legacyVersion { print(GMon.versionLine); return }
        if target != nil { return try resolvingTarget().run() }
        // First: a signal during attach must end in a clean stop, not kill gmon half-attached.
        installSignalHandlers()
        try checkPrivileges()
        do { try KernelSupport.check() } catch let m as KernelSupport.Missing { throw CLIError(m.description) }
        if all { try runAll(); return }
        let file = try openExecutable(pid: pid, path: path)
        let binary = file.displayPath
        // Parsed through the open file: the kernel later gets the same file (never a name to resolve again).
        let exe = try loadExecutable(file.kernelPath, shownAs: binary)
        let layout: RuntimeLayout
        do { layout = try overrides.layout(for: exe) } catch let e as GoBinaryError { throw CLIError("\(binary): \(e)") }
        let plan = try AttachPoints.plan(for: exe, classic: classicProbes)
        for w in plan.warnings { standardErrorLine("gmon: warning: \(w)") }

        let metrics = GoroutineMetrics(exe: (binary as NSString).lastPathComponent, maxSites: maxSites, version: GMon.version, goVersion: exe.goVersion,
                                       snapshots: snapshotInterval > 0, stackLabels: stackLabels)
        let server = try startServer(metrics)
        let level = LogWriter.Level(name: logLevel)!   // validated
        let session: ProbeSession
        let executable: ExecutableID
        do {
            // Only debug logs show an exit's goid; reading it costs the exiting thread a cache miss.
            session = try ProbeSession(options: .init(collectStacks: !noStacks, exitGoid: level == .debug,
                                                      ringBufferBytes: UInt32(try ringBufferMB ?? Self.defaultRingMB(cpus: CPURings.possibleCPUs())) << 20,
                                                      holdScratchMicroseconds: UInt32(testHoldScratchMicroseconds),
                                                      scratchSlots: UInt32(testScratchSlots)),
                                       stop: stopToken)
            executable = ExecutableID(try session.attach(file: file.kernelPath, layout: layout, plan: plan, pid: pid,
                                                         pauseBeforeUprobesMs: attachPauseMs))
        } catch is ProbeSession.Interrupted {
            // Whatever was attached went with the session's links.
            standardErrorLine("gmon: stopped while attaching; nothing is left attached")
            server?.stop()
            return
        }
        let log = LogWriter(fd: 1, format: LogWriter.Format(rawValue: logFormat)!, level: level, stackDepth: stackDepth)
        let resolvers = SiteResolvers()
        resolvers.add(GoSiteResolver(exe: exe, executable: executable, file: file.identity, plan: plan))
        let tracker = Tracker(resolver: resolvers, gStride: layout.gSizeFloor, maxStacks: maxStacks)
        let pipeline = EventPipeline(tracker: tracker, metrics: server == nil ? nil : metrics, log: log)
        let monitor = Monitor(session: session, pipeline: pipeline, metrics: server == nil ? nil : metrics, log: log,
                              options: .init(duration: duration, pid: pid, bufferBytes: bufferMB << 20), stop: stopToken)
        wireSummary(monitor, tracker)
        var warnedReplaced = false
        monitor.everySecond = { [pid] in
            // A deployment replaces the file: the probes stay on the old inode, so say so.
            if !warnedReplaced, pid == nil, FileIdentity(path: binary) != file.identity {
                warnedReplaced = true
                standardErrorLine("gmon: warning: \(binary) was replaced on disk; processes already running are still watched, processes started from the new file are not: restart gmon to watch them")
            }
        }
        monitor.willDetach = { server?.isAttached = false }
        monitor.warn = { standardErrorLine($0) }
        // The goroutines that already exist, read from memory now that the probes are on (their
        // events wait in the rings until these are in the tracker: Tracker.seed says how the two
        // agree when a goroutine is in both).
        let existing = ExistingGoroutines.seed(pids: pid.map { [$0] } ?? ProcFS.processes(running: file.identity), exe: exe, file: file.identity,
                                               executable: executable, resolver: resolvers, pipeline: pipeline, stop: stopToken)
        for f in existing.failures {
            standardErrorLine("gmon: warning: cannot read the goroutines that already exist in process \(f.pid) (\(f.reason)); its goroutines created from now on are watched")
        }
        if existing.processes > 0 {
            standardErrorLine("gmon: \(existing.goroutines) goroutines already running in \(existing.processes) process\(existing.processes == 1 ? "" : "es") (read from memory)")
        }

        var snapshots: PeriodicSnapshots?
        if snapshotInterval > 0 && server != nil {
            let s = PeriodicSnapshots(interval: snapshotInterval, exe: exe, file: file.identity, executable: executable,
                                      exeName: (binary as NSString).lastPathComponent, maxRows: maxSites, states: metrics.states) { [pid] in
                pid.map { ProcFS.processIsGone($0) ? [] : [$0] } ?? ProcFS.processes(running: file.identity)
            }
            s.start()
            snapshots = s
        }
        server?.isAttached = true
        let others = plan.otherCreations.map(\.function) + plan.otherExits.map(\.function)
        let otherNote = others.isEmpty ? "" : " (also in \(others.joined(separator: ", ")))"
        let metricsNote = server.map { "; metrics on http://\($0.boundAddress)/metrics" } ?? ""
        standardErrorLine("gmon: watching \(pid.map { "process \($0) of " } ?? "")\(binary) (\(exe.goVersion)); creation probe at \(plan.creation.kind.rawValue) site in \(plan.creation.function), exit probe at \(plan.exit.kind.rawValue) site in \(plan.exit.function)\(otherNote)\(metricsNote); stop with Ctrl-C")
        let outcome = try monitor.run()
        snapshots?.cancel()
        try finish(outcome, tracker: tracker, log: log, server: server)
    }

    /// SIGUSR1: the summary so far on stderr, gmon going on.
    func wireSummary(_ monitor: Monitor, _ tracker: Tracker) {
        monitor.summaryRequest = summaryToken
        monitor.summary = { losses in standardErrorLine(Summary.render(tracker: tracker, losses: losses)) }
    }

    /// The metrics endpoint, unless --no-metrics.
    func startServer(_ metrics: GoroutineMetrics) throws -> MetricsServer? {
        guard !noMetrics else { return nil }
        if let p = legacyMetricsPort, metricsPort == nil {
            standardErrorLine("gmon: note: -metrics \(p) serves on 127.0.0.1:\(p) only (the earlier gmon bound every interface); to bind every interface use --metrics-address :\(p)")
        }
        let (host, port) = try (metricsPort ?? legacyMetricsPort).map { ("127.0.0.1", $0) } ?? parseListenAddress(metricsAddress)
        let s = MetricsServer(metrics: metrics)
        try s.start(host: host, port: port)
        return s
    }

    /// The closing lines (summary, what was left out, gmon's cost); the server stops.
    func finish(_ outcome: Monitor.Outcome, tracker: Tracker, log: LogWriter, server: MetricsServer?) throws {
        if let r = outcome.reason { standardErrorLine("gmon: \(r)") }
        standardErrorLine(Summary.render(tracker: tracker, losses: outcome.losses))
        if outcome.afterStop > 0 { standardErrorLine("gmon: \(outcome.afterStop) events stamped after gmon stopped watching were left out") }
        standardErrorLine(ownCost())
        server?.stop()
        // Logs are gmon's main output: when they could not be written, say why and fail.
        if log.writeError > 0 {
            throw CLIError("writing the logs to stdout failed: \(String(cString: strerror(log.writeError))); gmon stopped (\(log.droppedLines) lines not written)")
        }
    }
}
