#if canImport(Glibc)
import Glibc
#endif

/// Whether a file looks like a Go program, from its ELF section names only (a few KB read,
/// not the file): most executables on a host are not Go programs, and each is looked at once.
/// Go's linker writes `.go.buildinfo` (Go 1.13+) and `.gopclntab`; stripping keeps both.
/// The full parse comes after, for the files this admits.
public enum GoProgramCheck {
    public static func looksLikeGo(path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        func read(_ n: Int, at offset: UInt64) -> [UInt8]? {
            guard n > 0, n <= 1 << 20, offset < 1 << 40 else { return nil }
            var b = [UInt8](repeating: 0, count: n)
            let got = b.withUnsafeMutableBytes { pread(fd, $0.baseAddress, n, off_t(offset)) }
            return got == n ? b : nil
        }
        // 64-bit little-endian ELF only (what gmon watches).
        guard let h = read(64, at: 0), h[0] == 0x7f, h[1] == 0x45, h[2] == 0x4c, h[3] == 0x46, h[4] == 2, h[5] == 1 else { return false }
        func u16(_ b: [UInt8], _ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u32(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<4).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * $1) } }
        func u64(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * $1) } }
        let shoff = u64(h, 0x28), shentsize = u16(h, 0x3a), shnum = u16(h, 0x3c), shstrndx = u16(h, 0x3e)
        guard shentsize == 64, shnum > 0, shnum <= 4096, shstrndx < shnum,
              let table = read(shnum * 64, at: shoff) else { return false }
        let strOff = u64(table, shstrndx * 64 + 0x18), strSize = Int(min(u64(table, shstrndx * 64 + 0x20), 1 << 16))
        guard let names = read(strSize, at: strOff) else { return false }
        for i in 0..<shnum {
            let at = Int(u32(table, i * 64))
            guard at < names.count else { continue }
            let end = names[at...].firstIndex(of: 0) ?? names.count
            let name = names[at..<end]
            if name.elementsEqual(".go.buildinfo".utf8) || name.elementsEqual(".gopclntab".utf8) { return true }
        }
        return false
    }
}
