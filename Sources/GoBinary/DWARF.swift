// Just enough DWARF (versions 2–5) to read the member offsets of one
// struct type, e.g. runtime.g, from .debug_info.

public struct DWARFStructReader {
    let info: ByteView
    let abbrev: ByteView
    let str: ByteView
    let lineStr: ByteView

    public init(elf: ELFFile) throws {
        func load(_ names: [String]) throws -> ByteView? {
            for n in names { if let s = elf.section(named: n) { return try elf.contents(of: s) } }
            return nil
        }
        guard let info = try load([".debug_info", ".zdebug_info"]), let abbrev = try load([".debug_abbrev", ".zdebug_abbrev"]) else {
            throw GoBinaryError.malformed("no DWARF")
        }
        self.info = info
        self.abbrev = abbrev
        str = try load([".debug_str", ".zdebug_str"]) ?? ByteView([])
        lineStr = try load([".debug_line_str", ".zdebug_line_str"]) ?? ByteView([])
    }

    public static func hasDWARF(_ elf: ELFFile) -> Bool {
        elf.section(named: ".debug_info") != nil || elf.section(named: ".zdebug_info") != nil
    }

    struct Abbrev {
        let tag: UInt64
        let hasChildren: Bool
        let attrs: [(name: UInt64, form: UInt64, implicit: Int64)]
    }

    func abbrevTable(at offset: Int) throws -> [UInt64: Abbrev] {
        var table: [UInt64: Abbrev] = [:]
        var p = offset
        while true {
            let (code, p1) = try abbrev.uvarint(p)
            if code == 0 { break }
            let (tag, p2) = try abbrev.uvarint(p1)
            let children = try abbrev.u8(p2) != 0
            p = p2 + 1
            var attrs: [(UInt64, UInt64, Int64)] = []
            while true {
                let (name, q1) = try abbrev.uvarint(p)
                let (form, q2) = try abbrev.uvarint(q1)
                p = q2
                if name == 0 && form == 0 { break }
                var implicit: Int64 = 0
                if form == 0x21 { (implicit, p) = try abbrev.sleb(p) }
                attrs.append((name, form, implicit))
                guard attrs.count < 1024 else { throw GoBinaryError.malformed("DWARF abbreviation too long") }
            }
            table[code] = Abbrev(tag: tag, hasChildren: children, attrs: attrs)
            guard table.count < 1 << 20 else { throw GoBinaryError.malformed("DWARF abbreviation table too long") }
        }
        return table
    }

    enum Value { case none, uint(UInt64), int(Int64), string(String), block(Int, Int) }

    /// Reads one attribute value; returns the value and the offset after it.
    func readForm(_ form: UInt64, _ p: Int, offsetSize: Int, implicit: Int64, version: Int) throws -> (Value, Int) {
        let d = info
        func uleb() throws -> (Value, Int) { let (v, q) = try d.uvarint(p); return (.uint(v), q) }
        func fixed(_ n: Int) throws -> (Value, Int) {
            switch n {
            case 1: return (.uint(UInt64(try d.u8(p))), p + 1)
            case 2: return (.uint(UInt64(try d.u16(p))), p + 2)
            case 3: try d.check(p, 3, "dwarf"); return (.uint(UInt64(d.bytes[p]) | UInt64(d.bytes[p+1]) << 8 | UInt64(d.bytes[p+2]) << 16), p + 3)
            case 4: return (.uint(UInt64(try d.u32(p))), p + 4)
            case 8: return (.uint(try d.u64(p)), p + 8)
            default: try d.check(p, n, "dwarf"); return (.none, p + n)
            }
        }
        func strAt(_ sec: ByteView, _ off: UInt64) throws -> Value {
            guard let o = Int(exactly: off) else { throw GoBinaryError.malformed("DWARF string offset") }
            return .string(try sec.cString(o))
        }
        switch form {
        case 0x01: return try fixed(8)
        case 0x03: let n = Int(try d.u16(p)); try d.check(p + 2, n, "block"); return (.block(p + 2, n), p + 2 + n)
        case 0x04: let n = Int(try d.u32(p)); try d.check(p + 4, n, "block"); return (.block(p + 4, n), p + 4 + n)
        case 0x05: return try fixed(2)
        case 0x06: return try fixed(4)
        case 0x07: return try fixed(8)
        case 0x08:
            let s = try d.cString(p)
            return (.string(s), p + s.utf8.count + 1)
        case 0x09, 0x18:
            let (n, q) = try d.uvarint(p)
            guard let len = Int(exactly: n), d.contains(q, len) else { throw GoBinaryError.malformed("DWARF block") }
            return (.block(q, len), q + len)
        case 0x0a: let n = Int(try d.u8(p)); try d.check(p + 1, n, "block"); return (.block(p + 1, n), p + 1 + n)
        case 0x0b: return try fixed(1)
        case 0x0c: return try fixed(1)
        case 0x0d: let (v, q) = try d.sleb(p); return (.int(v), q)
        case 0x0e, 0x1f:
            let (v, q) = try fixed(offsetSize)
            guard case .uint(let off) = v else { return (.none, q) }
            return (try strAt(form == 0x0e ? str : lineStr, off), q)
        case 0x0f, 0x15, 0x1a, 0x1b, 0x22, 0x23: return try uleb()
        case 0x10: return try fixed(version <= 2 ? 8 : offsetSize)
        case 0x11: return try fixed(1)
        case 0x12: return try fixed(2)
        case 0x13: return try fixed(4)
        case 0x14: return try fixed(8)
        case 0x16:
            let (f, q) = try d.uvarint(p)
            guard f != 0x16 else { throw GoBinaryError.malformed("DWARF indirect form loop") }
            return try readForm(f, q, offsetSize: offsetSize, implicit: implicit, version: version)
        case 0x17, 0x1d: return try fixed(offsetSize)
        case 0x19: return (.uint(1), p)
        case 0x1c: return try fixed(4)
        case 0x1e: return try fixed(16)
        case 0x20, 0x24: return try fixed(8)
        case 0x21: return (.int(implicit), p)
        case 0x25: return try fixed(1)
        case 0x26: return try fixed(2)
        case 0x27: return try fixed(3)
        case 0x28: return try fixed(4)
        case 0x29: return try fixed(1)
        case 0x2a: return try fixed(2)
        case 0x2b: return try fixed(3)
        case 0x2c: return try fixed(4)
        default: throw GoBinaryError.malformed("unknown DWARF form 0x\(String(form, radix: 16))")
        }
    }

