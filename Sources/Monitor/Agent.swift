import Discovery
import CProcFS
import Foundation
import GmonExporters
import GmonMetrics
import GmonModel
import GmonProbes
import GoBinary
import GoRuntime
import GoroutineTracker
import ProcFS
import Symbolization
#if canImport(Glibc)
import Glibc
#endif

/// The sites of a process carry the number of its executable *and container* (a "group"):
/// one file run in two containers gives two sets of series, each labelled with its own.
/// The kernel side numbers executables only; this maps each creation to its group.
public final class OwnerResolver: SiteResolver {
    public let executables = SiteResolvers()
    /// The group of a process of an executable (set by the agent; identity when unset).
    var group: (UInt32, ExecutableID) -> ExecutableID = { _, e in e }
    /// A process ended or ran exec (what the agent keeps of it goes).
    var ended: (UInt32) -> Void = { _ in }

    public init() {}

    public func site(for c: Creation) -> CreationSite {
        var s = executables.site(for: c)
        s.executable = group(c.pid, c.executable)
        return s
    }

    public func forget(pid: UInt32) {
        executables.forget(pid: pid)
        ended(pid)
    }
}

/// `gmon --all`: every Go program on the host, those running when it starts (a scan of
/// /proc) and those started later (the kernel reports each exec; gmon reads the new
/// process's /proc/PID/exe). Each executable file (device and inode, whatever path or mount
/// namespace it is seen under; for containers of one image, the image layer's file under
/// their overlay mounts: `OverlayFileKey`) gets its probes once; its processes that already exist are
/// read from memory and seeded. When its last process is gone its probes are detached, and
/// after `staleAfterSeconds` its series leave the exposition.
///
/// Runs on the monitor's thread, after each drain of the rings: while it attaches, the
/// events of programs already watched wait in the rings.
public final class Agent {
    public struct Options {
        public var filters: Filters
        public var classicProbes: Bool
        /// How long the series of an executable and container whose processes are all gone stay.
        public var staleAfterSeconds: Double
        public var podLogRoot: String
        public init(filters: Filters, classicProbes: Bool = false, staleAfterSeconds: Double = 300, podLogRoot: String = "/var/log/pods") {
            self.filters = filters; self.classicProbes = classicProbes; self.staleAfterSeconds = staleAfterSeconds; self.podLogRoot = podLogRoot
        }
    }

    let session: ProbeSession
    let resolver: OwnerResolver
    let pipeline: EventPipeline
    let metrics: GoroutineMetrics?
    let log: LogWriter
    let options: Options
    let stop: StopToken
    let pods: PodDirectory
    /// One line for the user (stderr).
    let say: (String) -> Void

    struct Target {
        let number: UInt32
        let file: OpenedExecutable
        let exe: GoExecutable
        /// A size every runtime.g of it reaches (the tracker's keys of live goroutines).
        let gSize: Int
        let name: String
        /// Its processes, each with the identity its own mount shows (another overlay mount's, for a layer file).
        var pids: [Int32: FileIdentity]
        let layerFile: OverlayFileKey?
    }
    private var targets: [FileIdentity: Target] = [:]
    /// The same layer file seen through other containers' overlay mounts: the target's key.
    private var aliases: [FileIdentity: FileIdentity] = [:]
    private var layerFiles: [OverlayFileKey: FileIdentity] = [:]
    /// With filters: whether a process's events count, by pid, until it ends (bounded: emptied when full).
    private var verdicts: [UInt32: Bool] = [:]
    private var fileOfNumber: [UInt32: FileIdentity] = [:]
    /// Files found not to be watchable Go programs (or filtered out), with why: not looked at
    /// again. Bounded: emptied when full (it is only a cache).
    private var skipped: [FileIdentity: String] = [:]
    static let maxSkipped = 16_384

