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
                stack: [UInt64], probeIP: UInt64 = 0) {
        self.pid = pid; self.goid = goid; self.g = g; self.parentGoid = parentGoid; self.timeNs = timeNs
        self.startPC = startPC; self.goPC = goPC; self.stack = stack; self.probeIP = probeIP
    }
}

/// Where goroutines come from: the labels gmon reports them under.
public struct CreationSite: Sendable, Hashable {
    /// The goroutine's entry function as the user wrote it (`go f(x)` → f).
    public var function: String
    /// The frame that ran the go statement: "main.main (main.go:14)".
    public var createdBy: String
    /// The creator's stack above the runtime's creation frames, innermost first.
    public var stack: [String]

    public init(function: String, createdBy: String, stack: [String]) {
        self.function = function; self.createdBy = createdBy; self.stack = stack
    }
}

/// Turns raw PCs of one process into a creation site. Implemented over a Go
/// executable's symbol table; tests use synthetic ones.
public protocol SiteResolver {
    /// The site of a creation, from its raw PCs (startPC, goPC, stack; probeIP for the load address).
    func site(for creation: Creation) -> CreationSite
    /// Called when a process exits so per-process state (load address) can go.
    func forget(pid: UInt32)
}
