// libFuzzer entry point that mutates real Go executables instead of whole files:
// libFuzzer's per-input cost grows with input size, so 1–2 MB binaries as inputs
// give ~100 executions/s. Here an input is a short list of byte patches applied to
// one of a few real binaries held in memory (directory GMON_FUZZ_BASES), aimed at
// the structures the reader trusts: ELF and program/section headers, build info,
// pclntab header, function table, and anywhere in the file.
//
// Input: [base selector] then repeated [region, offset (3 bytes LE), length, bytes…].

#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) var bases: [[UInt8]] = []

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>>>) -> CInt {
    guard let dirC = getenv("GMON_FUZZ_BASES"), let dir = opendir(dirC) else {
        fputs("set GMON_FUZZ_BASES to a directory of Go executables\n", stderr); exit(2)
    }
    let path = String(cString: dirC)
    var names: [String] = []
    while let e = readdir(dir) {
        let name = withUnsafePointer(to: e.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
        if !name.hasPrefix(".") { names.append(name) }
    }
    closedir(dir)
    for n in names.sorted() {
        if let b = try? GoExecutable.readFile(path + "/" + n) { bases.append(b); regions.append(regions(of: b)) }
    }
    guard !bases.isEmpty else { fputs("no Go executables in \(path)\n", stderr); exit(2) }
    return 0
}

/// Where patches land in each base: start and length of each region, computed once
/// (holding the parsed ELF would share the base's storage and make each write copy it).
nonisolated(unsafe) var regions: [[(start: Int, length: Int)]] = []

func regions(of b: [UInt8]) -> [(start: Int, length: Int)] {
    let elf = try? ELFFile(ByteView(b))
    let tab = elf.flatMap { e in
        try? PCLNTab(elf: e) { a in ModuleData.find(elf: e, pclntabAddress: a, goRelease: (try? BuildInfo(elf: e))?.release).map { ($0.text, $0.gofunc) } }
    }
    var r: [(Int, Int)] = [(0, min(b.count, 64))]                                          // ELF header
    if let e = elf, let o = try? e.data.int64(32) { r.append((o, 56 * e.segments.count)) }    // program headers
    if let e = elf, let o = try? e.data.int64(40) { r.append((o, 64 * e.sections.count)) }    // section headers
    if let s = elf?.section(named: ".go.buildinfo"), s.hasFileData { r.append((s.offset, min(s.size, 4096))) }
    if let t = tab {
        r.append((t.headerOffset, 128))                                                      // pcHeader
        r.append((t.pclntable, min(t.functionCount * 16 + 16, 1 << 20)))                    // function table
        r.append((t.funcnametab, 1 << 16))                                                   // names, cutab, files
    }
    r.append((0, b.count))                                                                   // anywhere
    return r
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPatches(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let which = Int(data[0]) % bases.count
    // Patch the base in place and undo afterwards: copying a 1–6 MB base per execution
    // (under AddressSanitizer) would cost more than reading it. Taking it out of `bases`
    // keeps the array uniquely referenced, so the writes below do not copy it.
    var bytes = bases[which]
    bases[which] = []
    defer { bases[which] = bytes }
    let places = regions[which]
    var undo: [(Int, UInt8)] = []
    var i = 1
    while i + 5 <= size {
        let (start, length) = places[Int(data[i]) % places.count]
        let offset = Int(data[i + 1]) | Int(data[i + 2]) << 8 | Int(data[i + 3]) << 16
        let n = Int(data[i + 4]) % 16
        i += 5
        var k = 0
        while k < n && i < size {
            let at = start + (length > 0 ? (offset + k) % length : 0)
            if at >= 0 && at < bytes.count { undo.append((at, bytes[at])); bytes[at] = data[i] }
            k += 1; i += 1
        }
    }
    exerciseReader(bytes)
    for (at, b) in undo.reversed() { bytes[at] = b }
    return 0
}
