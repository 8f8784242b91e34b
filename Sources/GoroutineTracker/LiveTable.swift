/// The live goroutines of one process: goid → (creation time, site).
///
/// Open addressing with linear probing, keyed by the goid itself (no hashing):
/// the runtime hands out goids from a counter in batches per P, so goroutines
/// created and exiting close together in time sit in neighbouring slots. A
/// Dictionary hashes each goid to a random slot, and at hundreds of thousands
/// of live goroutines every lookup was a cache miss (20% of gmon's CPU in
/// `make bench`). Three parallel arrays: 20 bytes a slot, no padding.
struct LiveTable {
    private var keys: [UInt64]        // goid + 1; 0 marks an empty slot
    private var times: [UInt64]
    private var sites: [Int32]
    private var mask: Int
    /// The one goid whose key would be 0 (never a real goid; a garbage read could give it).
    private var maxGoid: (createdNs: UInt64, site: Int32)?
    private var slotsUsed = 0
    var count: Int { slotsUsed + (maxGoid == nil ? 0 : 1) }

    init(capacity: Int = 64) {
        var c = 16
        while c < capacity { c <<= 1 }
        keys = [UInt64](repeating: 0, count: c)
        times = [UInt64](repeating: 0, count: c)
        sites = [Int32](repeating: 0, count: c)
        mask = c - 1
    }

    @inline(__always) private func home(_ key: UInt64) -> Int {
        // Identity keeps neighbours together; the high bits fold in so that goids
        // that differ only above the mask (rare) do not all collide.
        Int(truncatingIfNeeded: key ^ (key >> 32)) & mask
    }

    /// Inserts or replaces; returns true when the goid was already live.
    @discardableResult
    mutating func insert(goid: UInt64, createdNs: UInt64, site: Int32) -> Bool {
        if goid == .max { defer { maxGoid = (createdNs, site) }; return maxGoid != nil }
        if (slotsUsed + 1) * 4 > keys.count * 3 { grow() }
        let key = goid &+ 1
        var i = home(key)
        while true {
            let k = keys[i]
            if k == key { times[i] = createdNs; sites[i] = site; return true }
            if k == 0 {
                keys[i] = key; times[i] = createdNs; sites[i] = site
                slotsUsed += 1
                return false
            }
            i = (i + 1) & mask
        }
    }

    /// Removes and returns the goroutine, or nil when it is not live.
    mutating func remove(goid: UInt64) -> (createdNs: UInt64, site: Int32)? {
        if goid == .max { defer { maxGoid = nil }; return maxGoid }
        guard slotsUsed > 0 else { return nil }
        let key = goid &+ 1
        var i = home(key)
        while true {
            let k = keys[i]
            if k == 0 { return nil }
            if k == key { break }
            i = (i + 1) & mask
        }
        let found = (times[i], sites[i])
        // Backward-shift deletion: no tombstones, so probe chains never grow with churn.
        var hole = i
        var j = (i + 1) & mask
        while keys[j] != 0 {
            let h = home(keys[j])
            // Move j into the hole unless its home lies cyclically in (hole, j].
            let between = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j)
            if !between {
                keys[hole] = keys[j]; times[hole] = times[j]; sites[hole] = sites[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        keys[hole] = 0
        slotsUsed -= 1
        return found
    }

    private mutating func grow() {
        var bigger = LiveTable(capacity: keys.count * 2)
        for i in keys.indices where keys[i] != 0 {
            bigger.insert(goid: keys[i] &- 1, createdNs: times[i], site: sites[i])
        }
        bigger.maxGoid = maxGoid
        self = bigger
    }

    /// Every live goroutine, in no particular order.
    func forEach(_ body: (_ goid: UInt64, _ createdNs: UInt64, _ site: Int32) -> Void) {
        for i in keys.indices where keys[i] != 0 { body(keys[i] &- 1, times[i], sites[i]) }
        if let m = maxGoid { body(.max, m.createdNs, m.site) }
    }
}
