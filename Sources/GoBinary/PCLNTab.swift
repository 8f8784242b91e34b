import GmonModel
// Go's runtime symbol table (pclntab): functions, PC → file:line, and the
// inline trees that turn one PC into several logical frames. Formats of
// Go 1.16/1.17 (magic 0xfffffffa), 1.18/1.19 (0xfffffff0) and 1.20+
// (0xfffffff1). Layouts: src/runtime/symtab.go, runtime2.go, symtabinl.go.

public struct PCLNTab: Sendable {
    public enum Format: Sendable { case go116, go118, go120 }

    let data: ByteView
    public let format: Format
    /// File offset of the pcHeader.
    public let headerOffset: Int
    /// Virtual address of the pcHeader.
    public let headerAddress: UInt64
    public let functionCount: Int
    public let textStart: UInt64
    /// Address of go:func.* (base of funcdata offsets, Go ≥ 1.18); 0 when unknown.
    public let gofunc: UInt64
    let elf: ELFFile
    let funcnametab: Int, cutab: Int, filetab: Int, pctab: Int, pclntable: Int
    let minLC: UInt64
    let funcHeaderSize: Int
    let funcIDOffset: Int
    /// Go 1.16/1.17 store a pointer-sized entry, shifting the 32-bit fields by 4.
    var fieldBase: Int { format == .go116 ? 4 : 0 }

    static let magic116: UInt32 = 0xffff_fffa
    static let magic118: UInt32 = 0xffff_fff0
    static let magic120: UInt32 = 0xffff_fff1
    static let pcdataInlTreeIndex = 2
    static let funcdataInlTree = 3

    /// `moduleData`: the text start and go:func.* base the runtime's moduledata records, given
    /// the pclntab's address; their layout is per release (GoRuntime knows it).
    public init(elf: ELFFile, moduleData: (UInt64) -> (text: UInt64, gofunc: UInt64)?) throws {
        self.elf = elf
        data = elf.data
        let (off, addr) = try Self.locate(elf)
        headerOffset = off
        headerAddress = addr
        let magic = try data.u32(off)
        switch magic {
        case Self.magic116: format = .go116
        case Self.magic118: format = .go118
        case Self.magic120: format = .go120
        default: throw GoBinaryError.malformed("unknown pclntab magic 0x\(String(magic, radix: 16))")
        }
        guard try data.u8(off + 4) == 0, try data.u8(off + 5) == 0, try data.u8(off + 7) == 8 else {
            throw GoBinaryError.malformed("pclntab header is not for a 64-bit program")
        }
        minLC = UInt64(try data.u8(off + 6))
        guard minLC == 1 || minLC == 2 || minLC == 4 else { throw GoBinaryError.malformed("pclntab instruction size \(minLC)") }
        let nfunc = try data.int64(off + 8)
        var fields = off + 24
        var headerText: UInt64 = 0
        if format != .go116 {
            headerText = try elf.pointer(at: addr + 24)
            fields += 8
        }
        let d = elf.data
        func region(_ i: Int) throws -> Int {
            let o = try d.int64(fields + 8 * i)
            guard o < d.count else { throw GoBinaryError.malformed("pclntab table offset \(o) outside the file") }
            return off + o
        }
        funcnametab = try region(0)
        cutab = try region(1)
        filetab = try region(2)
        pctab = try region(3)
        pclntable = try region(4)
        let entrySize = format == .go116 ? 16 : 8
        guard nfunc > 0, nfunc < data.count / entrySize, data.contains(pclntable, (nfunc + 1) * entrySize) else {
            throw GoBinaryError.malformed("pclntab function table with \(nfunc) entries does not fit in the file")
        }
        functionCount = nfunc
        switch format {
        case .go116: funcHeaderSize = 44; funcIDOffset = 40
        case .go118: funcHeaderSize = 40; funcIDOffset = 36
        case .go120: funcHeaderSize = 44; funcIDOffset = 40
        }
        let module = moduleData(addr)
        if let t = module?.text, t != 0 {
            textStart = t
        } else if headerText != 0 {
            textStart = headerText
        } else if let text = elf.section(named: ".text") {
            textStart = text.address
        } else {
            throw GoBinaryError.malformed("cannot find the start of the text segment")
        }
        gofunc = module?.gofunc ?? 0
    }

