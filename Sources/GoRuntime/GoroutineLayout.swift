import GoBinary

/// Where runtime.g keeps what a goroutine snapshot reads (byte offsets in the g), from
/// DWARF when the binary has it, else from the per-release table below.
public struct GoroutineLayout: Sendable, Equatable, Codable {
    public var stackLo = 0, stackHi = 8
    /// g.sched.{sp, pc}: where a goroutine that is not running stopped (its stack is walked
    /// by frame sizes from there, so bp is not read).
    public var schedSP: Int, schedPC: Int
    /// g.syscallsp, g.syscallpc: where a goroutine in a system call entered it.
    public var syscallSP: Int, syscallPC: Int
    public var atomicStatus: Int
    public var goid: Int
    /// g.waitsince (nanotime when it started waiting, set lazily: 0 when unknown).
    public var waitSince: Int
    /// g.waitreason (one byte).
    public var waitReason: Int
    public var lockedM: Int
    public var gopc: Int
    public var startpc: Int
    /// nil before Go 1.21.
    public var parentGoid: Int?
    public var gSize: Int
    public var source: RuntimeLayout.Source

    /// The end of the last field read: a g is read in one piece of this many bytes.
    public var readSize: Int {
        max(gSize, [stackHi, schedSP, schedPC, syscallSP, syscallPC, atomicStatus, goid, waitSince, waitReason, lockedM,
                    gopc, startpc, parentGoid ?? 0].max()! + 8)
    }

    /// Per minor release (Go 1.x). 1.19 and 1.21–1.27 are the DWARF of real binaries built by
    /// each toolchain of the test matrix (the tests re-check every row against DWARF); 1.17,
    /// 1.18 and 1.20 have no toolchain here and were computed from their runtime2.go with Go's
    /// amd64 layout rules, which reproduce the DWARF rows of 1.19 and 1.21.
    static let known: [Int: GoroutineLayout] = {
        func row(goid: Int, gopc: Int, startpc: Int, parentGoid: Int?, gSize: Int, status: Int, lockedM: Int, newGobuf: Bool) -> GoroutineLayout {
            // Go 1.25 dropped gobuf.ret (8 bytes): the syscall fields moved up by 8.
            GoroutineLayout(schedSP: 56, schedPC: 64, syscallSP: newGobuf ? 104 : 112,
                            syscallPC: newGobuf ? 112 : 120, atomicStatus: status, goid: goid, waitSince: goid + 16, waitReason: goid + 24,
                            lockedM: lockedM, gopc: gopc, startpc: startpc, parentGoid: parentGoid, gSize: gSize, source: .table)
        }
        return [
            17: row(goid: 152, gopc: 296, startpc: 312, parentGoid: nil, gSize: 392, status: 144, lockedM: 232, newGobuf: false),
            18: row(goid: 152, gopc: 296, startpc: 312, parentGoid: nil, gSize: 392, status: 144, lockedM: 232, newGobuf: false),
            19: row(goid: 152, gopc: 296, startpc: 312, parentGoid: nil, gSize: 392, status: 144, lockedM: 232, newGobuf: false),
            20: row(goid: 152, gopc: 296, startpc: 312, parentGoid: nil, gSize: 392, status: 144, lockedM: 232, newGobuf: false),
            21: row(goid: 152, gopc: 280, startpc: 296, parentGoid: 272, gSize: 408, status: 144, lockedM: 208, newGobuf: false),
            22: row(goid: 152, gopc: 280, startpc: 296, parentGoid: 272, gSize: 424, status: 144, lockedM: 208, newGobuf: false),
            23: row(goid: 160, gopc: 288, startpc: 304, parentGoid: 280, gSize: 432, status: 152, lockedM: 216, newGobuf: false),
            24: row(goid: 160, gopc: 288, startpc: 304, parentGoid: 280, gSize: 440, status: 152, lockedM: 216, newGobuf: false),
            25: row(goid: 152, gopc: 280, startpc: 296, parentGoid: 272, gSize: 440, status: 144, lockedM: 208, newGobuf: true),
            26: row(goid: 152, gopc: 288, startpc: 304, parentGoid: 280, gSize: 456, status: 144, lockedM: 208, newGobuf: true),
            27: row(goid: 152, gopc: 288, startpc: 304, parentGoid: 280, gSize: 456, status: 144, lockedM: 208, newGobuf: true),
        ]
    }()

    /// The releases whose row (sizeof(g) included) was read from DWARF, not computed.
    static let sizeFromDWARF: Set<Int> = [19, 21, 22, 23, 24, 25, 26, 27]

    public static func fromTable(release: (major: Int, minor: Int)?) -> GoroutineLayout? {
        guard let r = release, r.major == 1 else { return nil }
        return known[r.minor]
    }

    static func fromDWARF(_ elf: ELFFile) throws -> GoroutineLayout? {
        guard DWARFStructReader.hasDWARF(elf) else { return nil }
        let d = try DWARFStructReader(elf: elf)
        guard let (g, size) = try d.layout(ofStruct: "runtime.g"), let (buf, _) = try d.layout(ofStruct: "runtime.gobuf"),
              let sched = g["sched"], let sp = buf["sp"], let pc = buf["pc"],
              let stack = g["stack"], let syscallSP = g["syscallsp"], let syscallPC = g["syscallpc"],
              let status = g["atomicstatus"], let goid = g["goid"], let since = g["waitsince"], let reason = g["waitreason"],
              let lockedM = g["lockedm"], let gopc = g["gopc"], let startpc = g["startpc"], let size else { return nil }
        return GoroutineLayout(stackLo: stack, stackHi: stack + 8, schedSP: sched + sp, schedPC: sched + pc,
                               syscallSP: syscallSP, syscallPC: syscallPC, atomicStatus: status, goid: goid, waitSince: since,
                               waitReason: reason, lockedM: lockedM, gopc: gopc, startpc: startpc, parentGoid: g["parentGoid"],
                               gSize: size, source: .dwarf)
    }
}

extension GoExecutable {
    /// runtime.g's layout for snapshots: DWARF when present, else the per-release table.
    public func goroutineLayout() throws -> GoroutineLayout {
        if let l = try? GoroutineLayout.fromDWARF(elf) { return l }
        if let l = GoroutineLayout.fromTable(release: buildInfo.release) { return l }
        throw GoBinaryError.unknownRuntimeLayout(goVersion: goVersion)
    }
}