    struct GroupKey: Hashable { let file: FileIdentity; let container: String }
    private var groups: [GroupKey: ExecutableID] = [:]
    /// By pid, then by executable number: a process that ran exec is another executable's.
    private var groupOfPid: [UInt32: [UInt32: ExecutableID]] = [:]
    private var nextGroup: UInt32 = 0
    /// Groups whose processes are all gone, with when: their series go after the grace period.
    private var goneGroups: [ExecutableID: UInt64] = [:]
    private var lastScanNs: UInt64 = 0
    /// A full scan of /proc besides the exec events: catches a start whose event was lost to a
    /// full ring (counted), once a minute.
    static let rescanNs: UInt64 = 60_000_000_000

    public private(set) var seededGoroutines = 0

    public init(session: ProbeSession, resolver: OwnerResolver, pipeline: EventPipeline, metrics: GoroutineMetrics?, log: LogWriter,
                options: Options, stop: StopToken, say: @escaping (String) -> Void) {
        self.session = session; self.resolver = resolver; self.pipeline = pipeline; self.metrics = metrics; self.log = log
        self.options = options; self.stop = stop; self.say = say
        pods = PodDirectory(root: options.podLogRoot)
        resolver.group = { [unowned self] pid, number in self.group(pid: pid, number: number) }
        pipeline.tracker.gStrideOf = { [unowned self] pid in
            FileIdentity(path: "/proc/\(pid)/exe").flatMap { self.target(of: $0)?.gSize }
        }
        if !options.filters.isEmpty {
            // A filtered-out container of the same image as a watched one fires the same
            // probes (they are on the layer file): its events are dropped here.
            pipeline.admitsProcess = { [unowned self] pid in self.admits(pid) }
            resolver.ended = { [unowned self] pid in self.verdicts[pid] = nil }
        }
        log.origin = { [unowned self] group in self.labels[group] ?? [] }
    }

    /// Labels of each group: exe, container_id, pod, namespace (what its series carry), then
    /// what only logs carry (unit, pod_uid).
    private var labels: [ExecutableID: [(String, String)]] = [:]
    static let seriesLabelCount = 4

    /// What periodic snapshots read (their thread takes it under the lock).
    private let publishedLock = NSLock()
    private var published: [PeriodicSnapshots.Target] = []

    public func snapshotTargets() -> [PeriodicSnapshots.Target] {
        publishedLock.lock()
        defer { publishedLock.unlock() }
        return published
    }

    private func publishTargets() {
        let list = targets.map { id, t in
            PeriodicSnapshots.Target(exe: t.exe, file: id, executable: ExecutableID(t.number), processes: t.pids.keys.sorted().map { pid in
                (pid, labels[group(pid: UInt32(pid), number: ExecutableID(t.number))].map { Array($0.prefix(Self.seriesLabelCount)) } ?? [("exe", t.name)])
            })
        }
        publishedLock.lock()
        published = list
        publishedLock.unlock()
    }

    /// Every process running now.
    public func scan() {
        lastScanNs = monotonicNow()
        for pid in ProcFS.processIDs() where pid != getpid() {
            if stop.isRequested { return }
            consider(pid)
        }
    }

    /// After each drain: the programs started since, then (once a second) the processes gone.
    public func afterDrain() {
        for pid in pipeline.takeStartedPrograms() {
            if stop.isRequested { return }
            consider(Int32(bitPattern: pid))
        }
        if monotonicNow() &- lastScanNs >= Self.rescanNs { scan() }
    }

