import CCapstone
import GoBinary
#if canImport(Glibc)
import Glibc
#endif

/// Where gmon puts its two uprobes in a Go executable, and which register
/// holds the `g` there.
///
/// The kernel emulates a probed CALL instead of single-stepping it, which
/// makes a probe on a CALL ~15× cheaper than one on a function's first
/// instruction or a RET. So gmon probes `CALL runtime.runqput` inside
/// `runtime.newproc.func1` (RBX = new g, second argument) and
/// `CALL runtime.mcall` inside `runtime.goexit1` (R14 = exiting g), and
/// falls back to the classic, slower sites only when those calls are absent.
public struct AttachPoint: Sendable, Equatable, Codable {
    public enum Register: String, Sendable, Codable { case rax, rbx, r14 }
    public enum Kind: String, Sendable, Codable {
        /// uprobe on a CALL instruction (emulated by the kernel: cheap).
        case callInstruction = "call"
        /// uprobe on a jump right after a CALL (emulated like a CALL: cheap).
        case branchInstruction = "branch"
        /// uprobe on a function's first instruction (single-stepped).
        case functionEntry = "entry"
        /// uretprobe (return trampoline: the most expensive).
        case functionReturn = "return"
    }

    public var kind: Kind
    /// The function the probe sits in.
    public var function: String
    /// The callee, for `.callInstruction`.
    public var callee: String?
    public var address: UInt64
    public var fileOffset: UInt64
    public var register: Register

    public var isReturnProbe: Bool { kind == .functionReturn }
}

public struct AttachPlan: Sendable, Equatable, Codable {
    public var creation: AttachPoint
    public var exit: AttachPoint
    /// Other ways the runtime creates goroutines: coroutines (iter.Pull, Go 1.23+) and
    /// testing/synctest bubbles (Go 1.25+). The README lists them per release.
    public var otherCreations: [AttachPoint] = []
    /// Other ways goroutines end: a coroutine's end (Go 1.23+) never passes goexit1.
    public var otherExits: [AttachPoint] = []
    /// Sentences for the user when a fallback was taken, naming its cost.
    public var warnings: [String]
}

public enum AttachPointError: Error, CustomStringConvertible {
    case disassembler(String)
    case wrongArchitecture(String)
    public var description: String {
        switch self {
        case .disassembler(let s): return "cannot disassemble the Go runtime: \(s)"
        case .wrongArchitecture(let s): return s
        }
    }
}

public enum AttachPoints {
    /// `classic` forces the sites earlier tools use (uretprobe on newproc1, entry of goexit1), for comparison.
    public static func plan(for exe: GoExecutable, classic: Bool = false) throws -> AttachPlan {
        guard exe.elf.machine == ELFFile.machineX86_64 else {
            let arch = exe.elf.machine == ELFFile.machineAArch64 ? "arm64" : "ELF machine \(exe.elf.machine)"
            throw AttachPointError.wrongArchitecture("the executable is built for \(arch); gmon watches x86-64 programs")
        }
        var warnings: [String] = []
        let creation: AttachPoint
        if !classic, let p = try callSite(in: "runtime.newproc.func1", calling: "runtime.runqput", exe: exe, register: .rbx) {
            creation = p
        } else {
            let f = try exe.functionEntry("runtime.newproc1")
            creation = AttachPoint(kind: .functionReturn, function: "runtime.newproc1", callee: nil,
                                   address: f.entry, fileOffset: try fileOffset(exe, f.entry), register: .rax)
            if !classic { warnings.append("no CALL runtime.runqput in runtime.newproc.func1: watching creations with a uretprobe on runtime.newproc1, which costs about 10 µs per goroutine instead of about 0.3 µs") }
        }
        let exit: AttachPoint
        if !classic, let p = try callSite(in: "runtime.goexit1", calling: "runtime.mcall", exe: exe, register: .r14) {
            exit = p
        } else {
            let f = try exe.functionEntry("runtime.goexit1")
            exit = AttachPoint(kind: .functionEntry, function: "runtime.goexit1", callee: nil,
                               address: f.entry, fileOffset: try fileOffset(exe, f.entry), register: .r14)
            if !classic { warnings.append("no CALL runtime.mcall in runtime.goexit1: watching exits with a uprobe at the entry of runtime.goexit1, which costs about 5 µs per goroutine instead of about 0.3 µs") }
        }
        var plan = AttachPlan(creation: creation, exit: exit, warnings: warnings)
        try addOtherPaths(&plan, exe: exe)
        return plan
    }

