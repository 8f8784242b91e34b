import GmonModel
/// Pairs creations with exits per (pid, runtime.g address), attributes them to creation
/// sites and keeps per-site counts. Pure logic: fed events, no I/O.
///
/// Exits are matched by the g's address, which the kernel side has in a register, not
/// by goid, which it would have to read from the g's memory (a cache miss for the
/// watched thread). The runtime reuses a g only after its goroutine exited, and the
/// exit reaches the tracker before the reuse's creation (the rings are merged by
/// timestamp, see CPURings), so among the live the address is unique. A creation on a
/// live address means that exit was lost (ring buffer full): the old goroutine is
/// closed as `exitsLost` and counted.
public final class Tracker {
    public struct SiteStats: Sendable {
        public let site: CreationSite
        public internal(set) var created: UInt64 = 0
        public internal(set) var exited: UInt64 = 0
        /// Exits of this site's goroutines whose process ended while they were live.
        public internal(set) var closedByProcessExit: UInt64 = 0
        /// Goroutines of this site whose exit was lost, found when their g was reused.
        public internal(set) var exitsLost: UInt64 = 0
        public internal(set) var lifetimeSumNs: UInt64 = 0
        /// Goroutines that existed when gmon attached, read from the process's memory (a site
        /// of such goroutines has only these: its stack is `createdBeforeAttach`).
        public internal(set) var preexisting: UInt64 = 0
        /// Set once: the exit path reads it for every exit.
        public let isPreexisting: Bool
        /// A slot freed by `retire` (its site's executable gone), waiting for a new site.
        public internal(set) var isFree = false
        public var live: UInt64 { created + preexisting - exited - closedByProcessExit - exitsLost }
    }

    /// What identifies a creation site before symbolization. Its hash is computed once
    /// with a cheap multiply-xor over the words: SipHash over a whole stack per creation
    /// was 5% of gmon's CPU (perf). Equality still compares every word.
    struct RawKey: Hashable {
        var pid: UInt32
        var startPC: UInt64
        var goPC: UInt64
        var stack: [UInt64]
        let mixed: UInt64

        init(pid: UInt32, startPC: UInt64, goPC: UInt64, stack: [UInt64]) {
            self.pid = pid; self.startPC = startPC; self.goPC = goPC; self.stack = stack
            var h = (UInt64(pid) &+ 0x9e37_79b9_7f4a_7c15) &* 0xff51_afd7_ed55_8ccd
            @inline(__always) func mix(_ w: UInt64) { h = (h ^ w) &* 0xc4ce_b9fe_1a85_ec53; h ^= h >> 29 }
            mix(startPC); mix(goPC)
            for w in stack { mix(w) }
            mixed = h
        }

        static func == (a: RawKey, b: RawKey) -> Bool {
            a.mixed == b.mixed && a.pid == b.pid && a.startPC == b.startPC && a.goPC == b.goPC && a.stack == b.stack
        }

        func hash(into hasher: inout Hasher) { hasher.combine(mixed) }
    }

    public private(set) var sites: [SiteStats] = []
    private var siteIndex: [CreationSite: Int32] = [:]
    /// The previous creation's key and site: goroutines come in bursts from one site, and
    /// comparing with the last key costs less than a Dictionary lookup (perf: hashing
    /// and probing were 7% of the per-event path).
    private var lastKey: RawKey?
    private var lastSite: Int32 = 0
    private var live: [UInt32: LiveGoroutines] = [:]
    /// The pid of the previous event and its goroutines: events come in runs from one
    /// process, which then skip the dictionary and the set insert.
    private var lastPid: UInt32?
    private var lastLive: LiveGoroutines?
    private let resolver: SiteResolver

    /// Exits of goroutines created before gmon attached.
    public private(set) var unpairedExits: UInt64 = 0
    /// Exits of goroutines whose creation was lost (ring buffer full), flagged by the kernel side.
    public private(set) var exitsOfLostCreations: UInt64 = 0
    /// Creations on a g address still live in that process: the earlier goroutine's exit was lost.
    public private(set) var exitsLost: UInt64 = 0
    /// A size every runtime.g reaches: g addresses → dense table keys (GKeys).
    private let gStride: UInt64
    /// Watching many executables: sizeof(g) of the executable a process runs (its keys are
    /// then as dense as with one executable); nil: `gStride`.
    public var gStrideOf: ((UInt32) -> Int?)?
    public private(set) var processesSeen: Set<UInt32> = []

    /// `gStride`: a size every runtime.g reaches (8 is always safe, sizeof(g) is best).
    /// `maxStacks`: distinct creation stacks kept (each holds its frames, log fields and
    /// labels); beyond it a new stack counts under its function and created_by with
    /// `stackNotKept` as its stack, so counts stay exact and memory bounded (sites then exceed
    /// it by at most the number of distinct function/created_by pairs: the program's go statements).
    public init(resolver: SiteResolver, gStride: Int = 8, maxStacks: Int = 10_000) {
        self.resolver = resolver
        self.gStride = UInt64(max(gStride, 1))
        self.maxStacks = max(maxStacks, 1)
    }