    /// A process to look at: its executable watched already, to be watched, or to skip.
    func consider(_ pid: Int32) {
        guard let id = FileIdentity(path: "/proc/\(pid)/exe") else { return }   // gone, or a kernel thread
        if let key = targetKey(of: id) {
            // A new process of a watched file: the probes see its goroutines from its start.
            targets[key]!.pids[pid] = id
            return
        }
        if skipped[id] != nil { return }
        let file: OpenedExecutable
        do { file = try OpenedExecutable(pid: pid) } catch { return }
        guard file.identity == id else { return }   // it ran exec meanwhile: its own event follows
        let owner = Owner(cgroupLines: ProcFS.cgroups(pid) ?? [])
        guard options.filters.admits(path: file.displayPath, owner: owner) else {
            skip(id, nil)
            return
        }
        // Cheap first: most executables on a host are not Go programs.
        guard GoProgramCheck.looksLikeGo(path: file.kernelPath) else { skip(id, nil); return }
        // Another container's mount of a layer file watched already: its probes fire here too
        // (probes on both would count every event twice). Its processes running then were found
        // through the layer file when it was attached; this one started since.
        let layerFile = OverlayFileKey(fd: file.fd)
        if let layerFile, let key = layerFiles[layerFile], targets[key] != nil {
            aliases[id] = key
            targets[key]!.pids[pid] = id
            return
        }
        let exe: GoExecutable
        let plan: AttachPlan
        let layout: RuntimeLayout
        let number: UInt32
        do {
            exe = try GoExecutable(path: file.kernelPath)
            layout = try exe.runtimeLayout()
            plan = try AttachPoints.plan(for: exe, classic: options.classicProbes)
            number = try session.attach(file: file.kernelPath, layout: layout, plan: plan, pid: nil)
        } catch {
            skip(id, "gmon: note: not watching \(file.displayPath) (process \(pid)): \(error)")
            return
        }
        let executable = ExecutableID(number)
        resolver.executables.add(GoSiteResolver(exe: exe, executable: executable, file: id, plan: plan))
        let name = file.displayPath.split(separator: "/").last.map(String.init) ?? file.displayPath
        // Every process of it running now (this one included), read from memory and seeded;
        // with the same layer file under other overlay mounts, theirs too (those the filters admit).
        var found = ProcFS.processes(running: id, layerFile: layerFile)
        if layerFile != nil && !options.filters.isEmpty {
            found = found.filter { $0.file == id || admits(UInt32(bitPattern: $0.pid)) }
        }
        let pids = found.map(\.pid)
        var members = Dictionary(found.map { ($0.pid, $0.file) }, uniquingKeysWith: { a, _ in a })
        members[pid] = id
        for p in found where p.file != id { aliases[p.file] = id }
        targets[id] = Target(number: number, file: file, exe: exe, gSize: layout.gSizeFloor, name: name, pids: members, layerFile: layerFile)
        if let layerFile { layerFiles[layerFile] = id }
        fileOfNumber[number] = id
        let seeded = ExistingGoroutines.seed(pids: pids, exe: exe, file: id, executable: executable, resolver: resolver,
                                             pipeline: pipeline, stop: stop)
        seededGoroutines += seeded.goroutines
        for f in seeded.failures {
            say("gmon: warning: cannot read the goroutines that already exist in process \(f.pid) (\(f.reason)); its goroutines created from now on are watched")
        }
        let ownerNote = owner.containerID.map { " in container \($0.prefix(12))" } ?? owner.systemdUnit.map { " (\($0))" } ?? ""
        publishTargets()
        say("gmon: watching \(file.displayPath) (\(exe.goVersion))\(ownerNote): \(pids.count) process\(pids.count == 1 ? "" : "es"), \(seeded.goroutines) goroutines already running")
    }

    private func skip(_ id: FileIdentity, _ note: String?) {
        if skipped.count >= Self.maxSkipped { skipped.removeAll() }
        skipped[id] = note ?? ""
        if let note { say(note) }
    }

