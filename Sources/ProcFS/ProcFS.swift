#if canImport(Glibc)
import Glibc
#endif
import CProcFS

/// Everything gmon reads from /proc, in one place.
public enum ProcFS {
    /// True when `pid` no longer runs: no such process, or a zombie its parent has not reaped
    /// (kill(pid, 0) still succeeds for a zombie).
    public static func processIsGone(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        guard let stat = readSmallFile("/proc/\(pid)/stat") else { return true }
        // "pid (comm) S …": the state follows the last ')' (comm may contain one).
        guard let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
        return state == "Z" || state == "X"
    }

    /// Load address of `file` in process `pid` minus its link-time address: from the mapping of
    /// that very file (device and inode, not a path, which may name another file in the
    /// process's mount namespace) at file offset 0. nil when no such mapping is found.
    ///
    /// A file in a container's overlayfs root is another case: up to 6.7, maps shows the file
    /// underneath (the image layer's device), not the device stat shows. Then the mapping at
    /// offset 0 named as the process names its executable (/proc/PID/exe) is taken, when that
    /// executable is `file`, or an overlay file with `file`'s inode number (the same layer
    /// file seen through another container's overlay mount: `OverlayFileKey`).
    public static func loadBias(pid: UInt32, file: FileIdentity, firstLoadAddress: UInt64) -> UInt64? {
        guard let text = readSmallFile("/proc/\(pid)/maps", limit: 16 << 20) else { return nil }
        var exeName: Substring?
        for line in text.split(separator: "\n") {
            // start-end perms offset major:minor inode path
            let f = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard f.count >= 5, let inode = UInt64(f[4]), inode == file.inode,
                  let off = UInt64(f[2], radix: 16), off == 0,
                  let start = UInt64(f[0].split(separator: "-")[0], radix: 16) else { continue }
            let dev = f[3].split(separator: ":")
            guard dev.count == 2, let major = UInt32(dev[0], radix: 16), let minor = UInt32(dev[1], radix: 16) else { continue }
            if makeDevice(major, minor) == file.device { return start &- (firstLoadAddress & ~0xfff) }
            if f.count == 6 {
                if exeName == nil {
                    let link = "/proc/\(pid)/exe"
                    // `file` itself, or the same layer file through another overlay mount.
                    guard let own = FileIdentity(path: link), own == file || (own.inode == file.inode && OverlayFileKey(path: link) != nil),
                          let name = readLink(link) else { continue }
                    exeName = Substring(name)
                }
                if f[5].drop(while: { $0 == " " }) == exeName { return start &- (firstLoadAddress & ~0xfff) }
            }
        }
        return nil
    }

    /// A symbolic link's target (bounded), nil when it cannot be read.
    public static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buf, buf.count - 1)
        return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }

    /// A NUL-terminated C buffer's text.
    static func string(_ buf: [CChar]) -> String {
        String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Linux's dev_t encoding (glibc's makedev), to compare /proc's major:minor with stat's st_dev.
    static func makeDevice(_ major: UInt32, _ minor: UInt32) -> UInt64 {
        let ma = UInt64(major), mi = UInt64(minor)
        return (ma & 0xfff) << 8 | (ma & ~0xfff) << 32 | (mi & 0xff) | (mi & ~0xff) << 12
    }

    /// A /proc file's text, read with a bound (files of /proc report size 0, so read to EOF).
    public static func readSmallFile(_ path: String, limit: Int = 1 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, limit - out.count)) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Device and inode of a file: what identifies it whatever path or mount namespace it is seen under.
public struct FileIdentity: Hashable, Sendable, CustomStringConvertible {
    public let device: UInt64, inode: UInt64
    public init(device: UInt64, inode: UInt64) { self.device = device; self.inode = inode }
    public init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev); inode = UInt64(st.st_ino)
    }
    public init?(fd: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        device = UInt64(st.st_dev); inode = UInt64(st.st_ino)
    }
    public var description: String { "device \(device >> 8 & 0xfff):\(device & 0xff | device >> 12 & ~0xff), inode \(inode)" }
}

