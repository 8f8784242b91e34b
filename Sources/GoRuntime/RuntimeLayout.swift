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

    /// The per-release table's row (GoroutineLayout holds the one table). sizeof(g) only
    /// where DWARF of a real binary gave it: a computed size too large would make
    /// neighbouring g's share keys (gSizeFloor).
    public static func fromTable(release: (major: Int, minor: Int)?) -> RuntimeLayout? {
        guard let g = GoroutineLayout.fromTable(release: release), let minor = release?.minor else { return nil }
        return RuntimeLayout(goid: g.goid, gopc: g.gopc, startpc: g.startpc, parentGoid: g.parentGoid,
                             gSize: GoroutineLayout.sizeFromDWARF.contains(minor) ? g.gSize : nil, source: .table)
    }

    static func fromDWARF(_ elf: ELFFile) throws -> RuntimeLayout? {
        guard DWARFStructReader.hasDWARF(elf) else { return nil }
        guard let (m, size) = try DWARFStructReader(elf: elf).layout(ofStruct: "runtime.g"),
              let goid = m["goid"], let gopc = m["gopc"], let startpc = m["startpc"] else { return nil }
        return RuntimeLayout(goid: goid, gopc: gopc, startpc: startpc, parentGoid: m["parentGoid"], gSize: size, source: .dwarf)
    }
}
