import Foundation
import GmonMetrics
import GmonModel
import GmonProbes
import GoBinary
import GoRuntime
import GoroutineSnapshot
import ProcFS
import Symbolization

/// Every `interval`, reads the goroutines of the watched processes from memory (on a thread
/// of its own: the event loop never waits for it) and publishes how many of each creation
/// site are in each status, and for how long the longest has been: the standing view of leaks.
public final class PeriodicSnapshots: @unchecked Sendable {
    let interval: Double
    let exe: GoExecutable
    let file: FileIdentity
    let executable: ExecutableID
    let exeName: String
    let pids: () -> [Int32]
    let states: GoroutineStates
    /// At most this many (site, status) rows; the rest count under function="other".
    let maxRows: Int
    private let stop = StopToken()
    private var thread: Thread?

    public init(interval: Double, exe: GoExecutable, file: FileIdentity, executable: ExecutableID, exeName: String, maxRows: Int,
                states: GoroutineStates, pids: @escaping () -> [Int32]) {
        self.interval = interval; self.exe = exe; self.file = file; self.executable = executable; self.exeName = exeName
        self.maxRows = maxRows; self.states = states; self.pids = pids
    }

    public func start() {
        let t = Thread { [self] in run() }
        t.name = "gmon-snapshots"
        thread = t
        t.start()
    }

    /// Returns within ~0.1 s (a snapshot in progress finishes on its own).
    public func cancel() { stop.request() }

    /// Per process: its reader (the executable's layout and allgs found once) and, per goroutine,
    /// the status it had in the last snapshot and since when it has been seen in it.
    private struct Seen { let status: String; let since: Double }
    private var program: GoroutineReader.Program?
    private var readers: [Int32: (start: UInt64, reader: GoroutineReader)] = [:]
    private var seen: [Int32: [UInt64: Seen]] = [:]

    private func run() {
        // The symbolizer of this thread: sites labelled as the event loop labels them.
        let resolver = GoSiteResolver(exe: exe, executable: executable, file: file)
        while !stop.isRequested {
            let began = Date()
            let rows = takeOne(resolver)
            states.replace(rows, takenAtUnixSeconds: began.timeIntervalSince1970, durationSeconds: Date().timeIntervalSince(began))
            var waited = 0.0
            while waited < interval && !stop.isRequested { Thread.sleep(forTimeInterval: 0.1); waited += 0.1 }
        }
    }

    func takeOne(_ resolver: GoSiteResolver) -> [GoroutineStates.Row] {
        struct Key: Hashable { let function: String, createdBy: String, status: String }
        var counts: [Key: (Int, Double)] = [:]
        let now = Date().timeIntervalSince1970
        var nextSeen: [Int32: [UInt64: Seen]] = [:]
        for pid in pids() {
            guard let start = ProcFS.stat(pid)?.startTime else { continue }
            let reader: GoroutineReader
            if let r = readers[pid], r.start == start {
                reader = r.reader
            } else if let p = program ?? (try? GoroutineReader.Program(exe: exe)), let r = try? GoroutineReader(pid: pid, program: p, file: file) {
                program = p
                readers[pid] = (start, r)
                reader = r
            } else {
                states.failed()
                continue
            }
            guard let snap = try? reader.snapshot() else { states.failed(); readers[pid] = nil; continue }
            var mine: [UInt64: Seen] = [:]
            let before = seen[pid] ?? [:]
            var sites = SnapshotSites(pid: pid, executable: executable, resolver: resolver)
            snap.forEach { g in
                guard !g.isSystem else { return }
                let since = before[g.goid].flatMap { $0.status == g.status ? $0.since : nil } ?? now
                mine[g.goid] = Seen(status: g.status, since: since)
                let site = sites.site(g)
                let key = Key(function: site.function, createdBy: site.createdBy.description, status: g.status)
                let wait = max(g.waitSeconds ?? 0, now - since)
                let c = counts[key] ?? (0, 0)
                counts[key] = (c.0 + 1, max(c.1, wait))
            }
            nextSeen[pid] = mine
        }
        // Processes gone: their readers and what was seen of them go too.
        seen = nextSeen
        readers = readers.filter { nextSeen[$0.key] != nil }
        let sorted = counts.sorted { $0.value.0 != $1.value.0 ? $0.value.0 > $1.value.0 : $0.key.function < $1.key.function }
        var out: [GoroutineStates.Row] = []
        var other: [String: (Int, Double)] = [:]
        for (k, v) in sorted {
            if out.count < maxRows {
                out.append(.init(labels: [("exe", exeName), ("function", k.function), ("created_by", k.createdBy), ("status", k.status)],
                                 count: v.0, longestWaitSeconds: (v.1 * 10).rounded() / 10))
            } else {
                let o = other[k.status] ?? (0, 0)
                other[k.status] = (o.0 + v.0, max(o.1, v.1))
            }
        }
        for (status, v) in other.sorted(by: { $0.key < $1.key }) {
            out.append(.init(labels: [("exe", exeName), ("function", "other"), ("created_by", "other"), ("status", status)],
                             count: v.0, longestWaitSeconds: (v.1 * 10).rounded() / 10))
        }
        return out
    }
}
