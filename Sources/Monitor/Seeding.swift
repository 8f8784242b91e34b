import GmonModel
import GmonProbes
import GoRuntime
import GoroutineSnapshot
import ProcFS

/// Watch mode's start: the goroutines that already exist in the watched processes, read from
/// memory once the probes are attached (their events wait in the rings until these are in the
/// tracker: Tracker.seed says how the two agree when a goroutine is in both).
public enum ExistingGoroutines {
    public struct Outcome: Sendable {
        public var goroutines = 0, processes = 0
        /// Processes that could not be read, and why: their new goroutines are watched all the same.
        public var failures: [(pid: Int32, reason: String)] = []
    }

    public static func seed(pids: [Int32], exe: GoExecutable, file: FileIdentity, executable: ExecutableID, resolver: SiteResolver,
                            pipeline: EventPipeline, stop: StopToken) -> Outcome {
        var out = Outcome()
        let program: GoroutineReader.Program
        do { program = try GoroutineReader.Program(exe: exe) } catch {
            out.failures = pids.map { ($0, "\(error)") }
            return out
        }
        for p in pids {
            // A stop asked for meanwhile: the rest are not read (the monitor then stops at once).
            if stop.isRequested { break }
            do {
                let snap = try GoroutineReader(pid: p, program: program, file: file).snapshot()
                var sites = SnapshotSites(pid: p, executable: executable, resolver: resolver)
                snap.forEach { g in pipeline.seed(pid: UInt32(p), g, site: sites.site(g)) }
                pipeline.publish()
                out.goroutines += snap.count
                out.processes += 1
            } catch {
                out.failures.append((p, "\(error)"))
            }
        }
        return out
    }
}

/// The site of a goroutine read from one process's memory, as the probes would report it
/// (from its entry and go statement pcs, the creator's stack unknown): resolved once per pair.
struct SnapshotSites {
    let pid: Int32
    let executable: ExecutableID
    let resolver: SiteResolver
    private var cache: [[UInt64]: CreationSite] = [:]

    init(pid: Int32, executable: ExecutableID, resolver: SiteResolver) {
        self.pid = pid; self.executable = executable; self.resolver = resolver
    }

    mutating func site(_ g: Goroutine) -> CreationSite {
        let key = [g.startPC, g.goPC]
        if let s = cache[key] { return s }
        let s = resolver.site(for: Creation(pid: UInt32(pid), goid: g.goid, g: g.gAddress, parentGoid: g.parentGoid ?? 0, timeNs: 0,
                                            startPC: g.startPC, goPC: g.goPC, stack: [], executable: executable))
        cache[key] = s
        return s
    }
}
