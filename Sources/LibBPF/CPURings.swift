import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// A BPF ring buffer's memory as the kernel maps it: the consumer position (gmon's to
/// write), the producer position, and the data pages mapped twice in a row, so a record
/// that wraps around the end reads as one piece.
struct RingMemory {
    let consumerPos: UnsafeMutablePointer<UInt64>
    let producerPos: UnsafePointer<UInt64>
    let data: UnsafeRawPointer
    let mask: UInt64

    static let headerSize: UInt64 = 8
    static let busyBit: UInt32 = 1 << 31
    static let discardBit: UInt32 = 1 << 30

    /// A committed record's bytes and the position after it; nil when the ring holds
    /// nothing committed before `end` (empty, or its oldest record still being written).
    @inline(__always)
    func record(at position: inout UInt64, end: UInt64) -> (UnsafeRawBufferPointer, next: UInt64)? {
        while position < end {
            let header = data + Int(position & mask)
            let len = gmon_load_acquire_u32(header.assumingMemoryBound(to: UInt32.self))
            if len & Self.busyBit != 0 { return nil }
            let size = UInt64(len & ~(Self.busyBit | Self.discardBit))
            let next = position + ((size + Self.headerSize + 7) & ~7)
            if len & Self.discardBit != 0 { position = next; continue }
            return (UnsafeRawBufferPointer(start: header + Int(Self.headerSize), count: Int(size)), next)
        }
        return nil
    }
}

/// Reads several rings as one stream in timestamp order: records from different rings
/// (one per CPU) are merged by the u64 timestamp each carries at `timestampOffset`.
///
/// Only records stamped before `limit` are handed out, and `limit` must be a
/// CLOCK_MONOTONIC time taken before the drain starts: an event that happened before
/// another (a goroutine's creation before its exit, an exit before its g's reuse) was
/// committed before the later one was stamped, so when the later one is stamped before
/// `limit` the earlier one is already in its ring when the drain looks. Later records
/// stay in their rings for the next drain.
struct RingMerge {
    var rings: [RingMemory]
    let timestampOffset: Int
    /// How full the fullest ring is (0 to 1): bytes written and not yet read, over its size.
    func fullest() -> Double {
        var most: UInt64 = 0
        for r in rings {
            let used = gmon_load_acquire_u64(r.producerPos) &- r.consumerPos.pointee
            if used > most { most = used }
        }
        return rings.isEmpty ? 0 : Double(most) / Double(rings[0].mask + 1)
    }

    /// Consumer positions are published after this many bytes of a ring (and at the end
    /// of a drain) rather than after every record: the kernel's producers read that line.
    let publishEvery: UInt64 = 64 << 10

    @inline(__always)
    private func stamp(_ r: UnsafeRawBufferPointer) -> UInt64 {
        r.count >= timestampOffset + 8 ? r.loadUnaligned(fromByteOffset: timestampOffset, as: UInt64.self) : 0
    }

    /// A ring's place in a drain.
    private struct Cursor {
        var pos: UInt64, end: UInt64, published: UInt64
        var head = UnsafeRawBufferPointer(start: nil, count: 0), next: UInt64 = 0
        var stamp = UInt64.max   // the head's; .max: no record ready before the limit
    }

    /// Hands out records in timestamp order (records stamped alike: ring after ring);
    /// returns how many.
    @discardableResult
    func drain(before limit: UInt64, _ body: (UnsafeRawBufferPointer) -> Void) -> Int {
        var handled = 0
        // Each producer position is read once: records after it wait for the next drain.
        var cursors = rings.map { r -> Cursor in
            let pos = r.consumerPos.pointee
            return Cursor(pos: pos, end: gmon_load_acquire_u64(r.producerPos), published: pos)
        }
        rings.withUnsafeBufferPointer { rings in
            cursors.withUnsafeMutableBufferPointer { c in
                @inline(__always) func load(_ i: Int) {
                    if case let (rec, next)? = rings[i].record(at: &c[i].pos, end: c[i].end), case let t = stamp(rec), t < limit {
                        c[i].head = rec; c[i].next = next; c[i].stamp = t
                    } else {
                        c[i].stamp = .max
                    }
                }
                for i in 0..<c.count { load(i) }
                while true {
                    // The ring with the oldest head, and the oldest stamp among the others: the
                    // chosen ring's records go out as long as they are no newer than that.
                    var best = -1, bestStamp = UInt64.max, runnerUp = UInt64.max
                    for i in 0..<c.count {
                        let t = c[i].stamp
                        if t < bestStamp { runnerUp = bestStamp; bestStamp = t; best = i } else if t < runnerUp { runnerUp = t }
                    }
                    if best < 0 { break }
                    repeat {
                        body(c[best].head); handled += 1
                        c[best].pos = c[best].next
                        if c[best].pos - c[best].published >= publishEvery {
                            gmon_store_release_u64(rings[best].consumerPos, c[best].pos); c[best].published = c[best].pos
                        }
                        load(best)
                    } while c[best].stamp <= runnerUp && c[best].stamp != .max
                }
                for i in 0..<c.count where c[i].pos != c[i].published { gmon_store_release_u64(rings[i].consumerPos, c[i].pos) }
            }
        }
        return handled
    }
}

