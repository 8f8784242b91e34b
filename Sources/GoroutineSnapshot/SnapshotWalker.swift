import GmonModel
import GoBinary
import GoRuntime
import ProcFS
import Symbolization

/// One thread's share of a snapshot: it reads a run of g's (sorted by address), keeps a
/// record for each goroutine among them and walks their stacks. Its pc caches live as long
/// as its reader; the rest is reset after each snapshot. Used by one thread at a time.
final class SnapshotWalker: @unchecked Sendable {
    typealias Record = GoroutineReader.Snapshot.Record
    let exe: GoExecutable
    let layout: GoroutineLayout
    let reasons: [String]
    let memory: ProcessMemory
    let resolver: GoSiteResolver
    let bias: UInt64
    let textRange: ClosedRange<UInt64>

    init(exe: GoExecutable, layout: GoroutineLayout, reasons: [String], memory: ProcessMemory, resolver: GoSiteResolver,
         bias: UInt64, textRange: ClosedRange<UInt64>) {
        self.exe = exe
        self.layout = layout
        self.reasons = reasons
        self.memory = memory
        self.resolver = resolver
        self.bias = bias
        self.textRange = textRange
        reset()
    }

    /// Where a walker puts its records (at most one per g of `range`) and which g's are its.
    struct Part { let base: UnsafeMutablePointer<Record>?; let range: Range<Int> }

    /// A snapshot's interned values (stacks, creators, functions, statuses) and their keys.
    struct Tables {
        var stacks: [(frames: [Frame], note: String?)] = [([], "running"), ([], "changed while read")]
        var frames: [Frame?] = [nil]
        var names: [String] = []
        var statuses: [String] = []
        /// Stack 0: the running goroutine's (none); 1: a g that changed while it was read (no key).
        var stackIDs: [[UInt64]: Int32] = [[]: 0]
        var frameIDs: [UInt64: Int32] = [0: 0]
        /// By entry pc, then by name (wrappers of one function share it).
        var startIDs: [UInt64: Int32] = [:]
        var nameIDs: [String: Int32] = [:]
        /// By status number and wait reason.
        var statusIDs: [UInt32: UInt16] = [:]

        /// How another walker's numbers translate into these tables'.
        struct Renumbering {
            var stacks: [Int32], frames: [Int32], names: [Int32], statuses: [UInt16]
            func apply(_ r: inout Record) {
                if r.stack >= 0 { r.stack = stacks[Int(r.stack)] }
                r.createdBy = frames[Int(r.createdBy)]
                r.function = names[Int(r.function)]
                r.status = statuses[Int(r.status)]
            }
        }

        /// Adds what `other` has and these tables lack; says how to renumber its records.
        mutating func merge(_ other: Tables) -> Renumbering {
            var map = Renumbering(stacks: [0, 1] + Array(repeating: 1, count: max(0, other.stacks.count - 2)),
                                  frames: Array(repeating: 0, count: other.frames.count),
                                  names: Array(repeating: 0, count: other.names.count),
                                  statuses: Array(repeating: 0, count: other.statuses.count))
            for (key, id) in other.stackIDs where id >= 2 {
                if let mine = stackIDs[key] { map.stacks[Int(id)] = mine; continue }
                let mine = Int32(stacks.count)
                stacks.append(other.stacks[Int(id)])
                stackIDs[key] = mine
                map.stacks[Int(id)] = mine
            }
            for (key, id) in other.frameIDs {
                if let mine = frameIDs[key] { map.frames[Int(id)] = mine; continue }
                let mine = Int32(frames.count)
                frames.append(other.frames[Int(id)])
                frameIDs[key] = mine
                map.frames[Int(id)] = mine
            }
            for (id, name) in other.names.enumerated() {
                if let mine = nameIDs[name] { map.names[id] = mine; continue }
                let mine = Int32(names.count)
                names.append(name)
                nameIDs[name] = mine
                map.names[id] = mine
            }
            for (key, id) in other.statusIDs {
                if let mine = statusIDs[key] { map.statuses[Int(id)] = mine; continue }
                let mine = UInt16(min(statuses.count, Int(UInt16.max)))
                statuses.append(other.statuses[Int(id)])
                statusIDs[key] = mine
                map.statuses[Int(id)] = mine
            }
            return map
        }
    }

    // What one snapshot found so far (reset after it).
    private(set) var tables = Tables()
    private(set) var kept = 0
    private(set) var dead = 0
    private(set) var unreadable = 0
    private var out: UnsafeMutablePointer<Record> = UnsafeMutablePointer(bitPattern: 8)!
    /// What each g of the current window held when read, for the check after the window.
    private var pendingStatus: [UInt32] = []
    private var pendingSP: [(UInt64, UInt64)] = []

