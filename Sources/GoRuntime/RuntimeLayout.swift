import GoBinary

/// Byte offsets of the `runtime.g` fields gmon's BPF programs read.
public struct RuntimeLayout: Sendable, Equatable, Codable {
    public enum Source: String, Sendable, Codable { case dwarf, table, override }

    public var goid: Int
    public var gopc: Int
    public var startpc: Int
    /// nil before Go 1.21, which added g.parentGoid.
    public var parentGoid: Int?
    /// sizeof(runtime.g) when known (DWARF, or the table).
    public var gSize: Int?
    public var source: Source

    public init(goid: Int, gopc: Int, startpc: Int, parentGoid: Int?, gSize: Int? = nil, source: Source) {
        self.goid = goid; self.gopc = gopc; self.startpc = startpc; self.parentGoid = parentGoid
        self.gSize = gSize; self.source = source
    }

    /// A size every runtime.g reaches: sizeof(g) when known, else the end of its last known
    /// field. Each g is a heap object of its own, so g addresses divided by this are unique
    /// and neighbouring g structs get neighbouring numbers: gmon's keys for live goroutines.
    public var gSizeFloor: Int {
        let end = [goid, gopc, startpc, parentGoid ?? 0].max()! + 8
        return max(8, min(gSize ?? end, 1 << 20))
    }

    /// Offsets per release, read from the DWARF of real binaries built by each
    /// toolchain of the test matrix (the tests re-check every one against DWARF).
    /// 1.17, 1.18 and 1.20 have no toolchain here: their rows were computed from
    /// their runtime2.go with Go's amd64 layout rules, which reproduce the DWARF
    /// offsets of 1.19 and 1.21; their `g` has the same fields as 1.19's up to startpc.
    /// gSize is sizeof(runtime.g) from the same DWARF; nil where no toolchain was at hand.
    static let known: [Int: (goid: Int, gopc: Int, startpc: Int, parentGoid: Int?, gSize: Int?)] = [
        17: (152, 296, 312, nil, nil),
        18: (152, 296, 312, nil, nil),
        19: (152, 296, 312, nil, 392),
        20: (152, 296, 312, nil, nil),
        21: (152, 280, 296, 272, 408),
        22: (152, 280, 296, 272, 424),
        23: (160, 288, 304, 280, 432),
        24: (160, 288, 304, 280, 440),
        25: (152, 280, 296, 272, 440),
        26: (152, 288, 304, 280, 456),
        27: (152, 288, 304, 280, 456),
    ]

    public static func fromTable(release: (major: Int, minor: Int)?) -> RuntimeLayout? {
        guard let r = release, r.major == 1, let k = known[r.minor] else { return nil }
        return RuntimeLayout(goid: k.goid, gopc: k.gopc, startpc: k.startpc, parentGoid: k.parentGoid, gSize: k.gSize, source: .table)
    }

    static func fromDWARF(_ elf: ELFFile) throws -> RuntimeLayout? {
        guard DWARFStructReader.hasDWARF(elf) else { return nil }
        guard let (m, size) = try DWARFStructReader(elf: elf).layout(ofStruct: "runtime.g"),
              let goid = m["goid"], let gopc = m["gopc"], let startpc = m["startpc"] else { return nil }
        return RuntimeLayout(goid: goid, gopc: gopc, startpc: startpc, parentGoid: m["parentGoid"], gSize: size, source: .dwarf)
    }
}