    /// Goroutines the runtime makes and ends outside newproc and goexit1, by release:
    /// - coroutines (iter.Pull/Pull2, Go 1.23+): runtime.newcoro.func1 calls newproc1 directly;
    ///   right after that CALL comes CMP writeBarrier / Jcc, and at the Jcc RAX is still the new
    ///   g (no unconditional CALL follows with the g in a register). They end in coroswitch_m,
    ///   which calls gdestroy with the g in RAX, never passing goexit1.
    /// - synctest bubbles (Go 1.25+): runtime.synctestRun.func2 puts the bubble's first goroutine
    ///   on the run queue like newproc.func1 does (CALL runqput, RBX = new g); it ends through goexit1.
    /// A release without these functions simply has no such goroutines.
    static func addOtherPaths(_ plan: inout AttachPlan, exe: GoExecutable) throws {
        if let p = try branchAfterCall(in: "runtime.newcoro.func1", calling: "runtime.newproc1", exe: exe, register: .rax) {
            plan.otherCreations.append(p)
            if let e = try callSite(in: "runtime.coroswitch_m", calling: "runtime.gdestroy", exe: exe, register: .rax) {
                plan.otherExits.append(e)
            } else {
                plan.warnings.append("no CALL runtime.gdestroy in runtime.coroswitch_m: coroutines (iter.Pull) are seen created but not ending")
            }
        } else if (try? exe.functionEntry("runtime.newcoro.func1")) != nil {
            plan.warnings.append("no jump after CALL runtime.newproc1 in runtime.newcoro.func1: coroutines (iter.Pull) are not watched")
        }
        if let p = try callSite(in: "runtime.synctestRun.func2", calling: "runtime.runqput", exe: exe, register: .rbx) {
            plan.otherCreations.append(p)
        }
    }

    /// The first jump after the CALL to `callee` in `function` when only instructions that
    /// leave RAX alone (CMP, TEST, NOP) lie between: there RAX still holds what the callee
    /// returned. A jump is emulated by the kernel like a CALL; the CMP before it would be
    /// single-stepped (~5 µs). Jumps with a 0x66 prefix are left alone (not emulated).
    static func branchAfterCall(in function: String, calling callee: String, exe: GoExecutable, register: AttachPoint.Register) throws -> AttachPoint? {
        guard let f = try? exe.functionEntry(function), let target = try? exe.functionEntry(callee) else { return nil }
        let code = try exe.code(from: f.entry, to: f.end)
        let insns = try instructions(code: Array(code), address: f.entry)
        guard let call = insns.firstIndex(where: { $0.id == X86_INS_CALL.rawValue && $0.target == target.entry }) else { return nil }
        for i in insns[(call + 1)...] {
            if i.isJump {
                guard i.firstByte != 0x66 else { return nil }
                return AttachPoint(kind: .branchInstruction, function: function, callee: callee,
                                   address: i.address, fileOffset: try fileOffset(exe, i.address), register: register)
            }
            guard [X86_INS_CMP.rawValue, X86_INS_TEST.rawValue, X86_INS_NOP.rawValue].contains(i.id) else { return nil }
        }
        return nil
    }

    static func fileOffset(_ exe: GoExecutable, _ address: UInt64) throws -> UInt64 {
        guard let o = exe.elf.fileOffset(ofAddress: address) else {
            throw GoBinaryError.malformed("address 0x\(String(address, radix: 16)) is not backed by the file")
        }
        return UInt64(o)
    }

    /// The first direct CALL to `callee` inside `function`, decoded with Capstone.
    static func callSite(in function: String, calling callee: String, exe: GoExecutable, register: AttachPoint.Register) throws -> AttachPoint? {
        guard let f = try? exe.functionEntry(function), let target = try? exe.functionEntry(callee) else { return nil }
        let code = try exe.code(from: f.entry, to: f.end)
        for call in try directCalls(code: Array(code), address: f.entry) where call.target == target.entry {
            return AttachPoint(kind: .callInstruction, function: function, callee: callee,
                               address: call.address, fileOffset: try fileOffset(exe, call.address), register: register)
        }
        return nil
    }

    /// The globals a function's code addresses RIP-relative, in order of appearance.
    public static func globalsReferenced(code: [UInt8], address: UInt64) throws -> [UInt64] {
        try instructions(code: code, address: address).flatMap(\.ripTargets)
    }

    /// Every `CALL rel32` in the code with its absolute target.
    public static func directCalls(code: [UInt8], address: UInt64) throws -> [(address: UInt64, target: UInt64)] {
        try instructions(code: code, address: address).compactMap { i in
            i.id == X86_INS_CALL.rawValue ? i.target.map { (i.address, $0) } : nil
        }
    }

    struct Instruction {
        let address: UInt64
        let id: UInt32
        let firstByte: UInt8
        /// A CALL's or jump's absolute target (immediate operand).
        let target: UInt64?
        /// A conditional or unconditional jump.
        let isJump: Bool
        /// Addresses of RIP-relative memory operands (globals the instruction reads or writes).
        var ripTargets: [UInt64] = []
    }

