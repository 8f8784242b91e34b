import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// A libbpf failure, as a sentence: what failed, what errno means, what to do.
public struct BPFError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Int32
    public let libbpfLog: String

    public var description: String {
        var s = "\(operation) failed: \(String(cString: strerror(errno)))"
        switch errno {
        case EACCES where operation.hasPrefix("loading") && geteuid() == 0:
            // Privileges were checked before: this is the verifier refusing a program.
            s += "; the kernel's BPF verifier refused gmon's program on this kernel (\(kernelRelease())): please report it with the lines below"
        case EPERM, EACCES:
            s += "; gmon needs root or CAP_BPF and CAP_PERFMON (run it with sudo)"
        case ENOENT:
            s += "; the file or kernel feature does not exist"
        case EINVAL where operation.contains("uprobe"):
            s += "; the kernel refused the probe address (is the executable's file the one that was inspected?)"
        case ENOSYS, EOPNOTSUPP:
            s += "; this kernel lacks a BPF feature gmon needs (uprobes, BPF on probes, the ring buffer: Linux 5.8 or later)"
        default: break
        }
        if !libbpfLog.isEmpty { s += "\n" + libbpfLog }
        return s
    }
}

func kernelRelease() -> String {
    var u = utsname()
    uname(&u)
    return withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

/// libbpf prints through one global callback; keep the tail of its output for errors.
final class LibbpfLog: @unchecked Sendable {
    static let shared = LibbpfLog()
    private var lock = pthread_mutex_t()
    private var lines: [String] = []
    init() {
        pthread_mutex_init(&lock, nil)
        libbpf_set_print { level, format, args in
            guard let format, let args, level != LIBBPF_DEBUG else { return 0 }
            // vasprintf, not a fixed buffer: a verifier log arrives as one message of up
            // to megabytes, and its reason is at the end.
            var out: UnsafeMutablePointer<CChar>?
            guard vasprintf(&out, format, args) >= 0, let out else { return 0 }
            LibbpfLog.shared.append(String(cString: out))
            free(out)
            return 0
        }
    }
    func append(_ s: String) {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        lines.append(contentsOf: s.split(separator: "\n", omittingEmptySubsequences: true).suffix(40).map(String.init))
        if lines.count > 40 { lines.removeFirst(lines.count - 40) }
    }
    func take() -> String {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        defer { lines.removeAll() }
        // Verifier logs are long; the last lines say why.
        return lines.suffix(16).joined(separator: "\n")
    }
}

func fail(_ op: String, _ code: Int32 = errno) -> BPFError {
    BPFError(operation: op, errno: code < 0 ? -code : code, libbpfLog: LibbpfLog.shared.take())
}

/// An opened (and later loaded) BPF object.
public final class BPFObject: @unchecked Sendable {
    let obj: OpaquePointer
    private let image: UnsafeMutableRawBufferPointer

    /// Opens an object from memory. libbpf keeps pointers into the image, so it is copied and owned here.
    public init(image bytes: [UInt8], name: String) throws {
        _ = LibbpfLog.shared
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        buf.copyBytes(from: bytes)
        image = buf
        var opts = bpf_object_open_opts()
        opts.sz = MemoryLayout<bpf_object_open_opts>.size
        let o: OpaquePointer? = name.withCString { n in
            opts.object_name = n
            return bpf_object__open_mem(buf.baseAddress, buf.count, &opts)
        }
        guard let o else { buf.deallocate(); throw fail("opening the BPF object") }
        obj = o
    }

    deinit {
        bpf_object__close(obj)
        image.deallocate()
    }

    /// Sets the initial contents of a global-data map (`.rodata`: the object's `const volatile`
    /// globals) before `load()`. libbpf finds such a map by its section name, as skeletons do.
    public func setInitialValue(map name: String, _ bytes: UnsafeRawBufferPointer) throws {
        guard let m = bpf_object__find_map_by_name(obj, name) else { throw fail("finding BPF map \(name)", ENOENT) }
        let size = bpf_map__value_size(m)
        guard Int(size) == bytes.count else { throw fail("setting BPF map \(name): \(bytes.count) bytes given, the object's has \(size)", EINVAL) }
        let rc = bpf_map__set_initial_value(m, bytes.baseAddress, bytes.count)
        if rc != 0 { throw fail("setting the initial value of BPF map \(name)", rc) }
    }

    /// The names of the object's programs, in the object's order.
    public var programNames: [String] {
        var names: [String] = []
        var p = bpf_object__next_program(obj, nil)
        while let prog = p { names.append(String(cString: bpf_program__name(prog))); p = bpf_object__next_program(obj, prog) }
        return names
    }

    /// The names of the object's maps (global-data maps by their section name: ".rodata").
    public var mapNames: [String] {
        var names: [String] = []
        var m = bpf_object__next_map(obj, nil)
        while let map = m {
            let n = String(cString: bpf_map__name(map))
            // libbpf names global-data maps "<object prefix>.rodata"; they are found by the section name.
            names.append(n.firstIndex(of: ".").map { String(n[$0...]) } ?? n)
            m = bpf_object__next_map(obj, map)
        }
        return names
    }

    /// Only programs with autoload on are loaded; gmon loads the ones its attach plan uses.
    public func setAutoload(_ program: String, _ on: Bool) throws {
        guard let p = bpf_object__find_program_by_name(obj, program) else { throw fail("finding BPF program \(program)", ENOENT) }
        bpf_program__set_autoload(p, on)
    }

    /// Sets a map's size before load (for a ring buffer: its bytes, a power of two ≥ the page size).
    public func setMaxEntries(map name: String, _ entries: UInt32) throws {
        guard let m = bpf_object__find_map_by_name(obj, name) else { throw fail("finding BPF map \(name)", ENOENT) }
        let rc = bpf_map__set_max_entries(m, entries)
        if rc != 0 { throw fail("sizing BPF map \(name)", rc) }
    }

    public func load() throws {
        let rc = bpf_object__load(obj)
        if rc != 0 { throw fail("loading the BPF programs into the kernel", rc) }
    }

    public func program(_ name: String) throws -> BPFProgram {
        guard let p = bpf_object__find_program_by_name(obj, name) else { throw fail("finding BPF program \(name)", ENOENT) }
        return BPFProgram(prog: p, name: name, owner: self)
    }

    public func map(_ name: String) throws -> BPFMap {
        guard let m = bpf_object__find_map_by_name(obj, name) else { throw fail("finding BPF map \(name)", ENOENT) }
        return BPFMap(fd: bpf_map__fd(m), name: name, owner: self)
    }
}

public struct BPFProgram {
    let prog: OpaquePointer
    public let name: String
    let owner: BPFObject

    /// Attaches as a uprobe (or uretprobe) at a file offset of `binary`; `pid` nil means every process.
    /// libbpf uses the perf_event uprobe PMU and a BPF link: the probe lives exactly as long as the link's FD.
    /// `cookie`: what the program reads with bpf_get_attach_cookie (which executable it is on).
    public func attachUprobe(binary: String, fileOffset: UInt64, pid: Int32?, returnProbe: Bool, cookie: UInt64 = 0) throws -> BPFLink {
        var opts = bpf_uprobe_opts()
        opts.sz = MemoryLayout<bpf_uprobe_opts>.size
        opts.retprobe = returnProbe
        opts.bpf_cookie = cookie
        let l = bpf_program__attach_uprobe_opts(prog, pid ?? -1, binary, Int(fileOffset), &opts)
        guard let l else {
            throw fail("attaching the \(returnProbe ? "uretprobe" : "uprobe") \(name) to \(binary) at file offset 0x\(String(fileOffset, radix: 16))")
        }
        return BPFLink(link: l, owner: owner)
    }

    public func attachRawTracepoint(_ tracepoint: String) throws -> BPFLink {
        guard let l = bpf_program__attach_raw_tracepoint(prog, tracepoint) else {
            throw fail("attaching \(name) to the raw tracepoint \(tracepoint)")
        }
        return BPFLink(link: l, owner: owner)
    }
}

/// An attached program. Destroying it (or the process dying) detaches it.
public final class BPFLink: @unchecked Sendable {
    private var link: OpaquePointer?
    let owner: BPFObject
    init(link: OpaquePointer, owner: BPFObject) { self.link = link; self.owner = owner }
    public func destroy() {
        if let l = link { bpf_link__destroy(l); link = nil }
    }
    deinit { destroy() }
}

public struct BPFMap: @unchecked Sendable {
    public let fd: Int32
    public let name: String
    let owner: BPFObject

    /// Writes one slot of an array (or hash) map.
    public func update(key: UInt32, value: UnsafeRawBufferPointer) throws {
        var k = key
        let rc = bpf_map_update_elem(fd, &k, value.baseAddress, 0)
        if rc != 0 { throw fail("writing BPF map \(name)", rc) }
    }

    /// Sum over CPUs of a per-CPU u64 array slot.
    public func perCPUSum(index: UInt32) throws -> UInt64 {
        let n = Int(libbpf_num_possible_cpus())
        guard n > 0 else { throw fail("counting CPUs", -n < 0 ? EINVAL : Int32(-n)) }
        var values = [UInt64](repeating: 0, count: n)
        var key = index
        let rc = bpf_map_lookup_elem(fd, &key, &values)
        if rc != 0 { throw fail("reading BPF map \(name)", rc) }
        return values.reduce(0, &+)
    }
}