    private var lastStart: (pc: UInt64, function: Int32, system: Bool)?
    private var lastCreator: (key: UInt64, id: Int32)?
    private var lastStatus: (key: UInt32, id: UInt16)?

    func reset() {
        lastStart = nil
        lastCreator = nil
        lastStatus = nil
        tables = Tables()
        kept = 0
        dead = 0
        unreadable = 0
        pending.removeAll()
        pendingStatus.removeAll()
        pendingSP.removeAll()
    }

    /// Reads `sorted[part.range]`'s g's in batches of 1024, each batch in one system call
    /// (process_vm_readv), g's that lie close together in one range (each range read costs
    /// the kernel a page lookup: a range per g was most of a million-goroutine snapshot's
    /// time). After a batch, the stacks of its goroutines are walked, then its g's are read
    /// again: a g whose status, id or saved sp changed meanwhile may have run, and keeps
    /// what was read of it but not its stack.
    func walk(_ sorted: [UInt64], _ part: Part, now: UInt64) {
        guard let base = part.base, !part.range.isEmpty else { return }
        out = base
        let size = layout.readSize
        let batch = 1024, maxRange = 1 << 16, maxGap = UInt64(1024)
        var i = part.range.lowerBound
        var buffer: [UInt8] = [], again: [UInt8] = []
        var starts: [UInt64] = [], lengths: [Int] = [], rangeOf: [Int] = [], offsetIn: [Int] = [], keptIndex: [Int] = []
        while i < part.range.upperBound {
            let batchEnd = min(i + batch, part.range.upperBound)
            // Ranges of g's: each starts at a g and covers the following ones while they are close.
            starts.removeAll(keepingCapacity: true); lengths.removeAll(keepingCapacity: true)
            rangeOf.removeAll(keepingCapacity: true); offsetIn.removeAll(keepingCapacity: true)
            for a in sorted[i..<batchEnd] {
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
            let seenAt = UInt32(min(readAt &- now, UInt64(UInt32.max)))
            let ok = buffer.withUnsafeMutableBytes { memory.read(addresses: starts, lengths: lengths, stride: stride, into: $0) }
            let first = kept
            keptIndex.removeAll(keepingCapacity: true)
            buffer.withUnsafeBytes { buf in
                for k in 0..<(batchEnd - i) {
                    guard ok[rangeOf[k]] else { unreadable += 1; continue }
                    let o = rangeOf[k] * stride + offsetIn[k]
                    let bytes = UnsafeRawBufferPointer(rebasing: buf[o..<(o + size)])
                    switch record(at: sorted[i + k], bytes, now: now) {
                    case .dead: dead += 1
                    case .invalid: unreadable += 1
                    case .goroutine(var r):
                        r.seenAtOffsetNs = seenAt
                        (out + kept).initialize(to: r)
                        kept += 1
                        keptIndex.append(k)
                        pendingStatus.append(bytes.loadUnaligned(fromByteOffset: layout.atomicStatus, as: UInt32.self))
                        pendingSP.append((bytes.loadUnaligned(fromByteOffset: layout.schedSP, as: UInt64.self),
                                          bytes.loadUnaligned(fromByteOffset: layout.syscallSP, as: UInt64.self)))
                    }
                }
            }
            walkPendingStacks()
            let okAgain = again.withUnsafeMutableBytes { memory.read(addresses: starts, lengths: lengths, stride: stride, into: $0) }
            again.withUnsafeBytes { buf in
                for r in first..<kept {
                    let k = keptIndex[r - first]
                    let rec = out[r]
                    guard rec.stack != 0 else { continue }
                    guard okAgain[rangeOf[k]] else { out[r].stack = 1; continue }
                    let o = rangeOf[k] * stride + offsetIn[k]
                    let b = UnsafeRawBufferPointer(rebasing: buf[o..<(o + size)])
                    let same = b.loadUnaligned(fromByteOffset: layout.goid, as: UInt64.self) == rec.goid
                        && b.loadUnaligned(fromByteOffset: layout.atomicStatus, as: UInt32.self) == pendingStatus[r - first]
                        && b.loadUnaligned(fromByteOffset: layout.schedSP, as: UInt64.self) == pendingSP[r - first].0
                        && b.loadUnaligned(fromByteOffset: layout.syscallSP, as: UInt64.self) == pendingSP[r - first].1
                    if !same { out[r].stack = 1 }
                }
            }
            pendingStatus.removeAll(keepingCapacity: true)
            pendingSP.removeAll(keepingCapacity: true)
            i = batchEnd
        }
    }

    // MARK: one g

    enum Outcome { case dead, invalid, goroutine(Record) }

    /// What a pc means to the unwinder, worked out once per pc: a plain value, so the
    /// million lookups of a large snapshot cost no reference counting.
    struct Step {
        /// Bytes of the function's frame at the pc (the return address is at sp + this); -1:
        /// not in a Go function, or no frame size known.
        let frameSize: Int32
        let isTop: Bool
    }
    /// The frames Go's dump prints for a pc (inlined ones expanded), as the first frame and
    /// as another: needed only for a stack not seen before.
    struct PCFrames { let first: [Frame], other: [Frame] }
    private var steps: [UInt64: Step] = [:]
    private var pcFrames: [UInt64: PCFrames] = [:]
    private var functionNames: [UInt64: String] = [:]
    private var creators: [UInt64: Frame?] = [:]
    private var systemStarts: [UInt64: Bool] = [:]
    static let maxCachedPCs = 1 << 17

    /// A direct-mapped cache in front of `steps`: a stack's few pcs recur a million times.
    private var recentPCs = [UInt64](repeating: 0, count: 1024)
    private var recentSteps = [Step](repeating: Step(frameSize: -1, isTop: false), count: 1024)

    func step(_ pc: UInt64) -> Step {
        let slot = Int(truncatingIfNeeded: (pc ^ (pc >> 10)) & 1023)
        if recentPCs[slot] == pc, pc != 0 { return recentSteps[slot] }
        let s = lookupStep(pc)
        recentPCs[slot] = pc
        recentSteps[slot] = s
        return s
    }

    private func lookupStep(_ pc: UInt64) -> Step {
        if let s = steps[pc] { return s }
        var result = Step(frameSize: -1, isTop: false)
        let link = pc &- bias
        if let i = exe.pclntab.functionIndex(containing: link), let name = try? exe.pclntab.name(ofFunction: i),
           let size = try? exe.pclntab.frameSize(at: link), size >= 0, size < Int(Int32.max) {
            result = Step(frameSize: Int32(size), isTop: FrameRules.stackTops.contains(name))
        }
        if steps.count >= Self.maxCachedPCs { steps.removeAll(keepingCapacity: true) }
        steps[pc] = result
        return result
    }

    func frames(_ pc: UInt64) -> PCFrames {
        if let f = pcFrames[pc] { return f }
        let link = pc &- bias
        var result = PCFrames(first: [], other: [])
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
            result = PCFrames(first: shown(firstFrame: true), other: shown(firstFrame: false))
        }
        if pcFrames.count >= Self.maxCachedPCs { pcFrames.removeAll(keepingCapacity: true) }
        pcFrames[pc] = result
        return result
    }