    /// The code's instructions, decoded with Capstone.
    static func instructions(code: [UInt8], address: UInt64) throws -> [Instruction] {
        let cs = try Capstone()
        var handle: csh = 0
        guard cs.open(CS_ARCH_X86, CS_MODE_64, &handle) == CS_ERR_OK else {
            throw AttachPointError.disassembler("cs_open failed")
        }
        defer { _ = cs.close(&handle) }
        _ = cs.option(handle, CS_OPT_DETAIL, Int(CS_OPT_ON.rawValue))
        // Keep going past bytes Capstone cannot decode (padding, data in text).
        _ = cs.option(handle, CS_OPT_SKIPDATA, Int(CS_OPT_ON.rawValue))
        var insns: UnsafeMutablePointer<cs_insn>?
        let n = code.withUnsafeBufferPointer { cs.disasm(handle, $0.baseAddress, $0.count, address, 0, &insns) }
        guard let list = insns else { return [] }
        defer { cs.free(list, n) }
        var out: [Instruction] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            let insn = list[i]
            guard let detail = insn.detail else { continue }
            let x86 = detail.pointee.x86
            let target = x86.op_count == 1 && x86.operands.0.type == X86_OP_IMM ? UInt64(bitPattern: x86.operands.0.imm) : nil
            let groups = withUnsafeBytes(of: detail.pointee.groups) { Array($0.prefix(Int(detail.pointee.groups_count))) }
            var rip: [UInt64] = []
            withUnsafeBytes(of: x86.operands) { ops in
                let all = ops.bindMemory(to: cs_x86_op.self)
                for k in 0..<min(Int(x86.op_count), all.count) where all[k].type == X86_OP_MEM && all[k].mem.base == X86_REG_RIP {
                    rip.append(insn.address &+ UInt64(insn.size) &+ UInt64(bitPattern: all[k].mem.disp))
                }
            }
            out.append(Instruction(address: insn.address, id: insn.id, firstByte: insn.bytes.0, target: target,
                                   isJump: groups.contains(UInt8(X86_GRP_JUMP.rawValue)), ripTargets: rip))
        }
        return out
    }
}

/// Capstone, loaded only while code is disassembled (planning the probes, and once per
/// compiler wrapper without inline records when a new site is resolved): linked for
/// good, its tables stayed mapped for gmon's whole life (4.5 MB of RSS measured).
final class Capstone {
    typealias Open = @convention(c) (cs_arch, cs_mode, UnsafeMutablePointer<csh>?) -> cs_err
    typealias Option = @convention(c) (csh, cs_opt_type, Int) -> cs_err
    typealias Disasm = @convention(c) (csh, UnsafePointer<UInt8>?, Int, UInt64, Int, UnsafeMutablePointer<UnsafeMutablePointer<cs_insn>?>?) -> Int
    typealias Free = @convention(c) (UnsafeMutablePointer<cs_insn>?, Int) -> Void
    typealias Close = @convention(c) (UnsafeMutablePointer<csh>?) -> cs_err

    private let library: UnsafeMutableRawPointer
    let open: Open, option: Option, disasm: Disasm, free: Free, close: Close

    init() throws {
        #if GMON_STATIC_CAPSTONE
        // make dist: Capstone is linked in (a self-contained binary needs no libcapstone).
        library = UnsafeMutableRawPointer(bitPattern: 1)!
        open = { cs_open($0, $1, $2) }
        option = { cs_option($0, $1, $2) }
        disasm = { cs_disasm($0, $1, $2, $3, $4, $5) }
        free = { cs_free($0, $1) }
        close = { cs_close($0) }
        #else
        // The release whose headers gmon was built with: cs_insn's layout must match.
        let name = "libcapstone.so.\(CS_API_MAJOR)"
        guard let lib = dlopen(name, RTLD_NOW | RTLD_LOCAL) else {
            throw AttachPointError.disassembler("cannot load \(name) (\(String(cString: dlerror()))): install libcapstone4")
        }
        func symbol<T>(_ s: String, _: T.Type) throws -> T {
            guard let p = dlsym(lib, s) else { throw AttachPointError.disassembler("\(name) has no \(s)") }
            return unsafeBitCast(p, to: T.self)
        }
        do {
            open = try symbol("cs_open", Open.self)
            option = try symbol("cs_option", Option.self)
            disasm = try symbol("cs_disasm", Disasm.self)
            free = try symbol("cs_free", Free.self)
            close = try symbol("cs_close", Close.self)
        } catch {
            dlclose(lib)
            throw error
        }
        library = lib
        #endif
    }

    deinit {
        #if !GMON_STATIC_CAPSTONE
        dlclose(library)
        #endif
    }
}
