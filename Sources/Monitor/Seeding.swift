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
        for p in pids {
            // A stop asked for meanwhile: the rest are not read (the monitor then stops at once).
            if stop.isRequested { break }
            do {
                let snap = try GoroutineReader(pid: p, exe: exe, file: file).snapshot()
                // The site as the probes would report it, from the same two PCs (once per pair).
                var sites: [[UInt64]: CreationSite] = [:]
                snap.forEach { g in
                    let key = [g.startPC, g.goPC]
                    let site = sites[key] ?? resolver.site(for: Creation(
                        pid: UInt32(p), goid: g.goid, g: g.gAddress, parentGoid: g.parentGoid ?? 0, timeNs: 0,
                        startPC: g.startPC, goPC: g.goPC, stack: [], executable: executable))
                    sites[key] = site
                    pipeline.seed(pid: UInt32(p), g, site: site)
                }
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
