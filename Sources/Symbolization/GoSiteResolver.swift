import GmonModel
import GoBinary
import GoRuntime
import ProcFS

/// Resolves creation sites from a Go executable's pclntab, per process
/// (a PIE's load address differs from process to process).
public final class GoSiteResolver: SiteResolver {
    let exe: GoExecutable
    /// The executable's number in its monitor: its sites carry it.
    let executable: ExecutableID
    private var biases: [UInt32: UInt64] = [:]
    private var entryFunctionCache: [UInt64: String] = [:]
    /// Frames by link-time PC: new stacks mostly recombine PCs seen before (a burst of new
    /// call paths through a few functions), and a lookup decodes pclntab tables. Bounded:
    /// emptied when it reaches `maxCachedPCs` (it is only a cache).
    private var framesCache: [UInt64: [Frame]] = [:]
    static let maxCachedPCs = 1 << 16
    let wrapperFuncID: UInt8?

    /// Link-time addresses of the creation probes when the kernel reports them as the probe's
    /// IP (uprobes, not a uretprobe): the IP minus the site's address is the load bias, known
    /// from the first event even when the process is gone before gmon reads /proc/PID/maps.
    /// A load bias is a whole number of pages, so the site that fired is the one whose
    /// address has the IP's offset in its page.
    let creationProbeAddresses: [UInt64]
    /// The file the probes are on: its mapping in /proc/PID/maps gives the load address
    /// when the probe's IP does not (a uretprobe).
    let file: FileIdentity?

    public init(exe: GoExecutable, executable: ExecutableID = .init(0), file: FileIdentity? = nil, creationProbeAddresses: [UInt64] = []) {
        self.exe = exe
        self.executable = executable
        self.file = file ?? FileIdentity(path: exe.path)
        self.creationProbeAddresses = creationProbeAddresses
        wrapperFuncID = FrameRules.wrapperFuncID(release: exe.buildInfo.release)
    }

    /// The resolver of an executable whose probes follow `plan`: where its creation probes
    /// fire tells a PIE's load address (not a uretprobe's: it fires on return).
    public convenience init(exe: GoExecutable, executable: ExecutableID, file: FileIdentity, plan: AttachPlan) {
        self.init(exe: exe, executable: executable, file: file,
                  creationProbeAddresses: plan.creation.isReturnProbe ? [] : ([plan.creation] + plan.otherCreations).map(\.address))
    }

    public func forget(pid: UInt32) { biases.removeValue(forKey: pid) }

    /// Load bias of the executable in process `pid` (0 for non-PIE): from where the
    /// creation probe fired, else from /proc/PID/maps.
    public func bias(pid: UInt32, probeIP: UInt64 = 0) -> UInt64 {
        if let b = biases[pid] { return b }
        let b: UInt64
        if !exe.isPIE {
            b = 0
        } else if probeIP != 0, let b1 = Self.bias(probeIP: probeIP, sites: creationProbeAddresses) {
            b = b1
        } else {
            let firstLoad = exe.elf.segments.filter { $0.type == ELFSegment.typeLoad }.map(\.virtualAddress).min() ?? 0
            b = file.flatMap { ProcFS.loadBias(pid: pid, file: $0, firstLoadAddress: firstLoad) } ?? 0
        }
        biases[pid] = b
        return b
    }

    /// The load bias from where a creation probe fired; nil when no site, or more than one,
    /// lies at the IP's offset in its page.
    static func bias(probeIP: UInt64, sites: [UInt64]) -> UInt64? {
        let candidates = Set(sites.filter { (probeIP &- $0) & 0xfff == 0 }.map { probeIP &- $0 })
        return candidates.count == 1 ? candidates.first : nil
    }

