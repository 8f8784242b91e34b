import GmonModel
import GoBinary
import GoRuntime
import ProcFS
import Symbolization
import Dispatch
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
    let file: FileIdentity?
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
        self.file = file
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
    /// 64 bytes each: a million fit in 64 MB) with their stacks, functions, creators and
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
            /// Hundredths of a second (a 64-byte record; Go's dump prints minutes); UInt32.max: unknown.
            var waitCentis: UInt32
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
                              waitSeconds: r.waitCentis == .max ? nil : Double(r.waitCentis) / 100, function: names[Int(r.function)],
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

    /// Snapshots of more g's than this are read by two threads (each reads and unwinds half
    /// of the g's; the kernel's page pinning and copying run on both cores). Fewer are not
    /// worth a thread.
    static let parallelFrom = 50_000
    /// Walkers kept across snapshots of this process (their pc caches stay warm).
    private var walkers: [SnapshotWalker] = []

    /// `threads`: how many threads read the g's (nil: two from `parallelFrom` g's on, else one).
    public func snapshot(threads wanted: Int? = nil) throws -> Snapshot {
        let now = monotonicNow()
        var sorted = try allGs()
        sorted.removeAll { $0 == 0 || $0 % 8 != 0 }
        sorted.sort()
        let threads = max(1, min(wanted ?? (sorted.count >= Self.parallelFrom ? 2 : 1), 8, max(sorted.count, 1)))
        while walkers.count < threads {
            walkers.append(SnapshotWalker(exe: exe, layout: layout, reasons: reasons, memory: memory,
                                          resolver: GoSiteResolver(exe: exe, file: file), bias: bias, textRange: textRange))
        }
        let chunk = (sorted.count + threads - 1) / threads
        var snap = Snapshot(pid: pid, goVersion: exe.goVersion, takenAtNs: now)
        var merged = SnapshotWalker.Tables()
        // Each thread writes its records into its own part of one buffer (at most one record
        // per g), so a million records are never held twice.
        snap.records = Array(unsafeUninitializedCapacity: sorted.count) { buffer, count in
            let walkers = self.walkers
            let parts = (0..<threads).map { t in SnapshotWalker.Part(base: buffer.baseAddress.map { $0 + t * chunk }, range: min(sorted.count, t * chunk)..<min(sorted.count, (t + 1) * chunk)) }
            if threads == 1 {
                walkers[0].walk(sorted, parts[0], now: now)
            } else {
                let shared = SendableBox((walkers, parts, sorted))
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    let (walkers, parts, sorted) = shared.value
                    walkers[t].walk(sorted, parts[t], now: now)
                }
            }
            // Part t's tables are merged into part 0's, its records renumbered and moved down.
            merged = walkers[0].tables
            count = walkers[0].kept
            for t in 1..<threads {
                let map = merged.merge(walkers[t].tables)
                let from = parts[t].base!
                for k in 0..<walkers[t].kept {
                    var r = from[k]
                    map.apply(&r)
                    (buffer.baseAddress! + count).initialize(to: r)
                    count += 1
                }
            }
        }
        snap.stacks = merged.stacks
        snap.frames = merged.frames
        snap.names = merged.names
        snap.statuses = merged.statuses
        snap.dead = walkers.prefix(threads).reduce(0) { $0 + $1.dead }
        snap.unreadable = walkers.prefix(threads).reduce(0) { $0 + $1.unreadable }
        for w in walkers { w.reset() }
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
                  count <= UInt64(ProcessMemory.maxRead / 8) else { continue }
            // Read straight into the array (a million g's: 8 MB, not held twice).
            var gs = [UInt64](repeating: 0, count: Int(count))
            guard gs.withUnsafeMutableBytes({ memory.read(array, into: $0) }) else { continue }
            // allgs[0] is goroutine 1's g (the first g the runtime makes): a stripped binary's
            // candidate is believed only then.
            guard let first = gs.first, let goid = memory.u64(first &+ UInt64(layout.goid)), goid == 1 else { continue }
            allgsAddress = a
            return gs
        }
        throw Failure("cannot find the list of goroutines (runtime.allgs) in process \(pid)'s memory: is it a Go program of \(exe.goVersion)?")
    }
}

/// A value handed to the threads of one snapshot, each of which uses only its own part.
struct SendableBox<T>: @unchecked Sendable { let value: T; init(_ v: T) { value = v } }
