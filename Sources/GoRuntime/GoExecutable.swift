import GoBinary
#if canImport(Glibc)
import Glibc
#endif

/// A Go executable read from disk: ELF, build info, symbol table, runtime layout.
public struct GoExecutable: Sendable {
    public let path: String
    public let elf: ELFFile
    public let buildInfo: BuildInfo
    public let pclntab: PCLNTab
    /// True when the file has no `.symtab` (built with -ldflags=-s or stripped).
    public let isStripped: Bool
    public let hasDWARF: Bool

    public init(path: String) throws {
        try self.init(path: path, bytes: try Self.readFile(path))
    }

    public init(path: String, bytes: [UInt8]) throws {
        self.path = path
        let elf = try ELFFile(ByteView(bytes))
        self.elf = elf
        buildInfo = try BuildInfo(elf: elf)
        if let r = buildInfo.release, r.major == 1, r.minor < 17 {
            throw GoBinaryError.unsupportedGoVersion(buildInfo.goVersion)
        }
        let release = buildInfo.release
        pclntab = try PCLNTab(elf: elf) { address in
            ModuleData.find(elf: elf, pclntabAddress: address, goRelease: release).map { ($0.text, $0.gofunc) }
        }
        isStripped = !elf.sections.contains { $0.type == 2 }
        hasDWARF = DWARFStructReader.hasDWARF(elf)
    }

    public var goVersion: String { buildInfo.goVersion }
    public var isPIE: Bool { elf.isPIE }

    /// runtime.g offsets: DWARF when present, else the per-release table.
    /// Throws for an unknown release without DWARF; callers then ask for overrides.
    public func runtimeLayout() throws -> RuntimeLayout {
        if let l = try? RuntimeLayout.fromDWARF(elf) { return l }
        if let l = RuntimeLayout.fromTable(release: buildInfo.release) { return l }
        throw GoBinaryError.unknownRuntimeLayout(goVersion: goVersion)
    }

    /// Entry address of a function, from the pclntab (works on stripped binaries).
    public func functionEntry(_ name: String) throws -> (entry: UInt64, end: UInt64) {
        guard let i = pclntab.functionIndex(named: name) else { throw GoBinaryError.missingFunction(name) }
        return (try pclntab.entry(ofFunction: i), try pclntab.end(ofFunction: i))
    }

    /// Machine code of the function `[entry, end)`.
    public func code(from entry: UInt64, to end: UInt64) throws -> ArraySlice<UInt8> {
        guard end > entry, end - entry < 1 << 24, let off = elf.fileOffset(ofAddress: entry) else {
            throw GoBinaryError.malformed("function at 0x\(String(entry, radix: 16)) is not in the file")
        }
        return try elf.data.slice(off, Int(end - entry))
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw GoBinaryError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw GoBinaryError.isDirectory(path: path) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw GoBinaryError.cannotOpen(path: path, reason: "not a regular file") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GoBinaryError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let size = Int(st.st_size)
        var buf = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw GoBinaryError.cannotOpen(path: path, reason: n == 0 ? "file shrank while reading" : String(cString: strerror(errno))) }
            done += n
        }
        return buf
    }
}
