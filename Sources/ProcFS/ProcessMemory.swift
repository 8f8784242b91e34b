import CProcFS
#if canImport(Glibc)
import Glibc
#endif

/// Another process's memory, read only through /proc/PID/mem: no ptrace stop, no write (the
/// file is opened read-only), and a read of an unmapped address is an error (nil), never a
/// fault in gmon. The process keeps running: what is read may change between two reads,
/// so callers validate what they read.
public final class ProcessMemory: @unchecked Sendable {
    public let pid: Int32
    private let fd: Int32
    /// The most one read may ask for.
    public static let maxRead = 64 << 20

    /// Why a process's memory cannot be read at all.
    public enum Failure: Error, CustomStringConvertible {
        case gone(Int32)
        case notPermitted(Int32)
        case other(Int32, String)
        public var description: String {
            switch self {
            case .gone(let p): return "no process with pid \(p): is it still running?"
            case .notPermitted(let p):
                return "not allowed to read the memory of process \(p): run gmon as root (or with CAP_SYS_PTRACE)"
            case .other(let p, let why): return "cannot read the memory of process \(p): \(why)"
            }
        }
    }

    public init(pid: Int32) throws {
        self.pid = pid
        let f = open("/proc/\(pid)/mem", O_RDONLY | O_CLOEXEC)
        guard f >= 0 else {
            switch errno {
            case ENOENT, ESRCH: throw Failure.gone(pid)
            case EPERM, EACCES: throw Failure.notPermitted(pid)
            default: throw Failure.other(pid, String(cString: strerror(errno)))
            }
        }
        fd = f
    }

    deinit { close(fd) }

    /// Fills `buffer` from `address`; false when any byte of the range cannot be read.
    public func read(_ address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        let count = buffer.count
        guard count > 0 else { return true }
        // pread takes a signed offset: addresses at or above 2^63 are not user memory.
        guard count <= Self.maxRead, address != 0, address < 1 << 63, address &+ UInt64(count) < 1 << 63 else { return false }
        var done = 0
        while done < count {
            let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(address) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    /// Many ranges in few system calls (process_vm_readv, 1024 ranges a call): range k goes to
    /// `buffer` at `k * stride`, `lengths[k]` bytes (at most `stride`). Returns per range
    /// whether all of it was read; a range that cannot be read is read again on its own (a
    /// failed range ends a process_vm_readv call).
    public func read(addresses: [UInt64], lengths: [Int], stride: Int, into buffer: UnsafeMutableRawBufferPointer) -> [Bool] {
        let n = addresses.count
        guard n > 0, lengths.count == n, stride > 0, buffer.count >= n * stride else { return Array(repeating: false, count: n) }
        var ok = Array(repeating: false, count: n)
        var local = [gmon_iovec](repeating: gmon_iovec(), count: 1024), remote = [gmon_iovec](repeating: gmon_iovec(), count: 1024)
        var k = 0
        while k < n {
            let batch = min(1024, n - k)
            var expected = 0
            for b in 0..<batch {
                let len = min(lengths[k + b], stride)
                local[b] = gmon_iovec(base: buffer.baseAddress! + (k + b) * stride, length: UInt(len))
                remote[b] = gmon_iovec(base: UnsafeMutableRawPointer(bitPattern: UInt(addresses[k + b])), length: UInt(len))
                expected += len
            }
            let got = process_vm_readv(pid, local, UInt(batch), remote, UInt(batch), 0)
            // Whole ranges read before the first that failed; that one and the rest one by one.
            var covered = max(got, 0), b = 0
            while b < batch, covered >= Int(local[b].length) {
                ok[k + b] = true
                covered -= Int(local[b].length)
                b += 1
            }
            if got != expected {
                while b < batch {
                    ok[k + b] = read(addresses[k + b], into: UnsafeMutableRawBufferPointer(start: local[b].base, count: Int(local[b].length)))
                    b += 1
                }
            }
            k += batch
        }
        return ok
    }

    /// `count` bytes at `address`, or nil.
    public func bytes(_ address: UInt64, _ count: Int) -> [UInt8]? {
        guard count >= 0, count <= Self.maxRead else { return nil }
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBytes { read(address, into: $0) }
        return ok ? out : nil
    }

    public func u64(_ address: UInt64) -> UInt64? {
        var v: UInt64 = 0
        let ok = withUnsafeMutableBytes(of: &v) { read(address, into: $0) }
        return ok ? v : nil
    }
}
