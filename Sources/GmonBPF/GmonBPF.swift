import CGmonEvents
import Foundation

/// gmon's BPF program (bpf/gmon.bpf.c), compiled at build time and embedded.
public enum GmonBPF {
    /// The ELF object libbpf loads.
    public static let object: [UInt8] = Array(Data(base64Encoded: embeddedBPFObjectBase64)!)

    public enum ProgramName {
        public static let createAtCallRBX = "gmon_create_rbx"
        public static let createAtReturnRAX = "gmon_create_rax"
        public static let exit = "gmon_exit"
        public static let exitRAX = "gmon_exit_rax"
        public static let processExit = "gmon_process_exit"
        public static let processExec = "gmon_process_exec"
        public static let countCreate = "gmon_count_create"
        public static let countExit = "gmon_count_exit"
        public static let deliver = "gmon_deliver"
    }

    public enum MapName {
        public static let rings = "gmon_rings"
        public static let counters = "gmon_counters"
        public static let config = ".rodata"
    }
}