    public let maxStacks: Int
    /// The stack of sites past `maxStacks`.
    public static let stackNotKept = Frame.note("(stack not kept: more than --max-stacks stacks)")
    /// New raw stacks counted under their function and created_by only.
    public private(set) var stacksNotKept: UInt64 = 0

    public enum Outcome {
        /// `exitLostOf`: the site of a live goroutine on the same g, whose exit was lost.
        /// `replacedSeedOf`: the goroutine was also read from memory when gmon attached (it was
        /// created while the snapshot ran): that pre-existing entry, of this site, is replaced.
        case created(site: Int32, exitLostOf: Int32?, replacedSeedOf: Int32? = nil)
        case exited(site: Int32, lifetimeNs: UInt64)
        /// The exit of a goroutine that existed when gmon attached: its lifetime is unknown.
        case exitedPreexisting(site: Int32)
        /// An exit with no creation: of a goroutine created before gmon attached, or (`creationLost`)
        /// whose creation the kernel side could not deliver.
        case unpairedExit(creationLost: Bool)
        /// Live goroutines of the ended process, per site.
        case processEnded(pid: UInt32, closed: [Int32: Int])
    }

    @discardableResult
    public func handle(_ event: Event) -> Outcome {
        switch event {
        case .create(let c):
            let key = RawKey(pid: c.pid, startPC: c.startPC, goPC: c.goPC, stack: c.stack)
            let process = goroutines(c.pid)
            let s: Int32
            if let last = lastKey, last == key {
                s = lastSite
            } else if let cached = process.rawSites[key] {
                s = cached
            } else {
                var site = resolver.site(for: c)
                if sites.count - freeSites.count >= maxStacks && siteIndex[site] == nil {
                    site = CreationSite(executable: site.executable, function: site.function, createdBy: site.createdBy, stack: [Self.stackNotKept])
                    stacksNotKept += 1
                }
                s = index(of: site)
                // A cache: bounded, emptied when full (its stacks are then resolved again).
                if process.rawSites.count >= 2 * maxStacks { process.rawSites.removeAll() }
                process.rawSites[key] = s
            }
            // Only when the site changes: holding each new key would keep the decoder's
            // reused stack array shared, and decoding would then allocate a new one.
            if lastSite != s || lastKey == nil { lastKey = key; lastSite = s }
            let lost = process.insert(g: c.g, createdNs: c.timeNs, site: s)
            sites[Int(s)].created += 1
            if let lost {
                // A goroutine read from memory at attach, created before it was read (while
                // the snapshot ran): the same goroutine, now with its creation stack.
                if sites[Int(lost.site)].isPreexisting && c.timeNs < lost.createdNs {
                    sites[Int(lost.site)].preexisting -= 1
                    return .created(site: s, exitLostOf: nil, replacedSeedOf: lost.site)
                }
                exitsLost += 1
                sites[Int(lost.site)].exitsLost += 1
            }
            return .created(site: s, exitLostOf: lost?.site)
        case .exit(let pid, let g, _, let t, let creationLost):
            let process = goroutines(pid)
            guard let l = process.remove(g: g) else {
                if creationLost { exitsOfLostCreations += 1 } else { unpairedExits += 1 }
                return .unpairedExit(creationLost: creationLost)
            }
            if sites[Int(l.site)].isPreexisting {
                // Stamped before the snapshot read this g: the exit of an earlier goroutine on
                // it (created before gmon attached); the one read is still live.
                if t < l.createdNs {
                    _ = process.insert(g: g, createdNs: l.createdNs, site: l.site)
                    unpairedExits += 1
                    return .unpairedExit(creationLost: creationLost)
                }
                sites[Int(l.site)].exited += 1
                return .exitedPreexisting(site: l.site)
            }
            let lifetime = t >= l.createdNs ? t - l.createdNs : 0
            sites[Int(l.site)].exited += 1
            sites[Int(l.site)].lifetimeSumNs &+= lifetime
            return .exited(site: l.site, lifetimeNs: lifetime)
        case .processExit(let pid, _), .processExec(let pid, _):
            var closed: [Int32: Int] = [:]
            live.removeValue(forKey: pid)?.table.forEach { _, _, site in
                sites[Int(site)].closedByProcessExit += 1
                closed[site, default: 0] += 1
            }
            // The process's raw stacks went with its state (a new process may reuse the pid
            // and must resolve its stacks afresh): freed in time proportional to its own state.
            lastKey = nil
            resolver.forget(pid: pid)
            processesSeen.remove(pid)
            lastPid = nil
            lastLive = nil
            return .processEnded(pid: pid, closed: closed)
        }
    }