    func record(at address: UInt64, _ g: UnsafeRawBufferPointer, now: UInt64) -> Outcome {
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
        if let last = lastStatus, last.key == status << 8 | reason { statusID = last.id }
        else if let id = tables.statusIDs[status << 8 | reason] { statusID = id } else {
            var statusText = FrameRules.statusName(status)
            // Go's words: the wait reason when there is one ("unknown wait reason" past the table).
            if reason != 0 {
                let r = Int(reason)
                statusText = r < reasons.count ? reasons[r] : reasons.isEmpty ? "waiting (reason \(r))" : "unknown wait reason"
            }
            // Go 1.26+: found leaked by the GC's leak detector.
            if state == .leaked { statusText += " (leaked)" }
            statusID = UInt16(min(tables.statuses.count, Int(UInt16.max)))
            tables.statuses.append(statusText)
            tables.statusIDs[status << 8 | reason] = statusID
        }
        lastStatus = (status << 8 | reason, statusID)
        var waitCentis = UInt32.max
        if state == .waiting || state == .syscall {
            let since = Int64(bitPattern: u64(layout.waitSince))
            if since > 0, UInt64(since) <= now { waitCentis = UInt32(min((now - UInt64(since)) / 10_000_000, UInt64(UInt32.max - 1))) }
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
            pending.append(PendingStack(record: kept, pc: u64(inSyscall ? layout.syscallPC : layout.schedPC),
                                        sp: u64(inSyscall ? layout.syscallSP : layout.schedSP), lo: lo, hi: hi))
            stack = -1
        }
        // Most goroutines share their neighbour's function, creator and status: the last of
        // each is kept at hand, before the tables are asked.
        let functionID: Int32, system: Bool
        if let last = lastStart, last.pc == startPC { (functionID, system) = (last.function, last.system) }
        else if let id = tables.startIDs[startPC] { (functionID, system) = (id, isSystem(startPC)) } else {
            let function = entryName(startPC)
            if let id = tables.nameIDs[function] { functionID = id } else {
                functionID = Int32(tables.names.count)
                tables.names.append(function)
                tables.nameIDs[function] = functionID
            }
            tables.startIDs[startPC] = functionID
            system = isSystem(startPC)
        }
        lastStart = (startPC, functionID, system)
        let creatorKey = goid == 1 ? 0 : goPC
        let creatorID: Int32
        if let last = lastCreator, last.key == creatorKey { creatorID = last.id }
        else if let id = tables.frameIDs[creatorKey] { creatorID = id } else {
            creatorID = Int32(tables.frames.count)
            tables.frames.append(createdBy(goPC))
            tables.frameIDs[creatorKey] = creatorID
        }
        lastCreator = (creatorKey, creatorID)
        var flags: UInt8 = system ? 1 : 0
        if u64(layout.lockedM) != 0 { flags |= 2 }
        return .goroutine(Record(goid: goid, g: address, startPC: startPC, goPC: goPC, parentGoid: layout.parentGoid.map { u64($0) } ?? 0,
                                          waitCentis: waitCentis, seenAtOffsetNs: 0, stack: stack, createdBy: creatorID, function: functionID,
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
    /// The pcs of the stack being walked (one buffer for all: no allocation per goroutine).
    private var pcs: [UInt64] = []

    func walkPendingStacks() {
        guard !pending.isEmpty else { return }
        let n = pending.count, stride = Self.stackTop
        if tops.count < n * stride { tops = [UInt8](repeating: 0, count: n * stride) }
        let lengths = pending.map { $0.sp >= $0.lo && $0.sp < $0.hi ? Int(min(UInt64(stride), $0.hi - $0.sp)) : 0 }
        let ok = tops.withUnsafeMutableBytes { memory.read(addresses: pending.map(\.sp), lengths: lengths, stride: stride, into: $0) }
        tops.withUnsafeBytes { all in
            for (k, p) in pending.enumerated() {
                let top = ok[k] ? UnsafeRawBufferPointer(rebasing: all[(k * stride)..<(k * stride + lengths[k])]) : UnsafeRawBufferPointer(start: nil, count: 0)
                let stack: Int32
                if unwind(pc: p.pc, sp: p.sp, lo: p.lo, hi: p.hi, top: top, into: &pcs) {
                    if let id = tables.stackIDs[pcs] {
                        stack = id
                    } else {
                        var list: [Frame] = []
                        for (i, pc) in pcs.enumerated() { list += i == 0 ? frames(pc).first : frames(pc).other }
                        stack = Int32(tables.stacks.count)
                        tables.stacks.append((list, nil))
                        tables.stackIDs[pcs] = stack
                    }
                } else {
                    stack = 1
                }
                out[p.record].stack = stack
            }
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// The physical pcs of a stopped goroutine's stack, as Go's traceback walks it: each
    /// function's frame size at its pc (pclntab's pcsp table) gives where its return address
    /// is. Works for every function, frame pointer or not. Every step is checked: the pc in a
    /// function, the sp inside the goroutine's stack and rising; anything else gives nil (the
    /// stack is not reported) instead of frames that could be garbage. `top`: the stack's
    /// memory from sp on, as far as read; slots past it are read one by one. The pcs go to
    /// `pcs`; false when the stack is not reported.
    func unwind(pc start: UInt64, sp startSP: UInt64, lo: UInt64, hi: UInt64, top: UnsafeRawBufferPointer, into pcs: inout [UInt64]) -> Bool {
        pcs.removeAll(keepingCapacity: true)
        var pc = start, sp = startSP
        guard sp >= lo, sp < hi else { return false }
        let topStart = startSP, topEnd = startSP + UInt64(top.count)
        while pcs.count < GoroutineReader.maxFrames {
            guard sp >= lo, sp < hi else { return false }
            let s = step(pc)
            guard s.frameSize >= 0 else { return false }
            if s.isTop { return true }
            pcs.append(pc)
            let slot = sp &+ UInt64(s.frameSize)
            guard slot >= sp, slot &+ 8 <= hi else { return false }
            let ret: UInt64
            if slot >= topStart, slot + 8 <= topEnd {
                ret = top.loadUnaligned(fromByteOffset: Int(slot - topStart), as: UInt64.self)
            } else if let r = memory.u64(slot) {
                ret = r
            } else {
                return false
            }
            pc = ret
            sp = slot &+ 8
        }
        return true
    }
}
