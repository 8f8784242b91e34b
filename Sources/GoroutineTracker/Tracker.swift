/// Pairs creations with exits per (pid, goid), attributes them to creation
/// sites and keeps per-site counts. Pure logic: fed events, no I/O.
public final class Tracker {
    public struct SiteStats: Sendable {
        public let site: CreationSite
        public internal(set) var created: UInt64 = 0
        public internal(set) var exited: UInt64 = 0
        /// Exits of this site's goroutines whose process ended while they were live.
        public internal(set) var closedByProcessExit: UInt64 = 0
        public internal(set) var lifetimeSumNs: UInt64 = 0
        public var live: UInt64 { created - exited - closedByProcessExit }
    }

    struct RawKey: Hashable {
        var pid: UInt32
        var startPC: UInt64
        var goPC: UInt64
        var stack: [UInt64]
    }

    public private(set) var sites: [SiteStats] = []
    private var siteIndex: [CreationSite: Int32] = [:]
    /// Distinct raw stacks seen → site, so steady state does no symbolization.
    private var rawCache: [RawKey: Int32] = [:]
    private var live: [UInt32: LiveTable] = [:]
    /// The pid of the previous event: runs of events from one process skip the set insert.
    private var lastPid: UInt32?
    private let resolver: SiteResolver

    public private(set) var unpairedExits: UInt64 = 0
    /// Creations of a goid already live in that process (should never happen; counted, not hidden).
    public private(set) var duplicateCreations: UInt64 = 0
    public private(set) var processesSeen: Set<UInt32> = []

    public init(resolver: SiteResolver) { self.resolver = resolver }

    public enum Outcome {
        case created(site: Int32)
        case exited(site: Int32, lifetimeNs: UInt64)
        case unpairedExit
        /// Live goroutines of the ended process, per site.
        case processEnded(pid: UInt32, closed: [Int32: Int])
    }

    @discardableResult
    public func handle(_ event: Event) -> Outcome {
        switch event {
        case .create(let c):
            let key = RawKey(pid: c.pid, startPC: c.startPC, goPC: c.goPC, stack: c.stack)
            let s: Int32
            if let cached = rawCache[key] {
                s = cached
            } else {
                let site = resolver.site(for: c)
                if let existing = siteIndex[site] {
                    s = existing
                } else {
                    s = Int32(sites.count)
                    sites.append(SiteStats(site: site))
                    siteIndex[site] = s
                }
                rawCache[key] = s
            }
            notePid(c.pid)
            if live[c.pid, default: LiveTable()].insert(goid: c.goid, createdNs: c.timeNs, site: s) {
                duplicateCreations += 1
            }
            sites[Int(s)].created += 1
            return .created(site: s)
        case .exit(let pid, let goid, let t):
            notePid(pid)
            guard let l = live[pid]?.remove(goid: goid) else {
                unpairedExits += 1
                return .unpairedExit
            }
            let lifetime = t >= l.createdNs ? t - l.createdNs : 0
            sites[Int(l.site)].exited += 1
            sites[Int(l.site)].lifetimeSumNs &+= lifetime
            return .exited(site: l.site, lifetimeNs: lifetime)
        case .processExit(let pid, _):
            var closed: [Int32: Int] = [:]
            live.removeValue(forKey: pid)?.forEach { _, _, site in
                sites[Int(site)].closedByProcessExit += 1
                closed[site, default: 0] += 1
            }
            // A new process may reuse the pid: its stacks must be resolved afresh.
            rawCache = rawCache.filter { $0.key.pid != pid }
            resolver.forget(pid: pid)
            processesSeen.remove(pid)
            lastPid = nil
            return .processEnded(pid: pid, closed: closed)
        }
    }

    private func notePid(_ pid: UInt32) {
        if pid != lastPid { processesSeen.insert(pid); lastPid = pid }
    }

    public var liveCount: Int { live.values.reduce(0) { $0 + $1.count } }

    public func liveCount(pid: UInt32) -> Int { live[pid]?.count ?? 0 }

    /// Creation time of the oldest live goroutine per site (for age gauges).
    public func oldestLiveCreation() -> [Int32: UInt64] {
        var out: [Int32: UInt64] = [:]
        for (_, table) in live { table.forEach { _, t, site in out[site] = min(out[site] ?? .max, t) } }
        return out
    }
}
