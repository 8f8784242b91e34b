// Minimal ELF64 little-endian reader: what gmon needs to find Go's tables
// and to translate virtual addresses into the file offsets uprobes take.

public struct ELFSection: Sendable {
    public let name: String
    public let type: UInt32
    public let flags: UInt64
    public let address: UInt64
    public let offset: Int
    public let size: Int
    public let link: UInt32
    public let entrySize: Int

    public static let typeNoBits: UInt32 = 8
    public static let flagCompressed: UInt64 = 0x800
    public var hasFileData: Bool { type != ELFSection.typeNoBits }
}

public struct ELFSegment: Sendable {
    public let type: UInt32
    public let flags: UInt32
    public let offset: Int
    public let virtualAddress: UInt64
    public let fileSize: Int
    public let memorySize: UInt64

    public static let typeLoad: UInt32 = 1
    public var isExecutable: Bool { flags & 1 != 0 }
}

public struct ELFFile: Sendable {
    public enum Kind: Sendable, Equatable { case executable, sharedObject }

    public let data: ByteView
    public let kind: Kind
    public let machine: UInt16
    public let entry: UInt64
    public let sections: [ELFSection]
    public let segments: [ELFSegment]
    /// Link-time values of R_X86_64_RELATIVE relocations, sorted by address: in a PIE
    /// the file holds zeros where the loader later writes these pointers. A sorted
    /// array, not a dictionary: a PIE has tens of thousands and most are never asked for.
    public let relativeRelocations: [(address: UInt64, value: UInt64)]

    public static let machineX86_64: UInt16 = 62
    public static let machineAArch64: UInt16 = 183

    public init(_ data: ByteView) throws {
        self.data = data
        guard data.count >= 4, data.bytes[0] == 0x7f, data.bytes[1] == 0x45, data.bytes[2] == 0x4c, data.bytes[3] == 0x46 else {
            throw GoBinaryError.notELF
        }
        guard data.count >= 64 else { throw GoBinaryError.outOfBounds("ELF header", offset: 0, length: 64) }
        guard data.bytes[4] == 2 else { throw GoBinaryError.unsupportedELF("32-bit ELF; gmon supports 64-bit executables") }
        guard data.bytes[5] == 1 else { throw GoBinaryError.unsupportedELF("big-endian ELF") }
        let type = try data.u16(16)
        switch type {
        case 2: kind = .executable
        case 3: kind = .sharedObject
        default: throw GoBinaryError.unsupportedELF("ELF type \(type) is neither an executable nor a position-independent executable")
        }
        machine = try data.u16(18)
        entry = try data.u64(24)
        let phoff = try data.int64(32)
        let shoff = try data.int64(40)
        let phentsize = Int(try data.u16(54)), phnum = Int(try data.u16(56))
        let shentsize = Int(try data.u16(58)), shnum = Int(try data.u16(60)), shstrndx = Int(try data.u16(62))

        var segments: [ELFSegment] = []
        if phnum > 0 {
            guard phentsize >= 56 else { throw GoBinaryError.unsupportedELF("program header entry size \(phentsize)") }
            for i in 0..<phnum {
                let o = phoff &+ i &* phentsize
                try data.check(o, 56, "program header")
                segments.append(ELFSegment(
                    type: try data.u32(o), flags: try data.u32(o + 4), offset: try data.int64(o + 8),
                    virtualAddress: try data.u64(o + 16), fileSize: try data.int64(o + 32), memorySize: try data.u64(o + 40)))
            }
        }
        self.segments = segments

        var sections: [ELFSection] = []
        if shnum > 0 && shoff != 0 {
            guard shentsize >= 64 else { throw GoBinaryError.unsupportedELF("section header entry size \(shentsize)") }
            try data.check(shoff, shnum &* shentsize, "section headers")
            var raw: [(UInt32, UInt32, UInt64, UInt64, Int, Int, UInt32, Int)] = []
            for i in 0..<shnum {
                let o = shoff + i * shentsize
                raw.append((try data.u32(o), try data.u32(o + 4), try data.u64(o + 8), try data.u64(o + 16),
                            try data.int64(o + 24), try data.int64(o + 32), try data.u32(o + 40), try data.int64(o + 56)))
            }
            guard shstrndx < raw.count else { throw GoBinaryError.malformed("section name table index \(shstrndx) out of range") }
            let strtab = raw[shstrndx]
            for r in raw {
                var name = ""
                if strtab.1 != ELFSection.typeNoBits, Int(r.0) < strtab.5 {
                    name = (try? data.cString(strtab.4 &+ Int(r.0), limit: strtab.5 - Int(r.0))) ?? ""
                }
                let s = ELFSection(name: name, type: r.1, flags: r.2, address: r.3, offset: r.4, size: r.5, link: r.6, entrySize: r.7)
                if s.hasFileData && s.size > 0 { try data.check(s.offset, s.size, "section contents") }
                sections.append(s)
            }
        }
        self.sections = sections

        var relocs: [(address: UInt64, value: UInt64)] = []
        var sorted = true
        for s in sections where s.type == 4 /* SHT_RELA */ && s.entrySize == 24 {
            let n = s.size / 24
            relocs.reserveCapacity(relocs.count + n)
            for i in 0..<n {
                let o = s.offset + i * 24
                let info = try data.u64(o + 8) & 0xffff_ffff
                guard info == 8 /* R_X86_64_RELATIVE */ || info == 1027 /* R_AARCH64_RELATIVE */ else { continue }
                let a = try data.u64(o)
                if let last = relocs.last, last.address >= a { sorted = false }
                relocs.append((a, try data.u64(o + 16)))
            }
        }
        // Go's internal linker does not emit them in address order.
        if !sorted { relocs.sort { $0.address < $1.address } }
        relativeRelocations = relocs
    }