    /// The first struct type called `name`: its members' byte offsets and its size, or nil.
    public func layout(ofStruct name: String) throws -> (members: [String: Int], byteSize: Int?)? {
        var cu = 0
        var abbrevCache: [Int: [UInt64: Abbrev]] = [:]
        while cu < info.count {
            var unitLength = UInt64(try info.u32(cu))
            var offsetSize = 4, p = cu + 4
            if unitLength == 0xffff_ffff { unitLength = try info.u64(cu + 4); offsetSize = 8; p = cu + 12 }
            guard let len = Int(exactly: unitLength), info.contains(p, len) else { throw GoBinaryError.malformed("DWARF unit length") }
            let unitEnd = p + len
            let version = Int(try info.u16(p))
            guard (2...5).contains(version) else { throw GoBinaryError.malformed("DWARF version \(version)") }
            var abbrevOff: Int
            if version >= 5 {
                let unitType = try info.u8(p + 2)
                abbrevOff = offsetSize == 4 ? Int(try info.u32(p + 4)) : try info.int64(p + 4)
                p += 4 + offsetSize
                if unitType == 2 || unitType == 6 { p += 16 } else if unitType == 4 || unitType == 5 { p += 8 }
            } else {
                abbrevOff = offsetSize == 4 ? Int(try info.u32(p + 2)) : try info.int64(p + 2)
                p += 2 + offsetSize + 1
            }
            let table: [UInt64: Abbrev]
            if let t = abbrevCache[abbrevOff] { table = t } else { table = try abbrevTable(at: abbrevOff); abbrevCache[abbrevOff] = table }

            var depth = 0
            var structDepth = -1
            var result: [String: Int] = [:]
            var byteSize: Int?
            while p < unitEnd {
                let (code, q) = try info.uvarint(p)
                p = q
                if code == 0 {
                    depth -= 1
                    if structDepth >= 0 && depth <= structDepth { return (result, byteSize) }
                    continue
                }
                guard let ab = table[code] else { throw GoBinaryError.malformed("DWARF abbreviation code \(code) not defined") }
                var dieName: String?
                var memberLocation: Int?
                var dieSize: Int?
                for a in ab.attrs {
                    let (v, q2) = try readForm(a.form, p, offsetSize: offsetSize, implicit: a.implicit, version: version)
                    p = q2
                    if a.name == 0x03, case .string(let s) = v { dieName = s }
                    if a.name == 0x0b, case .uint(let u) = v { dieSize = Int(exactly: u) }   // DW_AT_byte_size
                    if a.name == 0x38 {
                        switch v {
                        case .uint(let u): memberLocation = Int(exactly: u)
                        case .int(let i): memberLocation = Int(exactly: i)
                        case .block(let at, let n):
                            // DW_OP_plus_uconst N
                            if n >= 2, info.bytes[at] == 0x23, let (u, _) = try? info.uvarint(at + 1) { memberLocation = Int(exactly: u) }
                        default: break
                        }
                    }
                }
                if structDepth >= 0 {
                    if depth == structDepth + 1, ab.tag == 0x0d, let n = dieName, let off = memberLocation { result[n] = off }
                } else if ab.tag == 0x13, dieName == name, ab.hasChildren {
                    structDepth = depth
                    byteSize = dieSize
                }
                if ab.hasChildren { depth += 1 }
            }
            if structDepth >= 0 { return (result, byteSize) }
            cu = unitEnd
        }
        return nil
    }
}
