import AttachPoints
import GoBinary
import GoroutineTracker
#if canImport(Glibc)
import Glibc
#endif

/// Resolves creation sites from a Go executable's pclntab, per process
/// (a PIE's load address differs from process to process).
public final class GoSiteResolver: SiteResolver {
    let exe: GoExecutable
    private var biases: [UInt32: UInt64] = [:]
    private var entryFunctionCache: [UInt64: String] = [:]
    /// Frames the runtime itself runs to create a goroutine: never the creation site.
    static let runtimeCreationFrames: Set<String> = [
        "runtime.newproc.func1", "runtime.newproc1", "runtime.systemstack", "runtime.systemstack_switch",
        "runtime.newproc", "runtime.runqput",
    ]
    let wrapperFuncID: UInt8?

    /// Link-time address of the creation probe when the kernel reports it as the probe's IP
    /// (a uprobe, not a uretprobe): the IP minus it is the load bias, known from the
    /// first event even when the process is gone before gmon reads /proc/PID/maps.
    let creationProbeAddress: UInt64?

    public init(exe: GoExecutable, creationProbeAddress: UInt64? = nil) {
        self.exe = exe
        self.creationProbeAddress = creationProbeAddress
        // funcID of compiler-made wrappers (FuncIDWrapper / funcID_wrapper) per release.
        switch exe.buildInfo.release?.minor {
        case 18?, 19?, 20?, 21?: wrapperFuncID = 21
        case 17?: wrapperFuncID = 22
        default: wrapperFuncID = nil   // from 1.22 go-statement wrappers are named *.gowrapN
        }
    }

    public func forget(pid: UInt32) { biases.removeValue(forKey: pid) }

    /// Load bias of the executable in process `pid` (0 for non-PIE): from where the
    /// creation probe fired, else from /proc/PID/maps.
    public func bias(pid: UInt32, probeIP: UInt64 = 0) -> UInt64 {
        if let b = biases[pid] { return b }
        let b: UInt64
        if !exe.isPIE {
            b = 0
        } else if let a = creationProbeAddress, probeIP != 0 {
            b = probeIP &- a
        } else {
            b = Self.loadBias(pid: pid, exe: exe) ?? 0
        }
        biases[pid] = b
        return b
    }

    /// From /proc/PID/maps: the mapping of the executable at file offset 0 gives the base.
    static func loadBias(pid: UInt32, exe: GoExecutable) -> UInt64? {
        guard let f = fopen("/proc/\(pid)/maps", "r") else { return nil }
        defer { fclose(f) }
        var exeStat = stat()
        guard stat(exe.path, &exeStat) == 0 else { return nil }
        var line = [CChar](repeating: 0, count: 4096)
        let firstLoad = exe.elf.segments.filter { $0.type == ELFSegment.typeLoad }.map(\.virtualAddress).min() ?? 0
        while fgets(&line, Int32(line.count), f) != nil {
            // start-end perms offset dev inode path
            let fields = String(cString: line).split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, let inode = UInt64(fields[4]), inode == UInt64(exeStat.st_ino),
                  let off = UInt64(fields[2], radix: 16), off == 0,
                  let start = UInt64(fields[0].split(separator: "-")[0], radix: 16) else { continue }
            return start &- (firstLoad & ~0xfff)
        }
        return nil
    }

    public func site(for c: Creation) -> CreationSite {
        let (startPC, goPC, stack) = (c.startPC, c.goPC, c.stack)
        let b = bias(pid: c.pid, probeIP: c.probeIP)
        let function = entryFunction(startPC &- b)
        let createdBy = (try? exe.pclntab.frames(at: goPC &- b &- 1).first).flatMap { $0 }.map(\.description) ?? "0x" + String(goPC, radix: 16)
        var frames: [String] = []
        var skipping = true
        for (i, pc) in stack.enumerated() {
            // The first address is where the probe fired; the rest are return addresses.
            let lookup = i == 0 ? pc &- b : pc &- b &- 1
            let fs = (try? exe.pclntab.frames(at: lookup)) ?? []
            if fs.isEmpty { frames.append("0x" + String(pc, radix: 16)); skipping = false; continue }
            for f in fs {
                if skipping && Self.runtimeCreationFrames.contains(f.function) { continue }
                skipping = false
                frames.append(f.description)
            }
        }
        return CreationSite(function: function, createdBy: createdBy, stack: frames)
    }

    /// The function a goroutine starts in, as the user wrote it: for the
    /// compiler's `go f(x)` wrappers, f.
    func entryFunction(_ pc: UInt64) -> String {
        if let c = entryFunctionCache[pc] { return c }
        let name: String
        if let i = exe.pclntab.functionIndex(containing: pc), let n = try? exe.pclntab.name(ofFunction: i) {
            name = isGoStatementWrapper(i, n) ? (wrappedCallee(i) ?? n) : n
        } else {
            name = "0x" + String(pc, radix: 16)
        }
        entryFunctionCache[pc] = name
        return name
    }

    func isGoStatementWrapper(_ index: Int, _ name: String) -> Bool {
        if name.contains(".gowrap") { return true }
        guard let w = wrapperFuncID, let id = try? exe.pclntab.funcID(ofFunction: index) else { return false }
        return id == w
    }

    /// f in a wrapper for `go f(x)`: the call inlined into the wrapper, else its first non-runtime direct call.
    func wrappedCallee(_ index: Int) -> String? {
        if let first = (try? exe.pclntab.topLevelInlinedCalls(ofFunction: index))?.first { return first }
        guard let entry = try? exe.pclntab.entry(ofFunction: index), let end = try? exe.pclntab.end(ofFunction: index),
              let code = try? exe.code(from: entry, to: end),
              let calls = try? AttachPoints.directCalls(code: Array(code), address: entry) else { return nil }
        for c in calls {
            // Skip the stack-growth call every Go prologue makes.
            if let j = exe.pclntab.functionIndex(containing: c.target), let n = try? exe.pclntab.name(ofFunction: j),
               !n.hasPrefix("runtime.morestack") { return n }
        }
        return nil
    }
}
