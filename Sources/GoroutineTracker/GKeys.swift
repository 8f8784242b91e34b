#if canImport(Glibc)
import Glibc
#endif

/// Dense keys for one process's runtime.g structs, so the live table can place them by
/// identity as it did goids: neighbours in memory get neighbouring slots.
///
/// g addresses themselves come in runs (one span's g structs) with gaps for the stacks and
/// other objects between: ~2.7 KB per goroutine in `make bench`'s program, where g is
/// 440 bytes. Placed by identity those runs wrapped around the table onto each other;
/// hashed, every access was a cache miss (gmon's CPU per event 0.18 → 0.32 µs). Here each
/// 8 KiB page that holds g structs gets the next block of keys the first time it is seen,
/// and a g's key is its page's block plus its index within the page. g structs are never
/// freed by the runtime, so a page's block is never reused.
final class GKeys {
    private static let pageShift: UInt64 = 13
    private let stride: UInt64
    private let perPage: UInt64
    /// Page → its block's first key, open addressing over a power-of-two capacity: a
    /// Dictionary hashed each exit's page with SipHash (4% of gmon's CPU, perf). Pages are
    /// never removed. Slot: page + 1 (0: empty), then the block.
    private var slots: UnsafeMutablePointer<UInt64>
    private var capacity = 1024
    private var pages = 0
    private var nextBlock: UInt64 = 0
    private var lastPage: UInt64 = .max
    private var lastBlock: UInt64 = 0

    /// `stride`: a size every g reaches, so two g structs never share an index in a page.
    init(stride: UInt64) {
        self.stride = min(max(stride, 8), 1 << Self.pageShift)
        perPage = (1 << Self.pageShift) / self.stride + 1
        slots = Self.allocate(capacity)
    }

    deinit { free(slots) }

    private static func allocate(_ c: Int) -> UnsafeMutablePointer<UInt64> { zeroedWords(2 * c) }

    @inline(__always) private func home(_ tag: UInt64) -> Int {
        Int(truncatingIfNeeded: (tag &* 0x9e37_79b9_7f4a_7c15) >> UInt64(64 - capacity.trailingZeroBitCount))
    }

    /// The key of the g at `g`; nil when its page has no key block and `assign` is false
    /// (an exit of a goroutine created before gmon attached).
    @inline(__always) func key(_ g: UInt64, assign: Bool) -> UInt64? {
        let page = g >> Self.pageShift
        if page != lastPage {
            guard let b = block(page + 1, assign: assign) else { return nil }
            lastBlock = b
            lastPage = page
        }
        return lastBlock + (g & ((1 << Self.pageShift) - 1)) / stride
    }

    private func block(_ tag: UInt64, assign: Bool) -> UInt64? {
        var i = home(tag)
        while slots[2 * i] != 0 {
            if slots[2 * i] == tag { return slots[2 * i + 1] }
            i = (i + 1) & (capacity - 1)
        }
        guard assign else { return nil }
        let b = nextBlock
        nextBlock += perPage
        slots[2 * i] = tag; slots[2 * i + 1] = b
        pages += 1
        if pages * 4 > capacity * 3 { grow() }
        return b
    }

    private func grow() {
        let (old, oldCapacity) = (slots, capacity)
        capacity *= 2
        slots = Self.allocate(capacity)
        for j in 0..<oldCapacity where old[2 * j] != 0 {
            var i = home(old[2 * j])
            while slots[2 * i] != 0 { i = (i + 1) & (capacity - 1) }
            slots[2 * i] = old[2 * j]; slots[2 * i + 1] = old[2 * j + 1]
        }
        free(old)
    }
}
