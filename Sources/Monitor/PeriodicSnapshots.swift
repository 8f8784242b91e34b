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
    /// An executable to read, and its processes, each with the labels of its series.
    public struct Target: @unchecked Sendable {
        public let exe: GoExecutable
        public let file: FileIdentity
        public let executable: ExecutableID
        public let processes: [(pid: Int32, labels: [(String, String)])]
        public init(exe: GoExecutable, file: FileIdentity, executable: ExecutableID, processes: [(pid: Int32, labels: [(String, String)])]) {
            self.exe = exe; self.file = file; self.executable = executable; self.processes = processes
        }
    }
    let interval: Double
    /// Called on the snapshot thread: what to read now.
    let targets: () -> [Target]
    let states: GoroutineStates
    /// At most this many (site, status) rows; the rest count under function="other".
    let maxRows: Int
    private let stop = StopToken()
    private var thread: Thread?

    public init(interval: Double, maxRows: Int, states: GoroutineStates, targets: @escaping () -> [Target]) {
        self.interval = interval; self.maxRows = maxRows; self.states = states; self.targets = targets
    }

    /// One executable's processes, labelled `exe`.
    public convenience init(interval: Double, exe: GoExecutable, file: FileIdentity, executable: ExecutableID, exeName: String, maxRows: Int,
                            states: GoroutineStates, pids: @escaping () -> [Int32]) {
        self.init(interval: interval, maxRows: maxRows, states: states) {
            [Target(exe: exe, file: file, executable: executable, processes: pids().map { ($0, [("exe", exeName)]) })]
        }
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
    /// Per file: what a snapshot needs of it, and its symbolizer (this thread's own).
    private var programs: [FileIdentity: (program: GoroutineReader.Program, resolver: GoSiteResolver)] = [:]
    private var readers: [Int32: (start: UInt64, file: FileIdentity, reader: GoroutineReader)] = [:]
    private var seen: [Int32: [UInt64: Seen]] = [:]

    private func run() {
        while !stop.isRequested {
            let began = Date()
            let rows = takeOne()
            states.replace(rows, takenAtUnixSeconds: began.timeIntervalSince1970, durationSeconds: Date().timeIntervalSince(began))
            var waited = 0.0
            while waited < interval && !stop.isRequested { Thread.sleep(forTimeInterval: 0.1); waited += 0.1 }
        }
    }

    func takeOne() -> [GoroutineStates.Row] {
        struct Key: Hashable { let owner: [String], function: String, createdBy: String, status: String }
        var counts: [Key: (Int, Double)] = [:]
        var ownerLabels: [[String]: [(String, String)]] = [:]
        let now = Date().timeIntervalSince1970
        var nextSeen: [Int32: [UInt64: Seen]] = [:]
        let targets = targets()
        // Executables no longer watched: their programs and symbolizers go.
        let files = Set(targets.map(\.file))
        programs = programs.filter { files.contains($0.key) }
        for t in targets {
            for (pid, labels) in t.processes {
                if stop.isRequested { break }
                guard let start = ProcFS.stat(pid)?.startTime else { continue }
                let reader: GoroutineReader
                if programs[t.file] == nil, let p = try? GoroutineReader.Program(exe: t.exe) {
                    // The symbolizer of this thread: sites labelled as the event loop labels them.
                    programs[t.file] = (p, GoSiteResolver(exe: t.exe, executable: t.executable, file: t.file))
                }
                if let r = readers[pid], r.start == start, r.file == t.file {
                    reader = r.reader
                } else if let p = programs[t.file], let r = try? GoroutineReader(pid: pid, program: p.program, file: t.file) {
                    readers[pid] = (start, t.file, r)
                    reader = r
                } else {
                    states.failed()
                    continue
                }
                guard let resolver = programs[t.file]?.resolver else { continue }
                let owner = labels.map(\.1)
                ownerLabels[owner] = labels
                guard let snap = try? reader.snapshot() else { states.failed(); readers[pid] = nil; continue }
                var mine: [UInt64: Seen] = [:]
                let before = seen[pid] ?? [:]
                var sites = SnapshotSites(pid: pid, executable: t.executable, resolver: resolver)
                snap.forEach { g in
                    guard !g.isSystem else { return }
                    let since = before[g.goid].flatMap { $0.status == g.status ? $0.since : nil } ?? now
                    mine[g.goid] = Seen(status: g.status, since: since)
                    let site = sites.site(g)
                    let key = Key(owner: owner, function: site.function, createdBy: site.createdBy.description, status: g.status)
                    let wait = max(g.waitSeconds ?? 0, now - since)
                    let c = counts[key] ?? (0, 0)
                    counts[key] = (c.0 + 1, max(c.1, wait))
                }
                nextSeen[pid] = mine
            }
        }
        // Processes gone: their readers and what was seen of them go too.
        seen = nextSeen
        readers = readers.filter { nextSeen[$0.key] != nil }
        let sorted = counts.sorted { $0.value.0 != $1.value.0 ? $0.value.0 > $1.value.0 : $0.key.function < $1.key.function }
        var out: [GoroutineStates.Row] = []
        struct OtherKey: Hashable { let owner: [String], status: String }
        var other: [OtherKey: (Int, Double)] = [:]
        for (k, v) in sorted {
            if out.count < maxRows {
                out.append(.init(labels: ownerLabels[k.owner]! + [("function", k.function), ("created_by", k.createdBy), ("status", k.status)],
                                 count: v.0, longestWaitSeconds: (v.1 * 10).rounded() / 10))
            } else {
                let o = other[OtherKey(owner: k.owner, status: k.status)] ?? (0, 0)
                other[OtherKey(owner: k.owner, status: k.status)] = (o.0 + v.0, max(o.1, v.1))
            }
        }
        for (k, v) in other.sorted(by: { $0.key.owner.joined() + $0.key.status < $1.key.owner.joined() + $1.key.status }) {
            out.append(.init(labels: ownerLabels[k.owner]! + [("function", "other"), ("created_by", "other"), ("status", k.status)],
                             count: v.0, longestWaitSeconds: (v.1 * 10).rounded() / 10))
        }
        return out
    }
}
