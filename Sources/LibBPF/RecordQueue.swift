#if canImport(Glibc)
import Glibc
#endif

/// Records copied out of the kernel's rings to wait in gmon's memory, oldest first.
///
/// A burst (tens of thousands of goroutines from new call paths, each symbolized) comes
/// faster than gmon can process it, but not faster than it can copy it: copying frees the
/// rings at once, so they need to hold only what arrives between two copies, not all that
/// arrives while gmon symbolizes. Bounded by `maxBytes`; memory beyond a few MiB is given
/// back once the queue is empty.
public final class RecordQueue {
    private var storage: UnsafeMutableRawPointer?
    private var capacity = 0
    private var head = 0, tail = 0
    public let maxBytes: Int

    public init(maxBytes: Int) { self.maxBytes = maxBytes }
    deinit { storage?.deallocate() }

    public var isEmpty: Bool { head == tail }

    /// Copies a record in; false when it does not fit in `maxBytes`.
    public func append(_ r: UnsafeRawBufferPointer) -> Bool {
        let need = 8 + (r.count + 7) & ~7   // a length word, the record padded to 8 bytes
        if tail + need > capacity {
            if head > 0, let s = storage { memmove(s, s + head, tail - head); tail -= head; head = 0 }
            if tail + need > capacity {
                var c = max(capacity, 1 << 20)
                while c < tail + need { c *= 2 }
                c = min(c, maxBytes)
                guard tail + need <= c else { return false }
                let s = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 8)
                if let old = storage { s.copyMemory(from: old, byteCount: tail); old.deallocate() }
                storage = s; capacity = c
            }
        }
        let p = storage! + tail
        p.storeBytes(of: UInt64(r.count), as: UInt64.self)
        if let b = r.baseAddress { (p + 8).copyMemory(from: b, byteCount: r.count) }
        tail += need
        return true
    }

    /// Hands the oldest record to `body` and removes it; false when there is none.
    @discardableResult
    public func pop(_ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard head < tail, let s = storage else { return false }
        let n = Int(s.load(fromByteOffset: head, as: UInt64.self))
        body(UnsafeRawBufferPointer(start: s + head + 8, count: n))
        head += 8 + (n + 7) & ~7
        if head == tail {
            head = 0; tail = 0
            if capacity > 4 << 20 { storage?.deallocate(); storage = nil; capacity = 0 }
        }
        return true
    }
}
