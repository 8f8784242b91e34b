/// Byte offsets of the `runtime.g` fields gmon's BPF programs read.
public struct RuntimeLayout: Sendable, Equatable, Codable {
    public enum Source: String, Sendable, Codable { case dwarf, table, override }

    public var goid: Int
    public var gopc: Int
    public var startpc: Int
    /// nil before Go 1.21, which added g.parentGoid.
    public var parentGoid: Int?
    public var source: Source

    public init(goid: Int, gopc: Int, startpc: Int, parentGoid: Int?, source: Source) {
        self.goid = goid; self.gopc = gopc; self.startpc = startpc; self.parentGoid = parentGoid; self.source = source
    }

    /// Offsets per release, read from the DWARF of real binaries (the tests
    /// re-check every release of the matrix against DWARF).
    /// Offsets per release, read from the DWARF of real binaries built by each
    /// toolchain of the test matrix (the tests re-check every one against DWARF).
    /// 1.17, 1.18 and 1.20 have no toolchain here: their rows were computed from
    /// their runtime2.go with Go's amd64 layout rules, which reproduce the DWARF
    /// offsets of 1.19 and 1.21; their `g` has the same fields as 1.19's up to startpc.
    static let known: [Int: (goid: Int, gopc: Int, startpc: Int, parentGoid: Int?)] = [
        17: (152, 296, 312, nil),
        18: (152, 296, 312, nil),
        19: (152, 296, 312, nil),
        20: (152, 296, 312, nil),
        21: (152, 280, 296, 272),
        22: (152, 280, 296, 272),
        23: (160, 288, 304, 280),
        24: (160, 288, 304, 280),
        25: (152, 280, 296, 272),
        26: (152, 288, 304, 280),
        27: (152, 288, 304, 280),
    ]

    public static func fromTable(release: (major: Int, minor: Int)?) -> RuntimeLayout? {
        guard let r = release, r.major == 1, let k = known[r.minor] else { return nil }
        return RuntimeLayout(goid: k.goid, gopc: k.gopc, startpc: k.startpc, parentGoid: k.parentGoid, source: .table)
    }

    static func fromDWARF(_ elf: ELFFile) throws -> RuntimeLayout? {
        guard DWARFStructReader.hasDWARF(elf) else { return nil }
        guard let m = try DWARFStructReader(elf: elf).members(ofStruct: "runtime.g"),
              let goid = m["goid"], let gopc = m["gopc"], let startpc = m["startpc"] else { return nil }
        return RuntimeLayout(goid: goid, gopc: gopc, startpc: startpc, parentGoid: m["parentGoid"], source: .dwarf)
    }
}