    /// Finds the pcHeader: its own section, the runtime.pclntab symbol, or a scan for a valid header.
    static func locate(_ elf: ELFFile) throws -> (Int, UInt64) {
        for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
            if let s = elf.section(named: name), s.hasFileData, s.size >= 64 { return (s.offset, s.address) }
        }
        if let v = try elf.symbolValues(["runtime.pclntab"])["runtime.pclntab"], let off = elf.fileOffset(ofAddress: v) {
            return (off, v)
        }
        // Externally linked and stripped: scan non-executable loaded segments for a header whose tables fit.
        for seg in elf.segments where seg.type == ELFSegment.typeLoad && !seg.isExecutable {
            guard elf.data.contains(seg.offset, seg.fileSize) else { continue }
            // One pass over 8-aligned words for any of the three magics (the header is 8-aligned).
            var i = (seg.offset + 7) & ~7
            let end = seg.offset + seg.fileSize - 8
            while i <= end {
                if let m = try? elf.data.u32(i), m == magic120 || m == magic118 || m == magic116,
                   plausibleHeader(elf.data, i), let a = elf.address(ofFileOffset: i) { return (i, a) }
                i += 8
            }
        }
        throw GoBinaryError.notGo("no Go symbol table (pclntab) found")
    }

    static func plausibleHeader(_ d: ByteView, _ i: Int) -> Bool {
        guard let b4 = try? d.u8(i + 4), let b5 = try? d.u8(i + 5), let lc = try? d.u8(i + 6), let ps = try? d.u8(i + 7),
              b4 == 0, b5 == 0, lc == 1, ps == 8, let n = try? d.u64(i + 8), n > 0, n < 1 << 24 else { return false }
        let fields = (try? d.u32(i)) == magic116 ? i + 24 : i + 32
        for k in 0..<5 {
            guard let o = try? d.u64(fields + 8 * k), o > 0, o < UInt64(d.count - i) else { return false }
        }
        return true
    }

    // MARK: functions

    /// Entry address of function `index` (0 ≤ index ≤ functionCount; the last is the end of text).
    @inline(__always)
    func entry(_ index: Int) throws -> UInt64 {
        if format == .go116 { return try elf.data.u64(pclntable + index * 16) }
        return textStart &+ UInt64(try data.u32(pclntable + index * 8))
    }

    @inline(__always)
    func funcOffset(_ index: Int) throws -> Int {
        if format == .go116 {
            let o = try data.int64(pclntable + index * 16 + 8)
            guard o < data.count else { throw GoBinaryError.malformed("function offset \(o) outside the file") }
            return pclntable + o
        }
        return pclntable + Int(try data.u32(pclntable + index * 8 + 4))
    }

    public func name(ofFunction index: Int) throws -> String {
        let f = try funcOffset(index)
        return try name(nameOff: try data.i32(f + (format == .go116 ? 8 : 4)))
    }

    func name(nameOff: Int32) throws -> String {
        guard nameOff >= 0 else { throw GoBinaryError.malformed("negative function name offset") }
        return try data.cString(funcnametab + Int(nameOff), limit: 4096)
    }

    public func entry(ofFunction index: Int) throws -> UInt64 { try entry(index) }
    public func end(ofFunction index: Int) throws -> UInt64 { try entry(index + 1) }

    /// The `_func` funcID (special runtime functions, wrappers).
    public func funcID(ofFunction index: Int) throws -> UInt8 { try data.u8(try funcOffset(index) + funcIDOffset) }

    /// Index of the function containing `pc`, by binary search; nil outside Go text.
    public func functionIndex(containing pc: UInt64) -> Int? {
        guard let first = try? entry(0), let last = try? entry(functionCount), pc >= first, pc < last else { return nil }
        var lo = 0, hi = functionCount   // entry(lo) <= pc < entry(hi)
        while hi - lo > 1 {
            let mid = (lo + hi) >> 1
            guard let e = try? entry(mid) else { return nil }
            if e <= pc { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// Index of the function named `name`, by a linear scan of the name table.
    public func functionIndex(named name: String) -> Int? {
        let want = Array(name.utf8)
        let nameField = format == .go116 ? 8 : 4
        for i in 0..<functionCount {
            guard let f = try? funcOffset(i), let no = try? data.i32(f + nameField), no >= 0 else { continue }
            let at = funcnametab + Int(no)
            if data.contains(at, want.count + 1), data.bytes[at + want.count] == 0,
               data.bytes[at..<(at + want.count)].elementsEqual(want) { return i }
        }
        return nil
    }

    /// All functions as (name, entry, end).
    public func allFunctions() throws -> [(name: String, entry: UInt64, end: UInt64)] {
        var out: [(String, UInt64, UInt64)] = []
        out.reserveCapacity(functionCount)
        for i in 0..<functionCount { out.append((try name(ofFunction: i), try entry(i), try entry(i + 1))) }
        return out
    }

    // MARK: pc-value tables

    /// Value of the pc-value table at `tableOff` (relative to pctab) for `pc`, or -1.
    func pcvalue(_ tableOff: UInt32, entry: UInt64, pc targetPC: UInt64) throws -> Int32 {
        if tableOff == 0 { return -1 }
        var p = pctab + Int(tableOff)
        var pc = entry
        var val: Int32 = -1
        var first = true
        // A table never has more steps than bytes of code; bound the walk for hostile input.
        var steps = 0
        while true {
            let (uv, p1) = try data.uvarint(p)
            if uv == 0 && !first { return -1 }
            first = false
            let delta: Int64 = uv & 1 != 0 ? ~Int64(truncatingIfNeeded: uv >> 1) : Int64(truncatingIfNeeded: uv >> 1)
            let (pcd, p2) = try data.uvarint(p1)
            p = p2
            pc = pc &+ pcd &* minLC
            val = val &+ Int32(truncatingIfNeeded: delta)
            if targetPC < pc { return val }
            steps += 1
            if steps > 1 << 22 { throw GoBinaryError.malformed("pc-value table does not end") }
        }
    }

    /// Bytes of the function's frame below its return address at `pc` (the pcsp table):
    /// the return address sits at SP plus this. nil outside any function or table.
    public func frameSize(at pc: UInt64) throws -> Int? {
        guard let i = functionIndex(containing: pc) else { return nil }
        let f = try funcOffset(i), e = try entry(i)
        let v = try pcvalue(try data.u32(f + 16 + fieldBase), entry: e, pc: pc)
        return v < 0 ? nil : Int(v)
    }

    func pcdataOffset(_ f: Int, _ table: Int) throws -> UInt32? {
        let npcdata = Int(try data.u32(f + 28 + fieldBase))
        guard table < npcdata else { return nil }
        return try data.u32(f + funcHeaderSize + 4 * table)
    }

    /// Address of funcdata `i` of the function at `f`, or nil.
    func funcdataAddress(_ f: Int, _ i: Int) throws -> UInt64? {
        let npcdata = Int(try data.u32(f + 28 + fieldBase))
        let nfuncdata = Int(try data.u8(f + funcHeaderSize - 1))
        guard i < nfuncdata, npcdata < 1 << 16 else { return nil }
        var p = f + funcHeaderSize + 4 * npcdata
        if format == .go116 {
            guard let pAddr = elf.address(ofFileOffset: p) else { return nil }
            if pAddr & 4 != 0 { p += 4 }
            guard let a = elf.address(ofFileOffset: p + 8 * i) else { return nil }
            let v = try elf.pointer(at: a)
            return v == 0 ? nil : v
        }
        let o = try data.u32(p + 4 * i)
        guard o != UInt32.max, gofunc != 0 else { return nil }
        return gofunc &+ UInt64(o)
    }

    func fileLine(_ f: Int, entry: UInt64, pc: UInt64) throws -> (String, Int) {
        let pcfile = try data.u32(f + 20 + fieldBase)
        let pcln = try data.u32(f + 24 + fieldBase)
        let cuOff = try data.u32(f + 32 + fieldBase)
        let fileno = try pcvalue(pcfile, entry: entry, pc: pc)
        let line = try pcvalue(pcln, entry: entry, pc: pc)
        guard fileno >= 0, line >= 0 else { return ("?", 0) }
        let fileoff = try data.u32(cutab + 4 * (Int(cuOff) + Int(fileno)))
        guard fileoff != UInt32.max else { return ("?", 0) }
        return (try data.cString(filetab + Int(fileoff), limit: 4096), Int(line))
    }

    /// Layout of one inlinedCall record: 20 bytes with parent/file/line before Go 1.20, 16 after.
    var inlineRecord: (size: Int, nameOff: Int, parentPC: Int) {
        format == .go120 ? (16, 4, 8) : (20, 12, 16)
    }

    // MARK: symbolization

    /// Physical function and innermost file:line at `pc` (what `go tool addr2line` prints).
    public func physicalFrame(at pc: UInt64) throws -> Frame? {
        guard let i = functionIndex(containing: pc) else { return nil }
        let f = try funcOffset(i), e = try entry(i)
        let (file, line) = try fileLine(f, entry: e, pc: pc)
        return Frame(function: try name(ofFunction: i), file: file, line: line, inlined: false)
    }

    /// Logical frames at `pc`, innermost first and the physical function last,
    /// as Go's tracebacks show them.
    public func frames(at pc: UInt64) throws -> [Frame] {
        guard let i = functionIndex(containing: pc) else { return [] }
        let f = try funcOffset(i), e = try entry(i)
        var out: [Frame] = []
        var cur = pc
        var (file, line) = try fileLine(f, entry: e, pc: cur)
        if let inlOff = try pcdataOffset(f, Self.pcdataInlTreeIndex), inlOff != 0,
           let tree = try funcdataAddress(f, Self.funcdataInlTree),
           let treeOff = elf.fileOffset(ofAddress: tree) {
            var ix = try pcvalue(inlOff, entry: e, pc: cur)
            let (entrySize, nameField, parentPCField) = inlineRecord
            var depth = 0
            while ix >= 0 {
                depth += 1
                guard depth <= 256 else { throw GoBinaryError.malformed("inline tree loops") }
                let rec = treeOff + Int(ix) * entrySize
                let fname = try name(nameOff: try data.i32(rec + nameField))
                out.append(Frame(function: fname, file: file, line: line, inlined: true))
                let parentPC = try data.i32(rec + parentPCField)
                guard parentPC >= 0 else { throw GoBinaryError.malformed("inline tree parent pc") }
                cur = e &+ UInt64(parentPC)
                (file, line) = try fileLine(f, entry: e, pc: cur)
                ix = try pcvalue(inlOff, entry: e, pc: cur)
            }
        }
        out.append(Frame(function: try name(ofFunction: i), file: file, line: line, inlined: false))
        return out
    }

    /// Names of the functions inlined at the top level of function `index`
    /// (inline-tree entries whose call site is in the function itself), in tree order.
    public func topLevelInlinedCalls(ofFunction index: Int) throws -> [String] {
        let f = try funcOffset(index), e = try entry(index), end = try entry(index + 1)
        guard let inlOff = try pcdataOffset(f, Self.pcdataInlTreeIndex), inlOff != 0,
              let tree = try funcdataAddress(f, Self.funcdataInlTree),
              let treeOff = elf.fileOffset(ofAddress: tree) else { return [] }
        let (entrySize, nameField, parentPCField) = inlineRecord
        // Walk the pc-value table once to learn which indices occur, then keep the roots.
        var seen = Set<Int32>()
        var p = pctab + Int(inlOff), pc = e, val: Int32 = -1, first = true
        while pc < end {
            let (uv, p1) = try data.uvarint(p)
            if uv == 0 && !first { break }
            first = false
            let delta: Int64 = uv & 1 != 0 ? ~Int64(truncatingIfNeeded: uv >> 1) : Int64(truncatingIfNeeded: uv >> 1)
            let (pcd, p2) = try data.uvarint(p1)
            p = p2
            val = val &+ Int32(truncatingIfNeeded: delta)
            if val >= 0 { seen.insert(val) }
            pc = pc &+ pcd &* minLC
            if seen.count > 4096 { break }
        }
        var roots: [(Int32, String)] = []
        for ix in seen {
            let rec = treeOff + Int(ix) * entrySize
            let parentPC = try data.i32(rec + parentPCField)
            guard parentPC >= 0 else { continue }
            if try pcvalue(inlOff, entry: e, pc: e &+ UInt64(parentPC)) < 0 {
                roots.append((ix, try name(nameOff: try data.i32(rec + nameField))))
            }
        }
        return roots.sorted { $0.0 < $1.0 }.map { $0.1 }
    }
}