/// One BPF ring buffer per CPU, created by gmon and placed in the BPF program's
/// array-of-maps, read as one stream in timestamp order. Per-CPU rings spare the
/// watched program's threads the cache lines a shared ring's lock and positions cost.
public final class CPURings: @unchecked Sendable {
    private var fds: [Int32] = []
    private var mappings: [(UnsafeMutableRawPointer, Int)] = []
    private let epollFD: Int32
    private var merge: RingMerge
    private var readyEvents = [epoll_event](repeating: epoll_event(), count: 4)
    /// Each CPU's ring's size.
    public let bytesPerRing: UInt32

    /// Creates `count` rings of `bytesPerRing` (a power of two, at least a page) and
    /// stores ring i at key i of `outer`.
    public init(outer: BPFMap, count: Int, bytesPerRing: UInt32, timestampOffset: Int) throws {
        merge = RingMerge(rings: [], timestampOffset: timestampOffset)
        self.bytesPerRing = bytesPerRing
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        if epollFD < 0 { throw fail("creating an epoll instance for the ring buffers") }
        do {
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            for cpu in 0..<count {
                let fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "gmon_ring", 0, 0, bytesPerRing, nil)
                if fd < 0 { throw fail("creating the ring buffer of CPU \(cpu) (\(bytesPerRing >> 10) KiB)", fd) }
                fds.append(fd)
                var key = UInt32(cpu), value = UInt32(fd)
                let rc = bpf_map_update_elem(outer.fd, &key, &value, 0)
                if rc != 0 { throw fail("placing the ring buffer of CPU \(cpu)", rc) }
                guard let cons = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), cons != MAP_FAILED else {
                    throw fail("mapping the ring buffer of CPU \(cpu)")
                }
                mappings.append((cons, page))
                let length = page + 2 * Int(bytesPerRing)
                guard let prod = mmap(nil, length, PROT_READ, MAP_SHARED, fd, off_t(page)), prod != MAP_FAILED else {
                    throw fail("mapping the ring buffer of CPU \(cpu)")
                }
                mappings.append((prod, length))
                merge.rings.append(RingMemory(consumerPos: cons.assumingMemoryBound(to: UInt64.self),
                                              producerPos: UnsafePointer(prod.assumingMemoryBound(to: UInt64.self)),
                                              data: UnsafeRawPointer(prod + page), mask: UInt64(bytesPerRing) - 1))
                // Edge-triggered: a ring is reported when the kernel wakes its readers (a
                // quarter full, or a process exit: wakeup_flag in gmon.bpf.c), not for as
                // long as it holds records; level-triggered, gmon woke for every few records.
                var ev = epoll_event()
                ev.events = EPOLLIN.rawValue | EPOLLET.rawValue
                ev.data.fd = fd
                if epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &ev) != 0 { throw fail("watching the ring buffer of CPU \(cpu)") }
            }
        } catch {
            release()
            throw error
        }
    }

    /// The number of CPUs the kernel may ever bring online: one ring each.
    public static func possibleCPUs() throws -> Int {
        let n = libbpf_num_possible_cpus()
        if n <= 0 { throw fail("counting this machine's CPUs", n) }
        return Int(n)
    }

    /// Waits until a ring has records or the kernel wakes gmon, at most `timeoutMs`.
    public func wait(timeoutMs: Int32) throws {
        if epoll_wait(epollFD, &readyEvents, Int32(readyEvents.count), timeoutMs) < 0 && errno != EINTR { throw fail("waiting for the ring buffers") }
    }

    /// Hands out every record stamped before `limit` (CLOCK_MONOTONIC, taken before this
    /// call; .max: every record), oldest first.
    @discardableResult
    public func drain(before limit: UInt64, _ body: (UnsafeRawBufferPointer) -> Void) -> Int {
        merge.drain(before: limit, body)
    }

    /// How full the fullest ring is now (0 to 1): what waits to be read, over the ring's size.
    public func fullest() -> Double { merge.fullest() }

    private func release() {
        for (p, n) in mappings { munmap(p, n) }
        mappings.removeAll()
        for fd in fds { close(fd) }
        fds.removeAll()
        close(epollFD)
    }

    deinit { release() }
}
