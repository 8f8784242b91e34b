import CGmonEvents
import Foundation
import LibBPF

/// gmon's BPF object (bpf/gmon.bpf.c, compiled at build time and embedded), typed: its
/// programs and maps by name once, checked against the object by GmonProbesTests, and
/// its configuration as the C structs of gmon_events.h.
public final class GmonProbesObject {
    /// The ELF object libbpf loads.
    public static let image: [UInt8] = Array(Data(base64Encoded: embeddedBPFObjectBase64)!)

    public enum Program: String, CaseIterable, Sendable {
        case createAtCallRBX = "gmon_create_rbx"
        case createAtReturnRAX = "gmon_create_rax"
        case exit = "gmon_exit"
        case exitRAX = "gmon_exit_rax"
        case processExit = "gmon_process_exit"
        case processExec = "gmon_process_exec"
    }

    public enum Map: String, CaseIterable, Sendable {
        case rings = "gmon_rings"
        case counters = "gmon_counters"
        case executables = "gmon_executables"
        case tgids = "gmon_tgids"
        case lostCreations = "gmon_lost_creations"
        case scratch = "gmon_scratch"
        case cpuState = "gmon_cpu_state"
        case processExits = "gmon_process_exits"
        /// `const volatile struct gmon_settings gmon_settings`.
        case settings = ".rodata"
        /// `gmon_lost_pending`.
        case globals = ".bss"
    }

    public let object: BPFObject

    public init() throws { object = try BPFObject(image: Self.image, name: "gmon") }

    /// Before `load()`.
    public func setSettings(_ s: gmon_settings) throws {
        var s = s
        try withUnsafeBytes(of: &s) { try object.setInitialValue(map: Map.settings.rawValue, $0) }
    }

    /// Before `load()`: one ring per CPU.
    public func setRingCount(_ n: Int) throws { try object.setMaxEntries(map: Map.rings.rawValue, UInt32(n)) }

    /// Before `load()`: only the programs an attach plan uses are loaded.
    public func setAutoload(_ used: Set<Program>) throws {
        for p in Program.allCases { try object.setAutoload(p.rawValue, used.contains(p)) }
    }

    public func load() throws { try object.load() }

    public func program(_ p: Program) throws -> BPFProgram { try object.program(p.rawValue) }
    public func map(_ m: Map) throws -> BPFMap { try object.map(m.rawValue) }

    /// After `load()`, before attaching the executable's probes.
    public func setExecutable(_ number: UInt32, _ c: gmon_exe_config) throws {
        var c = c
        try withUnsafeBytes(of: &c) { try map(.executables).update(key: number, value: $0) }
    }
}