/// A file of an overlayfs mount, as a container's root is. Each mount shows its files under
/// a device of its own, while the kernel maps, runs and probes the file underneath, in the
/// image layer: two containers of one image show two identities for one file, and uprobes
/// attached through either fire in both. From 6.8, neither /proc/PID/maps nor a file handle
/// shows the file underneath; what every mount of it shows alike is its inode number, size
/// and modification time, which gmon takes together as the identity of the file underneath.
/// nil for a file not on overlayfs.
public struct OverlayFileKey: Hashable, Sendable {
    public let inode: UInt64, size: Int64, modifiedSeconds: Int, modifiedNanoseconds: Int
    static let overlayMagic = 0x794c_7630

    public init?(fd: Int32) {
        var fs = statfs()
        var st = stat()
        guard fstatfs(fd, &fs) == 0, Int(fs.f_type) == Self.overlayMagic, fstat(fd, &st) == 0 else { return nil }
        inode = UInt64(st.st_ino); size = Int64(st.st_size)
        modifiedSeconds = Int(st.st_mtim.tv_sec); modifiedNanoseconds = Int(st.st_mtim.tv_nsec)
    }

    public init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        self.init(fd: fd)
    }
}

/// A Go executable opened once, then parsed and given to the kernel through the same open
/// file (`/proc/self/fd/N`), so the probes land in exactly the file whose offsets gmon computed:
/// never a file of the same name found on $PATH, never the file at the same path in gmon's own
/// mount namespace when the process runs another one.
public final class OpenedExecutable: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let fd: Int32
    public let identity: FileIdentity
    /// What gmon calls the file in its messages: the absolute path, or the process's view of it.
    public let displayPath: String
    /// The path to read and attach through: the kernel follows it to the opened file itself.
    public var kernelPath: String { "/proc/self/fd/\(fd)" }

    /// `path` as given: relative and bare names are relative to the working directory
    /// (a bare name is never looked up on $PATH).
    public init(path: String) throws {
        var absolute = path
        if !path.hasPrefix("/") {
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            guard getcwd(&buf, buf.count) != nil else { throw Failure(description: "\(path): cannot read the working directory: \(String(cString: strerror(errno)))") }
            absolute = ProcFS.string(buf) + "/" + path
        }
        let fd = open(absolute, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let why = String(cString: strerror(errno))
            let hint = path.contains("/") ? "" : " (a bare name is taken in the working directory, never on $PATH: give the full path)"
            throw Failure(description: "\(path): \(why)\(hint)")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            let what = st.st_mode & S_IFMT == S_IFDIR ? "is a directory" : "is not a regular file"
            throw Failure(description: "\(path) \(what): give the path of a Go executable")
        }
        self.fd = fd
        identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        displayPath = realpath(absolute, &resolved) != nil ? ProcFS.string(resolved) : absolute
    }

    /// The executable process `pid` runs, through /proc/PID/exe: the kernel opens the process's
    /// own file, in whatever mount namespace it lives (or deleted from disk).
    public init(pid: Int32) throws {
        let link = "/proc/\(pid)/exe"
        let fd = open(link, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if ProcFS.processIsGone(pid) { throw Failure(description: "no process with pid \(pid): is it still running?") }
            throw Failure(description: "cannot open \(link): \(String(cString: strerror(e)))\(e == ENOENT ? " (a kernel thread has no executable)" : "")")
        }
        guard let id = FileIdentity(fd: fd) else { close(fd); throw Failure(description: "cannot stat \(link)") }
        self.fd = fd
        identity = id
        // The process's own name for its file; it may not exist (or be another file) in gmon's namespace.
        displayPath = ProcFS.readLink(link) ?? link
    }

    deinit { close(fd) }
}
