#if canImport(Glibc)
import Glibc
#endif

/// Processes as /proc shows them: who runs, in which state, cgroup and namespaces, and
/// with which privileges. Each read is bounded; a process that ends meanwhile reads as nil.
extension ProcFS {
    /// Every process id in /proc right now (processes come and go while it is read).
    public static func processIDs() -> [Int32] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var pids: [Int32] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let p = Int32(name), p > 0 { pids.append(p) }
        }
        return pids.sorted()
    }

    /// Fields of /proc/PID/stat gmon uses.
    public struct Stat: Sendable, Equatable {
        /// R, S, D, T, t, Z, X, I…
        public var state: Character
        public var parent: Int32
        /// Clock ticks after boot: with the pid, tells a process from a later one reusing its pid.
        public var startTime: UInt64
        /// CPU time in user and kernel mode, clock ticks.
        public var userTicks: UInt64 = 0, systemTicks: UInt64 = 0
        /// Virtual memory size in bytes, resident set in pages.
        public var virtualBytes: UInt64 = 0, residentPages: UInt64 = 0
    }

    public static func stat(_ pid: Int32) -> Stat? {
        guard let text = readSmallFile("/proc/\(pid)/stat") else { return nil }
        return parseStat(text)
    }

    /// "pid (comm) state ppid …": comm may hold spaces and ')', so fields follow the last ')'.
    static func parseStat(_ text: String) -> Stat? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let f = text[text.index(after: close)...].split(separator: " ")
        // state is field 3 of stat(5), starttime field 22: indices 0 and 19 after comm.
        guard f.count > 19, let state = f[0].first, let parent = Int32(f[1]), let start = UInt64(f[19]) else { return nil }
        var s = Stat(state: state, parent: parent, startTime: start)
        // utime, stime: fields 14 and 15; vsize, rss: 23 and 24.
        if f.count > 21 {
            s.userTicks = UInt64(f[11]) ?? 0
            s.systemTicks = UInt64(f[12]) ?? 0
            s.virtualBytes = UInt64(f[20]) ?? 0
            s.residentPages = UInt64(f[21]) ?? 0
        }
        return s
    }

    /// The process's cgroup paths, one per hierarchy ("0::/…" on cgroup v2).
    public static func cgroups(_ pid: Int32) -> [(hierarchy: String, controllers: String, path: String)]? {
        guard let text = readSmallFile("/proc/\(pid)/cgroup") else { return nil }
        return parseCgroups(text)
    }

    static func parseCgroups(_ text: String) -> [(hierarchy: String, controllers: String, path: String)] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            return f.count == 3 ? (String(f[0]), String(f[1]), String(f[2])) : nil
        }
    }

    /// The inode of one of the process's namespaces ("mnt", "pid", "net"…): equal inodes, same namespace.
    public static func namespace(_ pid: Int32, _ kind: String) -> UInt64? {
        inodeOf("/proc/\(pid)/ns/\(kind)")
    }

    /// Effective capabilities (CapEff) of a process, "self" for gmon.
    public static func effectiveCapabilities(_ pid: String = "self") -> UInt64? {
        guard let status = readSmallFile("/proc/\(pid)/status") else { return nil }
        return status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
            .flatMap { UInt64($0.dropFirst(7).drop(while: { $0 == " " || $0 == "\t" }), radix: 16) }
    }

    /// Capability numbers (linux/capability.h).
    public static let capSysPtrace = 19, capPerfmon = 38, capBPF = 39
}

private func inodeOf(_ path: String) -> UInt64? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return UInt64(st.st_ino)
}

extension ProcFS {
    /// The processes running this very file now (device and inode of /proc/PID/exe, so a
    /// process in another mount namespace running the same file counts, and another file
    /// at the same path does not).
    public static func processes(running file: FileIdentity) -> [Int32] {
        processIDs().filter { FileIdentity(path: "/proc/\($0)/exe") == file }
    }

    /// The same, plus (`layerFile`) the processes running that file underneath through
    /// another overlay mount (another container of the same image), each with the identity
    /// its own mount shows.
    public static func processes(running file: FileIdentity, layerFile: OverlayFileKey?) -> [(pid: Int32, file: FileIdentity)] {
        processIDs().compactMap { pid in
            let link = "/proc/\(pid)/exe"
            guard let id = FileIdentity(path: link) else { return nil }
            if id == file { return (pid, id) }
            guard let layerFile, id.inode == layerFile.inode, OverlayFileKey(path: link) == layerFile else { return nil }
            return (pid, id)
        }
    }
}

extension ProcFS {
    /// gmon's own cost, as exporters serve it (process_* metrics).
    public struct OwnUsage: Sendable {
        public var cpuSeconds: Double
        public var residentBytes: UInt64
        public var virtualBytes: UInt64
        public var startTimeSeconds: Double
        public var openFDs: Int
        public var maxFDs: UInt64
    }

    public static func ownUsage() -> OwnUsage? {
        guard let st = stat(getpid()) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        // Boot time (/proc/stat's btime) plus the start in ticks after boot.
        let boot = readSmallFile("/proc/stat")?.split(separator: "\n").first { $0.hasPrefix("btime ") }
            .flatMap { Double($0.dropFirst(6).trimmingPrefix(" ")) } ?? 0
        var fds = 0
        if let dir = opendir("/proc/self/fd") {
            while let e = readdir(dir) { if e.pointee.d_name.0 != 0x2e { fds += 1 } }
            closedir(dir)
            fds -= 1   // the directory's own descriptor
        }
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return OwnUsage(cpuSeconds: Double(st.userTicks + st.systemTicks) / ticks, residentBytes: st.residentPages * page,
                        virtualBytes: st.virtualBytes, startTimeSeconds: boot + Double(st.startTime) / ticks,
                        openFDs: max(fds, 0), maxFDs: UInt64(limit.rlim_cur))
    }
}