    public func site(for c: Creation) -> CreationSite {
        let (startPC, goPC, stack) = (c.startPC, c.goPC, c.stack)
        let b = bias(pid: c.pid, probeIP: c.probeIP)
        var function = entryFunction(startPC &- b)
        let goStatement = (try? exe.pclntab.frames(at: goPC &- b &- 1))?.first
        var createdBy = goStatement ?? Frame.unknown(pc: goPC)
        // A coroutine: its function is iter.Pull's (which made it, for the user's sequence);
        // it was created by the frame that called iter.Pull, the first of the stack below.
        let coroutine = function == FrameRules.coroutineStart
        if coroutine, let f = goStatement {
            function = FrameRules.printName(f.function)
        }
        var frames: [Frame] = []
        var skipping = true
        for (i, pc) in stack.enumerated() {
            // The first address is where the probe fired; the rest are return addresses.
            let lookup = i == 0 ? pc &- b : pc &- b &- 1
            let fs = self.frames(at: lookup)
            if fs.isEmpty { frames.append(.unknown(pc: pc)); skipping = false; continue }
            for f in fs {
                if skipping && (FrameRules.runtimeCreationFrames.contains(f.function)
                                || coroutine && FrameRules.isCoroutineMaker(f.function)) { continue }
                skipping = false
                frames.append(f)
            }
        }
        if coroutine, let first = frames.first { createdBy = first }
        return CreationSite(executable: executable, function: function, createdBy: createdBy, stack: frames)
    }

    /// The frames at a link-time PC, innermost first.
    func frames(at pc: UInt64) -> [Frame] {
        if let f = framesCache[pc] { return f }
        let f = (try? exe.pclntab.frames(at: pc)) ?? []
        if framesCache.count >= Self.maxCachedPCs { framesCache.removeAll(keepingCapacity: true) }
        framesCache[pc] = f
        return f
    }

    /// The function a goroutine starts in, as the user wrote it: for the
    /// compiler's `go f(x)` wrappers, f.
    public func entryFunction(_ pc: UInt64) -> String {
        if let c = entryFunctionCache[pc] { return c }
        let name: String
        if let i = exe.pclntab.functionIndex(containing: pc), let n = try? exe.pclntab.name(ofFunction: i) {
            let entry = isGoStatementWrapper(i, n) ? (wrappedCallee(i) ?? n) : n
            name = FrameRules.withoutMethodValueSuffix(entry)
        } else {
            name = "0x" + String(pc, radix: 16)
        }
        entryFunctionCache[pc] = name
        return name
    }

    /// A compiler-made wrapper: named *.gowrapN (Go 1.22+), or marked by the release's wrapper funcID.
    public func isGoStatementWrapper(_ index: Int, _ name: String) -> Bool {
        if FrameRules.isGoStatementWrapperName(name) { return true }
        guard let w = wrapperFuncID, let id = try? exe.pclntab.funcID(ofFunction: index) else { return false }
        return id == w
    }

    /// f in a wrapper for `go f(x)`: the call inlined into the wrapper, else its first direct
    /// call that is not the runtime's instrumentation.
    func wrappedCallee(_ index: Int) -> String? {
        if let first = (try? exe.pclntab.topLevelInlinedCalls(ofFunction: index))?.first { return first }
        guard let entry = try? exe.pclntab.entry(ofFunction: index), let end = try? exe.pclntab.end(ofFunction: index),
              let code = try? exe.code(from: entry, to: end),
              let calls = try? AttachPoints.directCalls(code: Array(code), address: entry) else { return nil }
        for c in calls {
            if let j = exe.pclntab.functionIndex(containing: c.target), let n = try? exe.pclntab.name(ofFunction: j),
               !FrameRules.isInstrumentationCallee(n) { return n }
        }
        return nil
    }
}

/// The resolvers of every watched executable: each creation goes to its executable's.
public final class SiteResolvers: SiteResolver {
    private var byExecutable: [ExecutableID: GoSiteResolver] = [:]

    public init() {}

    public func add(_ resolver: GoSiteResolver) { byExecutable[resolver.executable] = resolver }

    /// An executable no longer watched: its parsed binary and caches go.
    public func remove(_ executable: ExecutableID) { byExecutable[executable] = nil }

    public func site(for c: Creation) -> CreationSite {
        guard let r = byExecutable[c.executable] else {
            // Never sent by gmon's probes (each carries a registered executable's number).
            return CreationSite(executable: c.executable, function: "0x" + String(c.startPC, radix: 16),
                                createdBy: .unknown(pc: c.goPC), stack: c.stack.map { .unknown(pc: $0) })
        }
        return r.site(for: c)
    }

    public func forget(pid: UInt32) {
        for r in byExecutable.values { r.forget(pid: pid) }
    }
}
