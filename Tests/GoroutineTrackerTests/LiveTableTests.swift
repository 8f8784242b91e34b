import Testing
@testable import GoroutineTracker

/// The live table against a Dictionary under random inserts and removals: dense goids
/// (as the runtime hands them out), sparse ones, goids that all share a home slot, and
/// goids and sites too large to pack into a slot.
@Suite struct LiveTableTests {
    struct Rng { var s: UInt64; mutating func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s } }

    @Test(arguments: ["dense", "sparse", "colliding", "unpackable"])
    func agreesWithADictionary(_ pattern: String) {
        var rng = Rng(s: 0x9e37_79b9_7f4a_7c15)
        // Colliding: the table never grows (≤ 2,000 live in 4,096 slots) and every goid is a
        // multiple of its capacity, so all share one home slot: one long probe chain.
        let table = pattern == "colliding" ? LiveTable(capacity: 4096) : LiveTable()
        var truth: [UInt64: (UInt64, Int32)] = [:]
        var next: UInt64 = 1
        func goid() -> UInt64 {
            switch pattern {
            case "dense": next += 1; return next
            case "sparse": return rng.next() >> 20
            // Goids past 40 bits (and, below, sites past 24 bits) live outside the slots.
            case "unpackable": next += 1; return rng.next() % 4 == 0 ? (1 << 40) - 2 + next % 7 : next
            default: next += 1; return next * 4096 - 1   // goid + 1 is the key
            }
        }
        var live: [UInt64] = []
        for step in 0..<(pattern == "colliding" ? 3_000 : 200_000) {
            if live.isEmpty || rng.next() % 3 != 0 {
                let g = goid()
                let t = UInt64(step)
                let s = pattern == "unpackable" && rng.next() % 5 == 0 ? (1 << 24) - 1 + Int32(rng.next() % 3) : Int32(truncatingIfNeeded: rng.next() % 1000)
                let was = table.insert(goid: g, createdNs: t, site: s)
                #expect(was == (truth[g] != nil))
                if truth[g] == nil { live.append(g) }
                truth[g] = (t, s)
            } else {
                let i = Int(rng.next() % UInt64(live.count))
                let g = live.remove(at: i)
                let got = table.remove(goid: g)
                #expect(got?.createdNs == truth[g]?.0 && got?.site == truth[g]?.1, "goid \(g)")
                truth[g] = nil
                let again = table.remove(goid: g)
                #expect(again == nil)
            }
            if step % 997 == 0 { #expect(table.count == truth.count) }
        }
        var seen = 0
        table.forEach { g, t, s in
            seen += 1
            #expect(truth[g]?.0 == t && truth[g]?.1 == s)
        }
        #expect(seen == truth.count && table.count == truth.count)
        // Goids absent from the table are not found (including 0 and the largest).
        let zero = table.remove(goid: 0), top = table.remove(goid: .max)
        #expect((zero == nil) == (truth[0] == nil) && (top == nil) == (truth[.max] == nil))
    }

    /// 0 and UInt64.max (what a failed or garbage read gives) are goids like any other.
    @Test func extremeGoids() {
        let t = LiveTable()
        let a = t.insert(goid: 0, createdNs: 1, site: 1)
        let b = t.insert(goid: .max, createdNs: 2, site: 2)
        let c = t.insert(goid: .max, createdNs: 3, site: 3)
        #expect(!a && !b && c)
        #expect(t.count == 2)
        let m = t.remove(goid: .max), m2 = t.remove(goid: .max), z = t.remove(goid: 0)
        #expect(m?.createdNs == 3 && m2 == nil && z?.site == 1 && t.count == 0)
    }
}
