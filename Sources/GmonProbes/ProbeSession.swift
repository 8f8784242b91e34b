import CGmonEvents
import GoRuntime
import LibBPF
import ProcFS
#if canImport(Glibc)
import Glibc
#endif

/// gmon's BPF program loaded once, serving any number of executables: each executable's
/// probes carry its number (the attach cookie), under which its runtime layout is stored.
public final class ProbeSession {
    /// A stop was requested while attaching; whatever was attached is detached.
    public struct Interrupted: Error {}

    /// One line for the user.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ d: String) { description = d }
    }

    /// Scratch slots per CPU: creation programs that may run at once on one CPU (preempted).
    public static let scratchSlots = Int(GMON_SCRATCH_SLOTS)

    public struct Options: Sendable {
        public var collectStacks: Bool
        /// Read goid at exits too (only debug logs show it; costs the exiting thread a cache miss).
        public var exitGoid: Bool
        public var ringBufferBytes: UInt32
        /// Report every exec on the host (--all: programs to watch start).
        public var reportExecs: Bool
        /// Tests only: how long each creation holds its scratch slot (the preemption stress).
        public var holdScratchMicroseconds: UInt32
        /// Tests only: how many of the per-CPU scratch slots creations may claim (0: all).
        public var scratchSlots: UInt32

        public init(collectStacks: Bool, exitGoid: Bool, ringBufferBytes: UInt32, reportExecs: Bool = false,
                    holdScratchMicroseconds: UInt32 = 0, scratchSlots: UInt32 = 0) {
            self.collectStacks = collectStacks; self.exitGoid = exitGoid; self.ringBufferBytes = ringBufferBytes
            self.reportExecs = reportExecs; self.holdScratchMicroseconds = holdScratchMicroseconds; self.scratchSlots = scratchSlots
        }
    }

    let probes: GmonProbesObject
    public let rings: CPURings
    let countersMap: BPFMap
    let stop: StopToken
    /// Process exit and exec tracepoints; per executable, its exit and creation uprobes.
    private var processLinks: [BPFLink] = []
    private var exitLinks: [UInt32: [BPFLink]] = [:]
    private var createLinks: [UInt32: [BPFLink]] = [:]
    private var executables = 0
    /// Numbers of executables detached, reused oldest first (their processes are gone).
    private var freeNumbers: [UInt32] = []
    /// Executables attached now.
    public var attachedCount: Int { createLinks.count }

    public init(options: Options, stop: StopToken) throws {
        self.stop = stop
        do {
            probes = try GmonProbesObject()
            try probes.setSettings(EventDecoder.settings(collectStack: options.collectStacks, exitGoid: options.exitGoid,
                                                         ringBufferBytes: options.ringBufferBytes, reportExecs: options.reportExecs,
                                                         holdScratchMicroseconds: options.holdScratchMicroseconds,
                                                         scratchSlots: options.scratchSlots))
            let cpus = try CPURings.possibleCPUs()
            try probes.setRingCount(cpus)
            try probes.load()
            rings = try CPURings(outer: try probes.map(.rings), count: cpus, bytesPerRing: options.ringBufferBytes,
                                 timestampOffset: MemoryLayout<gmon_event_header>.offset(of: \.ktime_ns)!)
            countersMap = try probes.map(.counters)
            // Process ends before any uprobe, so no end of a process with events is missed.
            processLinks.append(try probes.program(.processExit).attachRawTracepoint("sched_process_exit"))
            processLinks.append(try probes.program(.processExec).attachRawTracepoint("sched_process_exec"))
        } catch let e as BPFError {
            throw Failure(e.description)
        }
    }

    /// Attaches the probes of one executable's plan; returns its number (events carry it).
    /// `file`: the path the kernel opens (the file gmon parsed, /proc/self/fd/N).
    /// `pauseBeforeUprobesMs`: tests stop gmon or end the process exactly during attach.
    public func attach(file: String, layout: RuntimeLayout, plan: AttachPlan, pid: Int32?, pauseBeforeUprobesMs: Int = 0) throws -> UInt32 {
        guard executables < Int(GMON_MAX_EXECUTABLES) || !freeNumbers.isEmpty else {
            throw Failure("gmon watches at most \(GMON_MAX_EXECUTABLES) executables at once")
        }
        let number = freeNumbers.first ?? UInt32(executables)
        var exits: [BPFLink] = [], creates: [BPFLink] = []
        // Whatever of this executable was attached goes when attaching fails or is interrupted.
        var done = false
        defer {
            if !done {
                for l in exits + creates { l.destroy() }
            }
        }
        do {
            try probes.setExecutable(number, try EventDecoder.executableConfig(goid: layout.goid, gopc: layout.gopc, startpc: layout.startpc,
                                                                                parentGoid: layout.parentGoid))
            var paused = 0
            while paused < pauseBeforeUprobesMs && !stop.isRequested { usleep(10_000); paused += 10 }
            if stop.isRequested { throw Interrupted() }
            // The exit probe before the creation probe: a goroutine that exits between the two was
            // created before gmon attached, and its exit is counted as such; the other order would
            // keep a goroutine created in between live forever.
            for a in [plan.exit] + plan.otherExits {
                exits.append(try probes.program(a.register == .rax ? .exitRAX : .exit)
                    .attachUprobe(binary: file, fileOffset: a.fileOffset, pid: pid, returnProbe: false, cookie: UInt64(number)))
            }
            for a in [plan.creation] + plan.otherCreations {
                creates.append(try probes.program(a.register == .rax ? .createAtReturnRAX : .createAtCallRBX)
                    .attachUprobe(binary: file, fileOffset: a.fileOffset, pid: pid, returnProbe: a.isReturnProbe, cookie: UInt64(number)))
            }
            if stop.isRequested { throw Interrupted() }
        } catch let e as BPFError {
            if let p = pid, ProcFS.processIsGone(p) {
                throw Failure("process \(p) exited while gmon was attaching to it: nothing to watch (nothing is left attached)")
            }
            throw Failure(e.description)
        } catch let e as EventDecoder.LayoutNotReadable {
            throw Failure(e.description)
        }
        done = true
        if number == UInt32(executables) { executables += 1 } else { freeNumbers.removeFirst() }
        exitLinks[number] = exits
        createLinks[number] = creates
        return number
    }

    /// Detaches one executable's probes (its last process is gone); its number may be reused.
    public func detach(executable number: UInt32) {
        guard let creates = createLinks.removeValue(forKey: number) else { return }
        for l in exitLinks.removeValue(forKey: number) ?? [] { l.destroy() }
        for l in creates { l.destroy() }
        freeNumbers.append(number)
    }

    /// In the order of attaching: the exit probes first, so a goroutine created while
    /// detaching stays live (it is) instead of its exit being counted as one of a goroutine
    /// created before gmon attached; the process tracepoints last, so every process with
    /// events still has its end reported.
    public func detach() {
        for l in exitLinks.values.joined() { l.destroy() }
        exitLinks.removeAll()
        for l in createLinks.values.joined() { l.destroy() }
        createLinks.removeAll()
        for l in processLinks { l.destroy() }
        processLinks.removeAll()
    }

    /// What the kernel side counted, summed over CPUs.
    public struct Counters: Sendable {
        public var raw: [UInt64]
        public func callAsFunction(_ c: gmon_counter) -> UInt64 { raw[Int(c.rawValue)] }
    }

    public func counters() -> Counters {
        Counters(raw: (0..<UInt32(GMON_COUNTER_MAX.rawValue)).map { (try? countersMap.perCPUSum(index: $0)) ?? 0 })
    }
}