    public var isPIE: Bool { kind == .sharedObject }

    public func section(named name: String) -> ELFSection? { sections.first { $0.name == name } }

    /// File offset of a virtual address, through the PT_LOAD segment that maps it.
    public func fileOffset(ofAddress address: UInt64) -> Int? {
        for seg in segments where seg.type == ELFSegment.typeLoad {
            if address >= seg.virtualAddress && address - seg.virtualAddress < UInt64(seg.fileSize) {
                return seg.offset &+ Int(address - seg.virtualAddress)
            }
        }
        return nil
    }

    /// Virtual address for a file offset (inverse of `fileOffset(ofAddress:)`).
    public func address(ofFileOffset offset: Int) -> UInt64? {
        for seg in segments where seg.type == ELFSegment.typeLoad && offset >= seg.offset && offset - seg.offset < seg.fileSize {
            return seg.virtualAddress &+ UInt64(offset - seg.offset)
        }
        return nil
    }

    /// Reads a pointer stored at a virtual address, applying a RELATIVE relocation if the loader would.
    public func pointer(at address: UInt64) throws -> UInt64 {
        var lo = 0, hi = relativeRelocations.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if relativeRelocations[mid].address < address { lo = mid + 1 } else { hi = mid }
        }
        if lo < relativeRelocations.count && relativeRelocations[lo].address == address { return relativeRelocations[lo].value }
        guard let off = fileOffset(ofAddress: address) else {
            throw GoBinaryError.malformed("address 0x\(String(address, radix: 16)) is not in the file")
        }
        return try data.u64(off)
    }

    /// Looks up named symbols in one pass over `.symtab`.
    public func symbolValues(_ names: Set<String>) throws -> [String: UInt64] {
        guard let symtab = sections.first(where: { $0.type == 2 }), Int(symtab.link) < sections.count, symtab.entrySize == 24 else { return [:] }
        let strtab = sections[Int(symtab.link)]
        let wanted = names.map { Array($0.utf8) }
        var out: [String: UInt64] = [:]
        for i in 0..<(symtab.size / 24) {
            let o = symtab.offset + i * 24
            let nameOff = Int(try data.u32(o))
            guard nameOff < strtab.size else { continue }
            let start = strtab.offset + nameOff
            for w in wanted where data.contains(start, w.count + 1) && data.bytes[start + w.count] == 0
                && data.bytes[start..<(start + w.count)].elementsEqual(w) {
                out[String(decoding: w, as: UTF8.self)] = try data.u64(o + 8)
            }
        }
        return out
    }

    /// Contents of a section, decompressed if it is SHF_COMPRESSED.
    public func contents(of section: ELFSection) throws -> ByteView {
        guard section.hasFileData else { return ByteView([]) }
        let raw = try data.slice(section.offset, section.size)
        if section.flags & ELFSection.flagCompressed != 0 {
            return ByteView(try Decompress.elfCompressed(Array(raw)))
        }
        if section.name.hasPrefix(".zdebug_") {
            return ByteView(try Decompress.zdebug(Array(raw)))
        }
        return ByteView(Array(raw))
    }
}
