import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// What gmon needs from the running kernel, checked before anything is loaded so
/// that a missing feature is named instead of surfacing as a libbpf errno.
/// Kernel BTF (/sys/kernel/btf/vmlinux) is not among them: gmon's BPF program reads
/// no kernel structure (no CO-RE), so it runs on kernels built without BTF.
public enum KernelSupport {
    public struct Missing: Error, CustomStringConvertible, Sendable {
        public let feature: String
        public let description: String
    }

    /// Where libbpf finds the uprobe PMU's type for perf_event_open.
    public static let uprobePMU = "/sys/bus/event_source/devices/uprobe/type"

    /// Throws `Missing` for the first absent feature: the bpf() system call, uprobe
    /// BPF programs, attach cookies, the uprobe PMU (gmon never falls back to tracefs), the
    /// ring buffer.
    public static func check() throws {
        _ = LibbpfLog.shared   // route libbpf's own messages away from stderr
        // The system call itself: libbpf's feature probes below answer "unsupported" for
        // any failure, so make what gmon makes anyway, a small array map (CAP_BPF is enough:
        // listing program ids would need CAP_SYS_ADMIN). EINVAL is an answer too: the call
        // exists (a kernel refusing the map is named by the probes below).
        let rc = bpf_map_create(BPF_MAP_TYPE_ARRAY, nil, 4, 4, 1, nil)
        if rc >= 0 { close(rc) }
        if rc < 0 && -rc != EINVAL {
            switch -rc {
            case ENOSYS:
                throw Missing(feature: "bpf", description: "this kernel has no BPF system call (built without CONFIG_BPF_SYSCALL): gmon needs Linux 5.15 or later with BPF enabled")
            case EPERM, EACCES:
                throw Missing(feature: "bpf", description: "the kernel refused the bpf() system call (\(String(cString: strerror(-rc)))) although gmon has the privileges: kernel lockdown, a seccomp filter or a container policy blocks BPF; run gmon on the host or allow bpf() for it")
            default:
                throw Missing(feature: "bpf", description: "the kernel's bpf() system call failed (\(String(cString: strerror(-rc)))): gmon cannot load BPF programs here")
            }
        }
        // Uprobe programs are BPF_PROG_TYPE_KPROBE.
        let prog = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_KPROBE, nil)
        _ = LibbpfLog.shared.take()
        if prog == 0 {
            throw Missing(feature: "uprobe programs", description: "this kernel cannot run BPF programs on probes (built without CONFIG_BPF_EVENTS): gmon needs it for its uprobes")
        }
        // One program serves every executable, each probe carrying its executable's number
        // (the attach cookie, Linux 5.15).
        let cookie = libbpf_probe_bpf_helper(BPF_PROG_TYPE_KPROBE, BPF_FUNC_get_attach_cookie, nil)
        _ = LibbpfLog.shared.take()
        if cookie == 0 {
            throw Missing(feature: "attach cookies", description: "this kernel cannot give a probe's BPF program its attach cookie (bpf_get_attach_cookie came with Linux 5.15): gmon needs Linux 5.15 or later")
        }
        if access(uprobePMU, R_OK) != 0 {
            throw Missing(feature: "uprobes", description: "this kernel has no uprobe event source (\(uprobePMU) is missing: built without CONFIG_UPROBE_EVENTS, or /sys is not mounted): gmon attaches its probes through it")
        }
        let ring = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nil)
        _ = LibbpfLog.shared.take()
        if ring <= 0 {
            throw Missing(feature: "ring buffer", description: "this kernel has no BPF ring buffer (it came with Linux 5.8): gmon sends its events through one")
        }
    }
}