    /// The site's number, a new one for a site not seen before (a freed slot first).
    private func index(of site: CreationSite) -> Int32 {
        if let existing = siteIndex[site] { return existing }
        let stats = SiteStats(site: site, isPreexisting: site.stack == [Self.createdBeforeAttach])
        let s: Int32
        if let free = freeSites.popLast() {
            s = free
            sites[Int(s)] = stats
        } else {
            s = Int32(sites.count)
            sites.append(stats)
        }
        siteIndex[site] = s
        return s
    }

    private var freeSites: [Int32] = []
    static let freeSite = CreationSite(executable: ExecutableID(UInt32.max), function: "", createdBy: .note(""), stack: [])

    /// `gmon --all`: the sites of executables (groups) whose processes are all gone and whose
    /// series went: their slots are freed for new sites, so a long-running agent's tracker
    /// stays as large as what runs. The caller has let their processes' exits through first
    /// (no live goroutine refers to them). Returns the freed site numbers.
    public func retire(executables gone: Set<ExecutableID>) -> [Int32] {
        var freed: [Int32] = []
        for i in sites.indices where !sites[i].isFree && gone.contains(sites[i].site.executable) {
            siteIndex[sites[i].site] = nil
            sites[i] = SiteStats(site: Self.freeSite, isPreexisting: false, isFree: true)
            freed.append(Int32(i))
        }
        freeSites += freed
        lastKey = nil
        return freed
    }

    /// The stack of sites of goroutines that existed when gmon attached: never invented.
    public static let createdBeforeAttach = Frame.note("(created before gmon attached: creation stack unknown)")

    /// A goroutine that existed when gmon attached, read from its process's memory at
    /// `seenAtNs` (after the probes were attached, before any of their events is handled):
    /// live from the start, its exit pairs with it. Events stamped before `seenAtNs` on its g
    /// are of earlier goroutines there, or of this one's creation (see `handle`).
    /// nil when the g is live already from its creation event: the process's events came
    /// before this read (with --all, a process started in the second between its file's last
    /// process ending and the file being detached, then attached again); the event's entry,
    /// with its stack, stays.
    public func seed(pid: UInt32, g: UInt64, seenAtNs: UInt64, site raw: CreationSite) -> Int32? {
        let s = index(of: CreationSite(executable: raw.executable, function: raw.function, createdBy: raw.createdBy,
                                       stack: [Self.createdBeforeAttach]))
        let process = goroutines(pid)
        if let earlier = process.insert(g: g, createdNs: seenAtNs, site: s) {
            guard sites[Int(earlier.site)].isPreexisting else {
                _ = process.insert(g: g, createdNs: earlier.createdNs, site: earlier.site)
                return nil
            }
            // The same g listed twice (never by a consistent allgs): keep one.
            sites[Int(earlier.site)].preexisting -= 1
        }
        sites[Int(s)].preexisting += 1
        return s
    }

    /// Goroutines read from memory when gmon attached, still counted as such.
    public var preexistingTotal: UInt64 { sites.reduce(0) { $0 + $1.preexisting } }

    private func goroutines(_ pid: UInt32) -> LiveGoroutines {
        if pid == lastPid, let l = lastLive { return l }
        processesSeen.insert(pid)
        let l: LiveGoroutines
        if let existing = live[pid] { l = existing } else {
            l = LiveGoroutines(gStride: gStrideOf?(pid).map { UInt64(max($0, 8)) } ?? gStride)
            live[pid] = l
        }
        lastPid = pid
        lastLive = l
        return l
    }

    public var liveCount: Int { live.values.reduce(0) { $0 + $1.table.count } }

    public func liveCount(pid: UInt32) -> Int { live[pid]?.table.count ?? 0 }

    /// Creation time of the oldest live goroutine per site (for age gauges).
    public func oldestLiveCreation() -> [Int32: UInt64] {
        var out: [Int32: UInt64] = [:]
        for (_, l) in live { l.table.forEach { _, t, site in out[site] = min(out[site] ?? .max, t) } }
        return out
    }
}

/// One process's live goroutines, found by their runtime.g's address: its dense key
/// (GKeys) in the live table.
final class LiveGoroutines {
    let table = LiveTable()
    private let keys: GKeys
    /// Distinct raw stacks of this process → site, so steady state does no symbolization.
    /// Per process: its raw PCs mean nothing in another one (a PIE's load address), and a
    /// process's exit frees them with the rest of its state.
    var rawSites: [Tracker.RawKey: Int32] = [:]

    init(gStride: UInt64) { keys = GKeys(stride: gStride) }

    /// Returns the goroutine it replaced, if that g was live (its exit was lost).
    func insert(g: UInt64, createdNs: UInt64, site: Int32) -> (createdNs: UInt64, site: Int32)? {
        table.insert(key: keys.key(g, assign: true)!, createdNs: createdNs, site: site)
    }

    /// nil when the g is not live (a goroutine created before gmon attached).
    func remove(g: UInt64) -> (createdNs: UInt64, site: Int32)? {
        guard let key = keys.key(g, assign: false) else { return nil }
        return table.remove(key: key)
    }
}
