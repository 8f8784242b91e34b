import Testing
@testable import GoroutineTracker

/// The live table against a Dictionary under random inserts and removals: dense keys,
/// keys as g addresses give them (runs of one span's g structs, then a gap), sparse ones,
/// keys whose home slots are the table's last two (one long chain that wraps around), and
/// keys and sites too large to pack into a slot.
@Suite struct LiveTableTests {
    struct Rng { var s: UInt64; mutating func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s } }

    @Test(arguments: ["dense", "spans", "sparse", "colliding", "unpackable"])
    func agreesWithADictionary(_ pattern: String) {
        var rng = Rng(s: 0x9e37_79b9_7f4a_7c15)
        // Colliding: the table never grows (≤ 2,000 live in 4,096 slots) and every key's home
        // is slot 4,094 or 4,095: one long probe chain around the end of the table.
        let table = pattern == "colliding" ? LiveTable(capacity: 4096) : LiveTable()
        var truth: [UInt64: (UInt64, Int32)] = [:]
        var next: UInt64 = 1
        func key() -> UInt64 {
            switch pattern {
            case "dense": next += 1; return next
            // Pages of 19 keys, some of them (as GKeys gives them to a process after a burst).
            case "spans": next += rng.next() % 4 == 0 ? 19 * (1 + rng.next() % 8) : 1 + rng.next() % 2; return next
            case "sparse": return rng.next() >> 20
            // Keys past 40 bits (and, below, sites past 24 bits) live outside the slots.
            case "unpackable": next += 1; return rng.next() % 4 == 0 ? (1 << 40) - 2 + next % 7 : next
            default:
                repeat { next += 1 } while LiveTable.home(next + 1, capacity: 4096) < 4094   // key + 1 is placed
                return next
            }
        }
        var live: [UInt64] = []
        for step in 0..<(pattern == "colliding" ? 3_000 : 200_000) {
            if live.isEmpty || rng.next() % 3 != 0 {
                let g = key()
                let t = UInt64(step)
                let s = pattern == "unpackable" && rng.next() % 5 == 0 ? (1 << 24) - 1 + Int32(rng.next() % 3) : Int32(truncatingIfNeeded: rng.next() % 1000)
                let was = table.insert(key: g, createdNs: t, site: s)
                #expect(was?.createdNs == truth[g]?.0 && was?.site == truth[g]?.1)
                if truth[g] == nil { live.append(g) }
                truth[g] = (t, s)
            } else {
                let i = Int(rng.next() % UInt64(live.count))
                let g = live.remove(at: i)
                let got = table.remove(key: g)
                #expect(got?.createdNs == truth[g]?.0 && got?.site == truth[g]?.1, "key \(g)")
                truth[g] = nil
                let again = table.remove(key: g)
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
        // Keys absent from the table are not found (including 0 and the largest).
        let zero = table.remove(key: 0), top = table.remove(key: .max)
        #expect((zero == nil) == (truth[0] == nil) && (top == nil) == (truth[.max] == nil))
    }

    /// 0 and UInt64.max (what a garbage register gives) are keys like any other.
    @Test func extremeKeys() {
        let t = LiveTable()
        let a = t.insert(key: 0, createdNs: 1, site: 1)
        let b = t.insert(key: .max, createdNs: 2, site: 2)
        let c = t.insert(key: .max, createdNs: 3, site: 3)
        #expect(a == nil && b == nil && c?.createdNs == 2 && c?.site == 2)
        #expect(t.count == 2)
        let m = t.remove(key: .max), m2 = t.remove(key: .max), z = t.remove(key: 0)
        #expect(m?.createdNs == 3 && m2 == nil && z?.site == 1 && t.count == 0)
    }
}
