import GoBinary

// runtime.firstmoduledata: the linker-written struct whose first field points
// at the pclntab. Found without symbols by looking for that pointer; it gives
// the text start (no longer in the pclntab header from Go 1.26) and go:func.*,
// the base of funcdata offsets (inline trees) since Go 1.18.

struct ModuleData {
    let address: UInt64
    let text: UInt64
    let gofunc: UInt64

    static let textOffset: UInt64 = 176

    /// Offset of `gofunc` in moduledata for a release (src/runtime/symtab.go).
    static func gofuncOffset(_ release: (major: Int, minor: Int)?) -> UInt64? {
        guard let r = release else { return nil }
        switch r.minor {
        case ..<18: return nil        // funcdata are absolute pointers before 1.18
        case 18, 19: return 304
        case 20...26: return 320      // covctrs/ecovctrs added in 1.20
        default: return 344           // typedesclen, itaboffset, itabsize added in 1.27
        }
    }

    static func find(elf: ELFFile, pclntabAddress: UInt64, goRelease: (major: Int, minor: Int)?) -> ModuleData? {
        var candidates: [UInt64] = []
        if let v = try? elf.symbolValues(["runtime.firstmoduledata"])["runtime.firstmoduledata"] { candidates.append(v) }
        for (at, value) in elf.relativeRelocations where value == pclntabAddress { candidates.append(at) }
        if candidates.isEmpty {
            for seg in elf.segments where seg.type == ELFSegment.typeLoad && seg.flags & 2 != 0 {
                let d = elf.data
                guard d.contains(seg.offset, seg.fileSize) else { continue }
                d.bytes.withUnsafeBytes { raw in
                    var o = (seg.offset + 7) & ~7
                    let end = seg.offset + seg.fileSize - 8
                    while o <= end {
                        if raw.loadUnaligned(fromByteOffset: o, as: UInt64.self) == pclntabAddress {
                            candidates.append(seg.virtualAddress &+ UInt64(o - seg.offset))
                        }
                        o += 8
                    }
                }
            }
        }
        for a in candidates {
            guard (try? elf.pointer(at: a)) == pclntabAddress,
                  let fnt = try? elf.pointer(at: a &+ 8), fnt > pclntabAddress,
                  let text = try? elf.pointer(at: a &+ textOffset), text != 0 else { continue }
            var gofunc: UInt64 = 0
            if let go = gofuncOffset(goRelease), let g = try? elf.pointer(at: a &+ go), g != 0,
               let rodata = try? elf.pointer(at: a &+ go &- 8), g >= rodata {
                gofunc = g
            }
            return ModuleData(address: a, text: text, gofunc: gofunc)
        }
        return nil
    }
}
