import GmonModel
import GoBinary
import GoRuntime
import ProcFS
import Symbolization
#if canImport(Glibc)
import Glibc
#endif

/// Every goroutine of a running Go process, read from its memory (/proc/PID/mem, read
/// only: the process is never stopped or written to). The process runs meanwhile: g's are
/// created, freed and moved during the read, so every value is checked before it is
/// believed, and a goroutine whose g changed while it was read is reported without a stack
/// (or left out, counted, when not even its identity can be trusted).
public final class GoroutineReader {
    public let pid: Int32
    public let exe: GoExecutable
    let layout: GoroutineLayout
    let reasons: [String]
    let location: AllGoroutinesLocation
    let memory: ProcessMemory
    let resolver: GoSiteResolver
    /// Run-time address minus link-time address (PIE).
    let bias: UInt64
    let textRange: ClosedRange<UInt64>
    let wrapperFuncID: UInt8?
    /// The run-time address of runtime.allgs, once a candidate proved right.
    private var allgsAddress: UInt64?

    /// Why no snapshot can be taken.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// Frames per goroutine at most (Go's dump prints 100 and elides the rest).
    public static let maxFrames = 1024
    /// Goroutines at most (the length of allgs is checked against it).
    public static let maxGoroutines = 1 << 26

    /// `exe`: parsed from the file the process runs (/proc/PID/exe), never from a path.
    /// `layout`: runtime.g's offsets for a release gmon has no table of and whose binary has
    /// no DWARF (`gmon inspect --json` of a build of that release with DWARF prints them).
    public init(pid: Int32, exe: GoExecutable, file: FileIdentity?, layout override: GoroutineLayout? = nil) throws {
        self.pid = pid
        self.exe = exe
        if let override {
            layout = override
        } else if let l = try? exe.goroutineLayout() {
            layout = l
        } else {
            throw Failure("built by \(exe.goVersion), a Go release whose runtime.g layout gmon does not know, and the binary has no DWARF: pass --layout FILE, the JSON that `gmon inspect --json` prints for a build of the same release with DWARF")
        }
        // A release without a table (read with --layout): waiting goroutines show the reason's number.
        reasons = WaitReasons.table(release: exe.buildInfo.release) ?? []
        location = try exe.allGoroutinesLocation()
        memory = try ProcessMemory(pid: pid)
        resolver = GoSiteResolver(exe: exe, file: file)
        let firstLoad = exe.elf.segments.filter { $0.type == ELFSegment.typeLoad }.map(\.virtualAddress).min() ?? 0
        if exe.isPIE {
            guard let file, let b = ProcFS.loadBias(pid: UInt32(pid), file: file, firstLoadAddress: firstLoad) else {
                throw Failure("cannot find where process \(pid) has its executable mapped (/proc/\(pid)/maps): is it still running?")
            }
            bias = b
        } else {
            bias = 0
        }
        wrapperFuncID = FrameRules.wrapperFuncID(release: exe.buildInfo.release)
        let text = exe.elf.segments.filter { $0.type == ELFSegment.typeLoad && $0.isExecutable }
        textRange = (text.map(\.virtualAddress).min() ?? 0)...(text.map { $0.virtualAddress + $0.memorySize }.max() ?? 0)
    }

    /// What a snapshot found and what it could not use.
    public struct Snapshot: Sendable {
        public var pid: Int32
        public var goVersion: String
        /// CLOCK_MONOTONIC when the read began.
        public var takenAtNs: UInt64
        public var goroutines: [Goroutine]
        /// g's kept for reuse (dead): not goroutines.
        public var dead = 0
        /// g's that did not read as a goroutine (freed or reused during the read, or unreadable).
        public var unreadable = 0
    }

    public func snapshot() throws -> Snapshot {
        let now = monotonicNanoseconds()
        let gs = try allGs()
        var snap = Snapshot(pid: pid, goVersion: exe.goVersion, takenAtNs: now, goroutines: [])
        snap.goroutines.reserveCapacity(gs.count)
        let size = layout.readSize
        forEachG(gs, size: size) { address, bytes, readAt in
            guard let bytes else { snap.unreadable += 1; return }
            switch goroutine(at: address, bytes, now: now) {
            case .dead: snap.dead += 1
            case .invalid: snap.unreadable += 1
            case .goroutine(var g):
                g.seenAtNs = readAt
                snap.goroutines.append(g)
            }
        }
        return snap
    }

    // MARK: the list of g's

