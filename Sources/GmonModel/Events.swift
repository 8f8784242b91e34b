#if canImport(Glibc)
import Glibc
#endif

/// What the kernel side reports, decoded. Timestamps are CLOCK_MONOTONIC
/// nanoseconds taken in the kernel at the probe.
public enum Event: Sendable, Equatable {
    case create(Creation)
    /// `g`: the runtime.g's address, which pairs the exit with its creation. `goid` is 0
    /// unless the kernel side was asked to read it (debug logs).
    /// `creationLost`: the kernel side could not deliver this goroutine's creation (ring full).
    case exit(pid: UInt32, g: UInt64, goid: UInt64, timeNs: UInt64, creationLost: Bool = false)
    case processExit(pid: UInt32, timeNs: UInt64)
    /// The process ran exec: its goroutines ended with the old image, the new one starts clean.
    case processExec(pid: UInt32, timeNs: UInt64)
}

public struct Creation: Sendable, Equatable {
    public var pid: UInt32
    /// Which watched executable's probe saw it.
    public var executable: ExecutableID
    public var goid: UInt64
    /// Address of the new runtime.g: its exit names it by this.
    public var g: UInt64
    /// 0 when the Go release has no g.parentGoid (before 1.21).
    public var parentGoid: UInt64
    public var timeNs: UInt64
    /// Entry PC of the new goroutine (g.startpc).
    public var startPC: UInt64
    /// PC of the go statement (g.gopc): a return address after the CALL runtime.newproc.
    public var goPC: UInt64
    /// The creator's user stack, innermost first (first entry: the probe's IP).
    public var stack: [UInt64]
    /// Where the probe fired (run-time address); 0 when unknown.
    public var probeIP: UInt64

    public init(pid: UInt32, goid: UInt64, g: UInt64, parentGoid: UInt64, timeNs: UInt64, startPC: UInt64, goPC: UInt64,
                stack: [UInt64], probeIP: UInt64 = 0, executable: ExecutableID = .init(0)) {
        self.pid = pid; self.executable = executable; self.goid = goid; self.g = g; self.parentGoid = parentGoid; self.timeNs = timeNs
        self.startPC = startPC; self.goPC = goPC; self.stack = stack; self.probeIP = probeIP
    }
}

/// Where goroutines come from: the labels gmon reports them under.
public struct CreationSite: Sendable, Hashable {
    /// The executable whose code made them: same-named functions of two binaries are two sites.
    public var executable: ExecutableID
    /// The goroutine's entry function as the user wrote it (`go f(x)` → f).
    public var function: String
    /// The frame that ran the go statement: main.main at main.go:14.
    public var createdBy: Frame
    /// The creator's stack above the runtime's creation frames, innermost first.
    public var stack: [Frame]

    public init(executable: ExecutableID = .init(0), function: String, createdBy: Frame, stack: [Frame]) {
        self.executable = executable; self.function = function; self.createdBy = createdBy; self.stack = stack
    }
}

/// A watched executable, as numbered by the monitor: the kernel side tags each probe with it
/// (the uprobe's attach cookie), so events and sites of different binaries never mix.
public struct ExecutableID: Sendable, Hashable, Comparable {
    public var rawValue: UInt32
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// One logical frame of a Go stack (inlined calls are frames of their own).
public struct Frame: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var function: String
    /// Empty when unknown (an address outside the symbol table).
    public var file: String
    /// 0 when unknown.
    public var line: Int
    /// True when the compiler inlined this call into the frame's caller.
    public var inlined: Bool

    public init(function: String, file: String, line: Int, inlined: Bool) {
        self.function = function; self.file = file; self.line = line; self.inlined = inlined
    }

    /// An address no symbol covers: shown as the address.
    public static func unknown(pc: UInt64) -> Frame { Frame(function: "0x" + String(pc, radix: 16), file: "", line: 0, inlined: false) }

    /// Not a frame: a note standing where frames were left out.
    public static func note(_ text: String) -> Frame { Frame(function: text, file: "", line: 0, inlined: false) }

    /// `package.Function (file.go:123)`, with the file's base name; the function alone when the file is unknown.
    public var description: String {
        if file.isEmpty { return function }
        // The base name by the last "/" in UTF-8 (split over Characters was most of a new stack's cost).
        let u = file.utf8
        let base = u.lastIndex(of: UInt8(ascii: "/")).map { Substring(u[u.index(after: $0)...]) } ?? Substring(file)
        return "\(function) (\(base):\(line))"
    }
}

/// Turns raw PCs of one process into a creation site. Implemented over Go executables'
/// symbol tables; tests use synthetic ones.
public protocol SiteResolver {
    /// The site of a creation, from its raw PCs (startPC, goPC, stack; probeIP for the load address).
    func site(for creation: Creation) -> CreationSite
    /// Called when a process exits so per-process state (load address) can go.
    func forget(pid: UInt32)
}

/// A goroutine as a snapshot of its process's memory found it: what Go's own goroutine
/// dump shows of it.
public struct Goroutine: Sendable, Equatable {
    public enum State: String, Sendable, Codable {
        case idle, runnable, running, syscall, waiting, moribund, dead, enqueue, copystack, preempted, leaked, unknown

        /// By g status number (runtime2.go _Gidle … _Gleaked; 11, dead lent to a cgo callback, is dead).
        public static let all: [State] = [.idle, .runnable, .running, .syscall, .waiting, .moribund, .dead, .enqueue, .copystack, .preempted,
                                          .leaked, .dead]
    }

    public var goid: UInt64
    public var state: State
    /// What Go's dump shows in brackets: the wait reason of a waiting goroutine in the
    /// release's own words ("chan receive", "IO wait"…), otherwise the state.
    public var status: String
    /// How long it has waited, where the runtime knows (g.waitsince set); nil otherwise.
    public var waitSeconds: Double?
    /// The function it started in, as the user wrote it (compiler wrappers resolved).
    public var function: String
    /// The go statement that created it, as Go's dump prints it (nil for the main goroutine).
    public var createdBy: Frame?
    /// The goroutine that ran that go statement (Go 1.21+; nil when the release does not keep it).
    public var parentGoid: UInt64?
    /// Its stack, innermost first, with the frames Go's dump hides left out; empty when
    /// not readable (see `stackNote`).
    public var stack: [Frame]
    /// Why there is no stack: "running" (on a thread now), or "changed while read".
    public var stackNote: String?
    /// Runtime goroutines Go itself leaves out of dumps (GC workers, the finalizer, …).
    public var isSystem: Bool
    public var lockedToThread: Bool
    /// Run-time addresses, as the probes report them: the runtime.g (what its exit names),
    /// its entry (g.startpc) and its go statement (g.gopc).
    public var gAddress: UInt64 = 0, startPC: UInt64 = 0, goPC: UInt64 = 0
    /// CLOCK_MONOTONIC just before its g was read: it was live then.
    public var seenAtNs: UInt64 = 0

    public init(goid: UInt64, state: State, status: String, waitSeconds: Double?, function: String, createdBy: Frame?,
                parentGoid: UInt64?, stack: [Frame], stackNote: String?, isSystem: Bool, lockedToThread: Bool) {
        self.goid = goid; self.state = state; self.status = status; self.waitSeconds = waitSeconds; self.function = function
        self.createdBy = createdBy; self.parentGoid = parentGoid; self.stack = stack; self.stackNote = stackNote
        self.isSystem = isSystem; self.lockedToThread = lockedToThread
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of the kernel side's timestamps and of Go's nanotime.
public func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
