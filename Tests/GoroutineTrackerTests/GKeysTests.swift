import Testing
@testable import GoroutineTracker

/// g addresses → dense keys: distinct g structs get distinct keys, the same g the same key,
/// and g structs allocated together get nearly consecutive keys.
@Suite struct GKeysTests {
    /// Spans of g structs as the heap lays them out (size-class objects from a page-aligned
    /// base, some spans several pages long), in random order with gaps between spans.
    @Test(arguments: [(392, 416, 1), (440, 448, 1), (456, 480, 3)])
    func distinctStableAndDense(_ c: (size: Int, sizeClass: Int, spanPages: Int)) {
        var rng = LiveTableTests.Rng(s: 0x1234_5678_9abc_def1)
        let keys = GKeys(stride: UInt64(c.size))
        var seen: [UInt64: UInt64] = [:]   // key → g
        var all: [UInt64] = []
        var base: UInt64 = 0xc000_0000_00
        for _ in 0..<2000 {   // thousands of pages: the page map grows several times
            base += UInt64(c.spanPages * 8192) * (1 + rng.next() % 5)
            let perSpan = c.spanPages * 8192 / c.sizeClass
            var spanKeys: [UInt64] = []
            for i in 0..<perSpan {
                let g = base + UInt64(i * c.sizeClass)
                let k = keys.key(g, assign: true)!
                #expect(seen[k] == nil || seen[k] == g, "g \(g) shares key \(k) with \(seen[k]!)")
                seen[k] = g
                all.append(g)
                spanKeys.append(k)
            }
            // One span's keys lie within a few pages' blocks: neighbours stay neighbours.
            #expect(spanKeys.max()! - spanKeys.min()! < UInt64((8192 / c.size + 1) * (c.spanPages + 1)))
        }
        for g in all.shuffled() { #expect(keys.key(g, assign: false) != nil && seen[keys.key(g, assign: false)!] == g) }
        // A page never seen (a goroutine from before gmon attached) has no key unless assigned.
        #expect(keys.key(base + 1 << 30, assign: false) == nil)
    }
}
