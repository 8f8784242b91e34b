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

    /// What a snapshot needs of an executable, worked out once for all its processes (DWARF
    /// and the disassembly of runtime.allgadd are read once, not per process).
    public struct Program: Sendable {
        public let exe: GoExecutable
        let layout: GoroutineLayout
        let reasons: [String]
        let location: AllGoroutinesLocation

        /// `exe`: parsed from the file the processes run (/proc/PID/exe), never from a path.
        /// `layout`: runtime.g's offsets for a release gmon has no table of and whose binary has
        /// no DWARF (`gmon inspect --json` of a build of that release with DWARF prints them).
        public init(exe: GoExecutable, layout override: GoroutineLayout? = nil) throws {
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
        }
    }

    public convenience init(pid: Int32, exe: GoExecutable, file: FileIdentity?, layout: GoroutineLayout? = nil) throws {
        try self.init(pid: pid, program: Program(exe: exe, layout: layout), file: file)
    }

    public init(pid: Int32, program: Program, file: FileIdentity?) throws {
        self.pid = pid
        exe = program.exe
        layout = program.layout
        reasons = program.reasons
        location = program.location
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
        let text = exe.elf.segments.filter { $0.type == ELFSegment.typeLoad && $0.isExecutable }
        textRange = (text.map(\.virtualAddress).min() ?? 0)...(text.map { $0.virtualAddress + $0.memorySize }.max() ?? 0)
    }

    /// What a snapshot found and what it could not use. Goroutines are kept compact (about
    /// 70 bytes each: a million fit in ~70 MB) with their stacks, functions, creators and
    /// statuses interned: goroutines blocked in one place share one stack.
    public struct Snapshot: Sendable {
        public var pid: Int32
        public var goVersion: String
        /// CLOCK_MONOTONIC when the read began.
        public var takenAtNs: UInt64
        /// g's kept for reuse (dead): not goroutines.
        public var dead = 0
        /// g's that did not read as a goroutine (freed or reused during the read, or unreadable).
        public var unreadable = 0

        struct Record {
            var goid: UInt64, g: UInt64, startPC: UInt64, goPC: UInt64, parentGoid: UInt64
            var waitNs: UInt64   // UInt64.max: unknown
            var seenAtOffsetNs: UInt32
            var stack: Int32, createdBy: Int32, function: Int32
            var status: UInt16
            var state: UInt8
            var flags: UInt8   // 1 system, 2 locked to thread
        }
        var records: [Record] = []
        var stacks: [(frames: [Frame], note: String?)] = []
        var frames: [Frame?] = []
        var names: [String] = []
        var statuses: [String] = []

        public var count: Int { records.count }

        func goroutine(_ r: Record) -> Goroutine {
            let st = stacks[Int(r.stack)]
            var g = Goroutine(goid: r.goid, state: Goroutine.State.all[Int(r.state)], status: statuses[Int(r.status)],
                              waitSeconds: r.waitNs == .max ? nil : Double(r.waitNs) / 1e9, function: names[Int(r.function)],
                              createdBy: frames[Int(r.createdBy)], parentGoid: r.parentGoid == 0 ? nil : r.parentGoid,
                              stack: st.frames, stackNote: st.note, isSystem: r.flags & 1 != 0, lockedToThread: r.flags & 2 != 0)
            g.gAddress = r.g
            g.startPC = r.startPC
            g.goPC = r.goPC
            g.seenAtNs = takenAtNs &+ UInt64(r.seenAtOffsetNs)
            return g
        }

        /// Every goroutine, made one at a time (the snapshot stays compact).
        public func forEach(_ body: (Goroutine) -> Void) { for r in records { body(goroutine(r)) } }

        /// How many goroutines are in each status, without making each a value.
        public func countByStatus(includingSystem: Bool) -> [String: Int] {
            var n = [Int](repeating: 0, count: statuses.count)
            for r in records where includingSystem || r.flags & 1 == 0 { n[Int(r.status)] += 1 }
            var out: [String: Int] = [:]
            for (i, c) in n.enumerated() where c > 0 { out[statuses[i], default: 0] += c }
            return out
        }

        /// Every goroutine as a value of its own (for output; a million take a few hundred MB).
        public var goroutines: [Goroutine] { records.map(goroutine) }
    }

    /// Interning tables of one snapshot.
    struct Interned {
        var stackIDs: [[UInt64]: Int32] = [:]
        var frameIDs: [UInt64: Int32] = [:]
        /// By entry pc, then by name (wrappers of one function share it).
        var startIDs: [UInt64: Int32] = [:]
        var nameIDs: [String: Int32] = [:]
        /// By status number and wait reason.
        var statusIDs: [UInt32: UInt16] = [:]
    }

    public func snapshot() throws -> Snapshot {
        let now = monotonicNow()
        let gs = try allGs()
        var snap = Snapshot(pid: pid, goVersion: exe.goVersion, takenAtNs: now)
        snap.records.reserveCapacity(gs.count)
        var interned = Interned()
        // Stack 0: the running goroutine's (none); 1: a g that changed while it was read.
        snap.stacks = [([], "running"), ([], "changed while read")]
        interned.stackIDs = [[]: 0]
        snap.frames = [nil]
        interned.frameIDs = [0: 0]
        let size = layout.readSize
        forEachG(gs, size: size, beforeRecheck: { walkPendingStacks(&snap, &interned) }, window: { first, last, again in
            // A g whose status, id or saved sp changed from its first read to after its stack
            // was walked may have run meanwhile: it keeps what was read of it but not its stack.
            guard first < last else { return }
            for k in first..<last {
                let r = snap.records[k]
                guard let b = again(k) else { if r.stack != 0 { snap.records[k].stack = 1 }; continue }
                let same = b.loadUnaligned(fromByteOffset: layout.goid, as: UInt64.self) == r.goid
                    && b.loadUnaligned(fromByteOffset: layout.atomicStatus, as: UInt32.self) == pendingStatus[k - first]
                    && b.loadUnaligned(fromByteOffset: layout.schedSP, as: UInt64.self) == pendingSP[k - first].0
                    && b.loadUnaligned(fromByteOffset: layout.syscallSP, as: UInt64.self) == pendingSP[k - first].1
                if !same && r.stack != 0 { snap.records[k].stack = 1 }
            }
            pendingStatus.removeAll(keepingCapacity: true)
            pendingSP.removeAll(keepingCapacity: true)
        }) { address, bytes, readAt in
            guard let bytes else { snap.unreadable += 1; return false }
            switch record(at: address, bytes, now: now, into: &snap, &interned) {
            case .dead: snap.dead += 1; return false
            case .invalid: snap.unreadable += 1; return false
            case .goroutine(var r):
                r.seenAtOffsetNs = UInt32(min(readAt &- now, UInt64(UInt32.max)))
                snap.records.append(r)
                pendingStatus.append(bytes.loadUnaligned(fromByteOffset: layout.atomicStatus, as: UInt32.self))
                pendingSP.append((bytes.loadUnaligned(fromByteOffset: layout.schedSP, as: UInt64.self),
                                  bytes.loadUnaligned(fromByteOffset: layout.syscallSP, as: UInt64.self)))
                return true
            }
        }
        return snap
    }

    /// What each g of the current window held when read, for the check after the window.
    private var pendingStatus: [UInt32] = []
    private var pendingSP: [(UInt64, UInt64)] = []

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

    /// Reads the g's (`size` bytes each) in batches of 1024, each batch in one system call
    /// (process_vm_readv), g's that lie close together in one range (each range read costs
    /// the kernel a page lookup: a range per g was most of a million-goroutine snapshot's
    /// time). `body` gets each g's address, its bytes (nil: unreadable) and the time just
    /// before they were read, and says whether it kept the g as a record; `window` then gets
    /// the range of records kept from that batch and, for each of them, its g read again
    /// after `beforeRecheck` (which walks their stacks; nil: unreadable).
    func forEachG(_ gs: [UInt64], size: Int, beforeRecheck: () -> Void,
                  window: (Int, Int, (Int) -> UnsafeRawBufferPointer?) -> Void,
                  _ body: (UInt64, UnsafeRawBufferPointer?, UInt64) -> Bool) {
        let sorted = gs.filter { $0 != 0 && $0 % 8 == 0 }.sorted()
        let batch = 1024, maxRange = 1 << 16, maxGap = UInt64(1024)
        var kept = 0
        var i = 0
        var buffer: [UInt8] = [], again: [UInt8] = []
        while i < sorted.count {
            let part = Array(sorted[i..<min(i + batch, sorted.count)])
            // Ranges of g's: each starts at a g and covers the following ones while they are close.
            var starts: [UInt64] = [], lengths: [Int] = [], rangeOf: [Int] = [], offsetIn: [Int] = []
            for a in part {
                if let s = starts.last, a >= s, a - s + UInt64(size) <= UInt64(maxRange),
                   a <= s + UInt64(lengths[lengths.count - 1]) + maxGap {
                    offsetIn.append(Int(a - s))
                    lengths[lengths.count - 1] = Int(a - s) + size
                } else {
                    starts.append(a)
                    lengths.append(size)
                    offsetIn.append(0)
                }
                rangeOf.append(starts.count - 1)
            }
            let stride = lengths.max() ?? size
            if buffer.count < starts.count * stride { buffer = [UInt8](repeating: 0, count: starts.count * stride) }
            if again.count < starts.count * stride { again = [UInt8](repeating: 0, count: starts.count * stride) }
            let readAt = monotonicNow()
            let ok = buffer.withUnsafeMutableBytes { memory.read(addresses: starts, lengths: lengths, stride: stride, into: $0) }
            let first = kept
            var keptIndex: [Int] = []
            buffer.withUnsafeBytes { buf in
                for (k, a) in part.enumerated() {
                    let o = rangeOf[k] * stride + offsetIn[k]
                    let bytes = ok[rangeOf[k]] ? UnsafeRawBufferPointer(rebasing: buf[o..<(o + size)]) : nil
                    if body(a, bytes, readAt) { kept += 1; keptIndex.append(k) }
                }
            }
            beforeRecheck()
            let okAgain = again.withUnsafeMutableBytes { memory.read(addresses: starts, lengths: lengths, stride: stride, into: $0) }
            again.withUnsafeBytes { buf in
                window(first, kept) { r in
                    let k = keptIndex[r - first]
                    let o = rangeOf[k] * stride + offsetIn[k]
                    return okAgain[rangeOf[k]] ? UnsafeRawBufferPointer(rebasing: buf[o..<(o + size)]) : nil
                }
            }
            i += part.count
        }
    }

    // MARK: one g

    enum Outcome { case dead, invalid, goroutine(Snapshot.Record) }

    /// What a pc of the program means to the unwinder, worked out once per pc.
    struct PCInfo {
        /// Its function's name; nil outside Go's functions.
        let name: String?
        /// Bytes of the function's frame at the pc (the return address is at sp + this).
        let frameSize: Int?
        let isTop: Bool
        /// The frames Go's dump prints for it (inlined ones expanded), as the first frame and as another.
        let first: [Frame], other: [Frame]
    }
    private var pcInfo: [UInt64: PCInfo] = [:]
    private var functionNames: [UInt64: String] = [:]
    private var creators: [UInt64: Frame?] = [:]
    private var systemStarts: [UInt64: Bool] = [:]
    static let maxCachedPCs = 1 << 17

    func info(_ pc: UInt64) -> PCInfo {
        if let i = pcInfo[pc] { return i }
        let link = pc &- bias
        var result = PCInfo(name: nil, frameSize: nil, isTop: false, first: [], other: [])
        if let i = exe.pclntab.functionIndex(containing: link), let entry = try? exe.pclntab.entry(ofFunction: i),
           let name = try? exe.pclntab.name(ofFunction: i) {
            // A return address is looked up at the call (pc - 1); a goroutine that has not run
            // yet stops at its function's entry, which is looked up as it is.
            let lookup = link > entry ? link - 1 : link
            let expansion = (try? exe.pclntab.frames(at: lookup)) ?? []
            func shown(firstFrame: Bool) -> [Frame] {
                var out: [Frame] = []
                for (k, f) in expansion.enumerated() {
                    if FrameRules.isHiddenInDump(f.function, firstFrame: firstFrame && out.isEmpty) || FrameRules.isWrapperFrame(file: f.file) { continue }
                    // The physical frame of a compiler wrapper (go statements' wrappers included): elided.
                    if k == expansion.count - 1 && isWrapper(i, name) { continue }
                    var v = f
                    v.function = FrameRules.printName(f.function)
                    out.append(v)
                }
                return out
            }
            result = PCInfo(name: name, frameSize: try? exe.pclntab.frameSize(at: link), isTop: FrameRules.stackTops.contains(name),
                            first: shown(firstFrame: true), other: shown(firstFrame: false))
        }
        if pcInfo.count >= Self.maxCachedPCs { pcInfo.removeAll(keepingCapacity: true) }
        pcInfo[pc] = result
        return result
    }

    func record(at address: UInt64, _ g: UnsafeRawBufferPointer, now: UInt64, into snap: inout Snapshot, _ interned: inout Interned) -> Outcome {
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
        let state = Goroutine.State.all[Int(status)]
        let reason = state == .waiting || state == .leaked ? UInt32(g.load(fromByteOffset: layout.waitReason, as: UInt8.self)) : 0
        let statusID: UInt16
        if let id = interned.statusIDs[status << 8 | reason] { statusID = id } else {
            var statusText = FrameRules.statusName(status)
            // Go's words: the wait reason when there is one ("unknown wait reason" past the table).
            if reason != 0 {
                let r = Int(reason)
                statusText = r < reasons.count ? reasons[r] : reasons.isEmpty ? "waiting (reason \(r))" : "unknown wait reason"
            }
            // Go 1.26+: found leaked by the GC's leak detector.
            if state == .leaked { statusText += " (leaked)" }
            statusID = UInt16(min(snap.statuses.count, Int(UInt16.max)))
            snap.statuses.append(statusText)
            interned.statusIDs[status << 8 | reason] = statusID
        }
        var waitNs = UInt64.max
        if state == .waiting || state == .syscall {
            let since = Int64(bitPattern: u64(layout.waitSince))
            if since > 0, UInt64(since) <= now { waitNs = now - UInt64(since) }
        }
        // The stack is walked after the whole window of g's is read (their stacks' tops are
        // read together): `pending` says where to start.
        let stack: Int32
        if state == .running {
            stack = 0
        } else {
            // In a system call (or stopped in one's entry or exit): where it entered it, as Go's
            // traceback starts; otherwise where it was stopped (g.sched).
            let inSyscall = state == .syscall || u64(layout.syscallSP) != 0
            pending.append(PendingStack(record: snap.records.count, pc: u64(inSyscall ? layout.syscallPC : layout.schedPC),
                                        sp: u64(inSyscall ? layout.syscallSP : layout.schedSP), lo: lo, hi: hi))
            stack = -1
        }
        let functionID: Int32
        if let id = interned.startIDs[startPC] { functionID = id } else {
            let function = entryName(startPC)
            if let id = interned.nameIDs[function] { functionID = id } else {
                functionID = Int32(snap.names.count)
                snap.names.append(function)
                interned.nameIDs[function] = functionID
            }
            interned.startIDs[startPC] = functionID
        }
        let creatorKey = goid == 1 ? 0 : goPC
        let creatorID: Int32
        if let id = interned.frameIDs[creatorKey] { creatorID = id } else {
            creatorID = Int32(snap.frames.count)
            snap.frames.append(createdBy(goPC))
            interned.frameIDs[creatorKey] = creatorID
        }
        var flags: UInt8 = isSystem(startPC) ? 1 : 0
        if u64(layout.lockedM) != 0 { flags |= 2 }
        return .goroutine(Snapshot.Record(goid: goid, g: address, startPC: startPC, goPC: goPC, parentGoid: layout.parentGoid.map { u64($0) } ?? 0,
                                          waitNs: waitNs, seenAtOffsetNs: 0, stack: stack, createdBy: creatorID, function: functionID,
                                          status: statusID, state: UInt8(status), flags: flags))
    }

    func entryName(_ startPC: UInt64) -> String {
        if let n = functionNames[startPC] { return n }
        let n = resolver.entryFunction(startPC &- bias)
        if functionNames.count >= Self.maxCachedPCs { functionNames.removeAll(keepingCapacity: true) }
        functionNames[startPC] = n
        return n
    }

    func isSystem(_ startPC: UInt64) -> Bool {
        if let s = systemStarts[startPC] { return s }
        let name = exe.pclntab.functionIndex(containing: startPC &- bias).flatMap { try? exe.pclntab.name(ofFunction: $0) } ?? ""
        let s = FrameRules.isSystemGoroutine(startFunction: name)
        if systemStarts.count >= Self.maxCachedPCs { systemStarts.removeAll(keepingCapacity: true) }
        systemStarts[startPC] = s
        return s
    }

    /// A compiler-made wrapper, which Go's traceback elides (go statements' wrappers included).
    func isWrapper(_ index: Int, _ name: String) -> Bool { resolver.isGoStatementWrapper(index, name) }

    /// "created by" as Go's dump prints it: the function holding the go statement (the
    /// physical one), with the file:line of the statement itself.
    func createdBy(_ goPC: UInt64) -> Frame? {
        if let c = creators[goPC] { return c }
        var out: Frame?
        if goPC != 0 {
            let pc = goPC &- bias
            if let i = exe.pclntab.functionIndex(containing: pc), let entry = try? exe.pclntab.entry(ofFunction: i),
               let f = try? exe.pclntab.physicalFrame(at: pc > entry ? pc - 1 : pc) {
                out = Frame(function: FrameRules.printName(f.function), file: f.file, line: f.line, inlined: false)
            } else {
                out = .unknown(pc: goPC)
            }
        }
        if creators.count >= Self.maxCachedPCs { creators.removeAll(keepingCapacity: true) }
        creators[goPC] = out
        return out
    }

    /// A goroutine whose stack is walked once its window of g's is read.
    struct PendingStack { let record: Int; let pc: UInt64; let sp: UInt64; let lo: UInt64; let hi: UInt64 }
    private var pending: [PendingStack] = []
    /// The top of each pending goroutine's stack, read in one system call for many: a
    /// parked goroutine's frames are mostly within it (a read per goroutine was most of a
    /// million-goroutine snapshot's time).
    static let stackTop = 1024
    private var tops = [UInt8]()

    func walkPendingStacks(_ snap: inout Snapshot, _ interned: inout Interned) {
        guard !pending.isEmpty else { return }
        let n = pending.count, stride = Self.stackTop
        if tops.count < n * stride { tops = [UInt8](repeating: 0, count: n * stride) }
        let lengths = pending.map { $0.sp >= $0.lo && $0.sp < $0.hi ? Int(min(UInt64(stride), $0.hi - $0.sp)) : 0 }
        let ok = tops.withUnsafeMutableBytes { memory.read(addresses: pending.map(\.sp), lengths: lengths, stride: stride, into: $0) }
        tops.withUnsafeBytes { all in
            for (k, p) in pending.enumerated() {
                let top = ok[k] ? UnsafeRawBufferPointer(rebasing: all[(k * stride)..<(k * stride + lengths[k])]) : UnsafeRawBufferPointer(start: nil, count: 0)
                let stack: Int32
                if let pcs = unwind(pc: p.pc, sp: p.sp, lo: p.lo, hi: p.hi, top: top) {
                    if let id = interned.stackIDs[pcs] {
                        stack = id
                    } else {
                        var frames: [Frame] = []
                        for (i, pc) in pcs.enumerated() { frames += i == 0 ? info(pc).first : info(pc).other }
                        stack = Int32(snap.stacks.count)
                        snap.stacks.append((frames, nil))
                        interned.stackIDs[pcs] = stack
                    }
                } else {
                    stack = 1
                }
                snap.records[p.record].stack = stack
            }
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// The physical pcs of a stopped goroutine's stack, as Go's traceback walks it: each
    /// function's frame size at its pc (pclntab's pcsp table) gives where its return address
    /// is. Works for every function, frame pointer or not. Every step is checked: the pc in a
    /// function, the sp inside the goroutine's stack and rising; anything else gives nil (the
    /// stack is not reported) instead of frames that could be garbage. `top`: the stack's
    /// memory from sp on, as far as read; slots past it are read one by one.
    func unwind(pc start: UInt64, sp startSP: UInt64, lo: UInt64, hi: UInt64, top: UnsafeRawBufferPointer) -> [UInt64]? {
        var pc = start, sp = startSP
        guard sp >= lo, sp < hi else { return nil }
        let topStart = startSP, topEnd = startSP + UInt64(top.count)
        var pcs: [UInt64] = []
        while pcs.count < Self.maxFrames {
            guard sp >= lo, sp < hi else { return nil }
            let i = info(pc)
            guard i.name != nil, let size = i.frameSize, size >= 0 else { return nil }
            if i.isTop { return pcs }
            pcs.append(pc)
            let slot = sp &+ UInt64(size)
            guard slot >= sp, slot &+ 8 <= hi else { return nil }
            let ret: UInt64
            if slot >= topStart, slot + 8 <= topEnd {
                ret = top.loadUnaligned(fromByteOffset: Int(slot - topStart), as: UInt64.self)
            } else if let r = memory.u64(slot) {
                ret = r
            } else {
                return nil
            }
            pc = ret
            sp = slot &+ 8
        }
        return pcs
    }
}