    /// The group of a process of executable `number`: its file and container.
    func group(pid: UInt32, number: ExecutableID) -> ExecutableID {
        if let g = groupOfPid[pid]?[number.rawValue] { return g }
        guard let file = fileOfNumber[number.rawValue] else { return number }
        let owner = Owner(cgroupLines: ProcFS.cgroups(Int32(bitPattern: pid)) ?? [])
        let key = GroupKey(file: file, container: owner.containerID ?? "")
        let g: ExecutableID
        if let known = groups[key] {
            g = known
            goneGroups[g] = nil
        } else {
            g = ExecutableID(nextGroup)
            nextGroup &+= 1
            groups[key] = g
            let pod = owner.podUID.flatMap { pods.pod(uid: $0) }
            var l = [("exe", targets[file]?.name ?? "?"), ("container_id", owner.containerID ?? ""),
                     ("pod", pod?.name ?? ""), ("namespace", pod?.namespace ?? "")]
            metrics?.executableLabels[g] = l
            if let u = owner.systemdUnit { l.append(("unit", u)) }
            if let uid = owner.podUID { l.append(("pod_uid", uid)) }
            labels[g] = l
        }
        if groupOfPid.count < 1 << 20 { groupOfPid[pid, default: [:]][number.rawValue] = g }
        return g
    }

    /// Until when everySecond returns freed memory to the system (a few seconds after a removal).
    private var trimUntilNs: UInt64 = 0

    /// Once a second: processes gone; executables with none left are detached; series of
    /// groups gone for longer than the grace period are removed.
    public func everySecond() {
        let now = monotonicNow()
        for (id, t) in targets {
            let alive = t.pids.filter { FileIdentity(path: "/proc/\($0.key)/exe") == $0.value }
            for p in t.pids.keys where alive[p] == nil { groupOfPid[UInt32(p)] = nil }
            if alive.isEmpty {
                session.detach(executable: t.number)
                resolver.executables.remove(ExecutableID(t.number))
                targets[id] = nil
                fileOfNumber[t.number] = nil
                aliases = aliases.filter { $0.value != id }
                if let l = t.layerFile { layerFiles[l] = nil }
                say("gmon: \(t.file.displayPath): its last process is gone; probes detached")
            } else if alive.count != t.pids.count {
                targets[id]!.pids = alive
            }
        }
        // A container gone while other containers of its file run: its group goes too.
        let aliveGroups = Set(targets.values.flatMap { t in t.pids.keys.compactMap { groupOfPid[UInt32($0)]?[t.number] } })
        for g in groups.values where !aliveGroups.contains(g) && goneGroups[g] == nil { goneGroups[g] = now }
        let grace = UInt64(options.staleAfterSeconds * 1e9)
        let due = Set(goneGroups.filter { now &- $0.value >= grace }.keys)
        if !due.isEmpty {
            metrics?.removeSeries(of: due, tracker: pipeline.tracker)
            log.forget(sites: pipeline.tracker.retire(executables: due))
            trimUntilNs = now &+ 5_000_000_000
            for g in due { goneGroups[g] = nil; labels[g] = nil }
            groups = groups.filter { !due.contains($0.value) }
        }
        // What was freed goes back to the system, not only to malloc's free lists, so the
        // agent's RSS follows what it watches: at the removal and for a few seconds after (the
        // last large scrapes of the removed series are freed when they are answered).
        if now < trimUntilNs {
            malloc_trim(0)
        }
        publishTargets()
    }

    /// Files watched now.
    public var watchedCount: Int { targets.count }

    /// The key in `targets` of a file watched, seen under its own identity or another overlay mount's.
    private func targetKey(of id: FileIdentity) -> FileIdentity? {
        targets[id] != nil ? id : aliases[id]
    }

    private func target(of id: FileIdentity) -> Target? {
        targetKey(of: id).flatMap { targets[$0] }
    }

    /// With filters: whether the events of `pid` count (its executable's path and container).
    /// A process gone before its first event is looked at counts (its file was watched).
    func admits(_ pid: UInt32) -> Bool {
        if let v = verdicts[pid] { return v }
        let p = Int32(bitPattern: pid)
        let v = ProcFS.readLink("/proc/\(p)/exe").map { options.filters.admits(path: $0, owner: Owner(cgroupLines: ProcFS.cgroups(p) ?? [])) } ?? true
        if verdicts.count >= 1 << 16 { verdicts.removeAll() }
        verdicts[pid] = v
        return v
    }
}
