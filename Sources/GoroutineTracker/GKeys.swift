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
    private var blocks: [UInt64: UInt64] = [:]
    private var nextBlock: UInt64 = 0
    private var lastPage: UInt64 = .max
    private var lastBlock: UInt64 = 0

    /// `stride`: a size every g reaches, so two g structs never share an index in a page.
    init(stride: UInt64) {
        self.stride = min(max(stride, 8), 1 << Self.pageShift)
        perPage = (1 << Self.pageShift) / self.stride + 1
    }

    /// The key of the g at `g`; nil when its page has no key block and `assign` is false
    /// (an exit of a goroutine created before gmon attached).
    @inline(__always) func key(_ g: UInt64, assign: Bool) -> UInt64? {
        let page = g >> Self.pageShift
        if page != lastPage {
            if let b = blocks[page] {
                lastBlock = b
            } else if assign {
                lastBlock = nextBlock
                blocks[page] = nextBlock
                nextBlock += perPage
            } else {
                return nil
            }
            lastPage = page
        }
        return lastBlock + (g & ((1 << Self.pageShift) - 1)) / stride
    }
}