    /// The addresses of every g in allgs.
    func allGs() throws -> [UInt64] {
        let candidates = allgsAddress.map { [$0] } ?? location.candidates.map { $0 &+ bias }
        for a in candidates {
            guard let header = memory.bytes(a, 24) else { continue }
            let (array, count, capacity) = header.withUnsafeBytes {
                ($0.load(as: UInt64.self), $0.load(fromByteOffset: 8, as: UInt64.self), $0.load(fromByteOffset: 16, as: UInt64.self))
            }
            guard array != 0, array % 8 == 0, count > 0, count <= capacity, capacity <= UInt64(Self.maxGoroutines),
                  let raw = memory.bytes(array, Int(count) * 8) else { continue }
            let gs = raw.withUnsafeBytes { Array($0.bindMemory(to: UInt64.self)) }
            // allgs[0] is goroutine 1's g (the first g the runtime makes): a stripped binary's
            // candidate is believed only then.
            guard let first = gs.first, let goid = memory.u64(first &+ UInt64(layout.goid)), goid == 1 else { continue }
            allgsAddress = a
            return gs
        }
        throw Failure("cannot find the list of goroutines (runtime.allgs) in process \(pid)'s memory: is it a Go program of \(exe.goVersion)?")
    }

    /// Reads each g (`size` bytes), in address order, many g's per read: g's are heap objects
    /// of one size class and lie next to each other.
    /// `body` gets each g's address, its bytes (nil: unreadable) and the time just before they were read.
    func forEachG(_ gs: [UInt64], size: Int, _ body: (UInt64, UnsafeRawBufferPointer?, UInt64) -> Void) {
        let sorted = gs.filter { $0 != 0 && $0 % 8 == 0 }.sorted()
        let window = 1 << 18
        var buffer = [UInt8](repeating: 0, count: window)
        var i = 0
        buffer.withUnsafeMutableBytes { buf in
            while i < sorted.count {
                let start = sorted[i]
                var j = i
                while j + 1 < sorted.count, sorted[j + 1] &+ UInt64(size) <= start &+ UInt64(window), sorted[j + 1] >= sorted[j] { j += 1 }
                let length = Int(sorted[j] - start) + size
                let readAt = monotonicNanoseconds()
                if memory.read(start, into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<length])) {
                    for k in i...j {
                        let o = Int(sorted[k] - start)
                        body(sorted[k], UnsafeRawBufferPointer(rebasing: buf[o..<(o + size)]), readAt)
                    }
                } else {
                    // Part of the window is unmapped: each g on its own.
                    for k in i...j {
                        let at = monotonicNanoseconds()
                        let ok = memory.read(sorted[k], into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<size]))
                        body(sorted[k], ok ? UnsafeRawBufferPointer(rebasing: buf[0..<size]) : nil, at)
                    }
                }
                i = j + 1
            }
        }
    }

    // MARK: one g

    enum Outcome { case dead, invalid, goroutine(Goroutine) }

    func goroutine(at address: UInt64, _ g: UnsafeRawBufferPointer, now: UInt64) -> Outcome {
        func u64(_ o: Int) -> UInt64 { g.loadUnaligned(fromByteOffset: o, as: UInt64.self) }
        let rawStatus = g.loadUnaligned(fromByteOffset: layout.atomicStatus, as: UInt32.self)
        let status = rawStatus & ~0x1000   // the GC's scan bit
        // Dead, or (Go 1.26+) dead and lent to a cgo callback's thread: kept for reuse.
        if status == 6 || status == 11 { return .dead }
        // Idle: just allocated, not yet started; above 10: not a status of any release.
        guard status != 0, status <= 10 else { return .invalid }
        let goid = u64(layout.goid)
        let lo = u64(layout.stackLo), hi = u64(layout.stackHi)
        let startPC = u64(layout.startpc), goPC = u64(layout.gopc)
        guard goid > 0, goid < 1 << 48, lo < hi, hi - lo <= 1 << 30,
              textRange.contains(startPC &- bias) else { return .invalid }
        let state: Goroutine.State = [.idle, .runnable, .running, .syscall, .waiting, .moribund, .dead, .enqueue, .copystack, .preempted,
                                      .leaked][Int(status)]
        var statusText = FrameRules.statusName(status)
        if state == .waiting || state == .leaked {
            // Go's words: the wait reason when there is one ("unknown wait reason" past the table).
            let r = Int(g.load(fromByteOffset: layout.waitReason, as: UInt8.self))
            if r != 0 { statusText = r < reasons.count ? reasons[r] : reasons.isEmpty ? "waiting (reason \(r))" : "unknown wait reason" }
            // Go 1.26+: found leaked by the GC's leak detector.
            if state == .leaked { statusText += " (leaked)" }
        }
        var waitSeconds: Double?
        if state == .waiting || state == .syscall {
            let since = Int64(bitPattern: u64(layout.waitSince))
            if since > 0, UInt64(since) <= now { waitSeconds = Double(now - UInt64(since)) / 1e9 }
        }
        let function = resolver.entryFunction(startPC &- bias)
        let startName = exe.pclntab.functionIndex(containing: startPC &- bias).flatMap { try? exe.pclntab.name(ofFunction: $0) } ?? function
        let parent = layout.parentGoid.map { u64($0) }
        var stack: [Frame] = []
        var note: String?
        switch state {
        case .running:
            note = "running"
        case _ where state == .syscall || u64(layout.syscallSP) != 0:
            // In a system call (or stopped in one's entry or exit): where it entered it, as Go's traceback starts.
            (stack, note) = unwind(pc: u64(layout.syscallPC), sp: u64(layout.syscallSP), lo: lo, hi: hi)
        default:
            (stack, note) = unwind(pc: u64(layout.schedPC), sp: u64(layout.schedSP), lo: lo, hi: hi)
        }
        // The g may have run (or been freed and reused) while its stack was read: read its
        // identity again; a changed g keeps what was read of it but not its stack.
        if note == nil, let again = memory.bytes(address, layout.readSize) {
            let same = again.withUnsafeBytes { b in
                b.loadUnaligned(fromByteOffset: layout.atomicStatus, as: UInt32.self) == rawStatus
                    && b.loadUnaligned(fromByteOffset: layout.goid, as: UInt64.self) == goid
                    && b.loadUnaligned(fromByteOffset: layout.schedSP, as: UInt64.self) == u64(layout.schedSP)
                    && b.loadUnaligned(fromByteOffset: layout.syscallSP, as: UInt64.self) == u64(layout.syscallSP)
            }
            if !same { stack = []; note = "changed while read" }
        }
        var out = Goroutine(
            goid: goid, state: state, status: statusText, waitSeconds: waitSeconds, function: function,
            createdBy: goid == 1 ? nil : createdBy(goPC),
            parentGoid: parent.flatMap { $0 == 0 ? nil : $0 }, stack: stack, stackNote: note,
            isSystem: FrameRules.isSystemGoroutine(startFunction: startName),
            lockedToThread: u64(layout.lockedM) != 0)
        out.gAddress = address
        out.startPC = startPC
        out.goPC = goPC
        return .goroutine(out)
    }

    /// A compiler-made wrapper, which Go's traceback elides: named *.gowrapN (Go 1.22+), or
    /// marked by the release's wrapper funcID.
    func isWrapper(_ index: Int, _ name: String) -> Bool {
        if FrameRules.isGoStatementWrapperName(name) { return true }
        guard let w = wrapperFuncID, let id = try? exe.pclntab.funcID(ofFunction: index) else { return false }
        return id == w
    }

    /// "created by" as Go's dump prints it: the function holding the go statement (the
    /// physical one), with the file:line of the statement itself.
    func createdBy(_ goPC: UInt64) -> Frame? {
        guard goPC != 0 else { return nil }
        let pc = goPC &- bias
        guard let i = exe.pclntab.functionIndex(containing: pc), let entry = try? exe.pclntab.entry(ofFunction: i) else {
            return .unknown(pc: goPC)
        }
        guard let f = try? exe.pclntab.physicalFrame(at: pc > entry ? pc - 1 : pc) else { return .unknown(pc: goPC) }
        return Frame(function: FrameRules.printName(f.function), file: f.file, line: f.line, inlined: false)
    }

    /// The stack from a stopped goroutine's pc and sp, as Go's traceback walks it: each
    /// function's frame size at its pc (pclntab's pcsp table) gives where its return address
    /// is. Works for every function, frame pointer or not. Every step is checked: the pc in a
    /// function, the sp inside the goroutine's stack and rising; anything else ends the walk
    /// with a note instead of frames that could be garbage.
    func unwind(pc start: UInt64, sp startSP: UInt64, lo: UInt64, hi: UInt64) -> ([Frame], String?) {
        var pc = start, sp = startSP
        var frames: [Frame] = []
        var physical = 0
        while physical < Self.maxFrames {
            guard sp >= lo, sp < hi else { return ([], "changed while read") }
            let link = pc &- bias
            guard let i = exe.pclntab.functionIndex(containing: link), let entry = try? exe.pclntab.entry(ofFunction: i),
                  let name = try? exe.pclntab.name(ofFunction: i) else {
                return ([], "changed while read")
            }
            if FrameRules.stackTops.contains(name) { return (frames, nil) }
            // A return address is looked up at the call (pc - 1); a goroutine that has not run
            // yet stops at its function's entry, which is looked up as it is.
            let lookup = link > entry ? link - 1 : link
            let expansion = (try? exe.pclntab.frames(at: lookup)) ?? []
            for (k, f) in expansion.enumerated() {
                let first = frames.isEmpty && physical == 0
                if FrameRules.isHiddenInDump(f.function, firstFrame: first) || FrameRules.isWrapperFrame(file: f.file) { continue }
                // The physical frame of a compiler wrapper (go statements' wrappers included): elided.
                if k == expansion.count - 1 && isWrapper(i, name) { continue }
                var shown = f
                shown.function = FrameRules.printName(f.function)
                frames.append(shown)
            }
            physical += 1
            guard let size = try? exe.pclntab.frameSize(at: link), size >= 0 else { return ([], "changed while read") }
            let slot = sp &+ UInt64(size)
            guard slot >= sp, slot &+ 8 <= hi, let ret = memory.u64(slot) else { return ([], "changed while read") }
            pc = ret
            sp = slot &+ 8
        }
        return (frames, nil)
    }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
