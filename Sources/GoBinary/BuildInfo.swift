/// What `.go.buildinfo` says: the Go release and the main module.
public struct BuildInfo: Sendable, Equatable {
    public var goVersion: String
    public var mainModule: String?
    public var mainModuleVersion: String?
    public var path: String?
    public var settings: [(String, String)]

    public static func == (a: BuildInfo, b: BuildInfo) -> Bool {
        a.goVersion == b.goVersion && a.mainModule == b.mainModule && a.path == b.path
            && a.settings.map { $0.0 + "=" + $0.1 } == b.settings.map { $0.0 + "=" + $0.1 }
    }

    /// Reads the blob from the `.go.buildinfo` section, or (no section
    /// headers) from the first 64 KiB of the first writable segment, as Go does.
    public init(elf: ELFFile) throws {
        let magic: [UInt8] = [0xff] + Array(" Go buildinf:".utf8)
        var start = 0, end = 0
        if let s = elf.section(named: ".go.buildinfo") {
            start = s.offset; end = s.offset &+ s.size
        } else if let seg = elf.segments.first(where: { $0.type == ELFSegment.typeLoad && $0.flags & 2 != 0 }) {
            start = seg.offset; end = seg.offset &+ Swift.min(seg.fileSize, 64 * 1024)
        }
        let d = elf.data
        guard let at = d.firstIndex(of: magic, from: start, to: end, alignment: 16) else {
            throw GoBinaryError.notGo("no Go build information (.go.buildinfo) found")
        }
        try d.check(at, 32, "build info header")
        let ptrSize = Int(d.bytes[at + 14]), flags = d.bytes[at + 15]
        var version: String, modinfo: [UInt8]
        if flags & 2 != 0 {
            // Go 1.18+: two varint-prefixed strings follow the 32-byte header.
            var off = at + 32
            (version, off) = try Self.varString(d, off)
            (modinfo, off) = try Self.varBytes(d, off)
        } else {
            // Go ≤1.17: pointers to Go string headers.
            guard ptrSize == 8, flags & 1 == 0 else { throw GoBinaryError.unsupportedELF("build info with pointer size \(ptrSize)") }
            version = String(decoding: try Self.pointedBytes(elf, try d.u64(at + 16)), as: UTF8.self)
            modinfo = try Self.pointedBytes(elf, try d.u64(at + 24))
        }
        guard version.hasPrefix("go") else { throw GoBinaryError.notGo("build information has no Go version") }
        goVersion = version
        settings = []
        // modinfo is wrapped in 16-byte sentinels, which are not UTF-8: cut as bytes (decoded first,
        // each invalid byte became three, the cut missed, and the first line, `path`, was lost).
        var mi = modinfo
        if mi.count >= 33 && mi[mi.count - 17] == 0x0a { mi = Array(mi[16..<(mi.count - 16)]) }
        for line in String(decoding: mi, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard parts.count >= 2 else { continue }
            switch parts[0] {
            case "path": path = parts[1]
            case "mod":
                mainModule = parts[1]
                if parts.count >= 3 { mainModuleVersion = parts[2] }
            case "build":
                if let eq = parts[1].firstIndex(of: "=") {
                    settings.append((String(parts[1][..<eq]), String(parts[1][parts[1].index(after: eq)...])))
                }
            default: break
            }
        }
    }

    /// Numeric release, e.g. go1.25.5 → (1, 25); "devel" builds → nil.
    public var release: (major: Int, minor: Int)? { GoVersion.parse(goVersion) }

    static func varString(_ d: ByteView, _ off: Int) throws -> (String, Int) {
        let (b, o) = try varBytes(d, off)
        return (String(decoding: b, as: UTF8.self), o)
    }

    static func varBytes(_ d: ByteView, _ off: Int) throws -> ([UInt8], Int) {
        let (n, o) = try d.uvarint(off)
        guard let len = Int(exactly: n) else { throw GoBinaryError.malformed("build info string length") }
        return (Array(try d.slice(o, len)), o + len)
    }

    static func pointedBytes(_ elf: ELFFile, _ addr: UInt64) throws -> [UInt8] {
        let dataPtr = try elf.pointer(at: addr)
        let len = try elf.pointer(at: addr &+ 8)
        guard len < 1 << 20, let off = elf.fileOffset(ofAddress: dataPtr) else { throw GoBinaryError.malformed("build info string") }
        return Array(try elf.data.slice(off, Int(len)))
    }
}

public enum GoVersion {
    /// "go1.25.5" → (1, 25); "go1.21rc2" → (1, 21); "devel go1.26-abc" → (1, 26).
    public static func parse(_ s: String) -> (major: Int, minor: Int)? {
        guard let r = s.firstRange(of: "go1.") else { return nil }
        let digits = s[r.upperBound...].prefix { $0.isASCII && $0.isNumber }
        guard let minor = Int(digits) else { return nil }
        return (1, minor)
    }
}
