/// The live goroutines of one process: goid → (creation time, site).
///
/// Open addressing with linear probing, keyed by the goid itself (no hashing):
/// the runtime hands out goids from a counter in batches per P, so goroutines
/// created and exiting close together in time sit in neighbouring slots. A
/// Dictionary hashes each goid to a random slot, and at hundreds of thousands
/// of live goroutines every lookup was a cache miss (20% of gmon's CPU in
/// `make bench`). Three parallel columns in one allocation: 20 bytes a slot, no
/// padding. A class over raw memory: this runs twice per goroutine, and Arrays
/// cost a uniqueness and a bounds check per access (perf: 5% of gmon's CPU).
final class LiveTable {
    private var keys: UnsafeMutablePointer<UInt64>   // goid + 1; 0 marks an empty slot
    private var times: UnsafeMutablePointer<UInt64>
    private var sites: UnsafeMutablePointer<Int32>
    private var capacity: Int
    private var mask: Int
    /// The one goid whose key would be 0 (never a real goid; a garbage read could give it).
    private var maxGoid: (createdNs: UInt64, site: Int32)?
    private var slotsUsed = 0
    var count: Int { slotsUsed + (maxGoid == nil ? 0 : 1) }

    init(capacity: Int = 64) {
        var c = 16
        while c < capacity { c <<= 1 }
        (keys, times, sites) = Self.allocate(c)
        self.capacity = c
        mask = c - 1
    }

    deinit { keys.deallocate(); times.deallocate(); sites.deallocate() }

    private static func allocate(_ c: Int) -> (UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<Int32>) {
        let k = UnsafeMutablePointer<UInt64>.allocate(capacity: c)
        k.initialize(repeating: 0, count: c)
        let t = UnsafeMutablePointer<UInt64>.allocate(capacity: c)
        t.initialize(repeating: 0, count: c)
        let s = UnsafeMutablePointer<Int32>.allocate(capacity: c)
        s.initialize(repeating: 0, count: c)
        return (k, t, s)
    }

    @inline(__always) private func home(_ key: UInt64) -> Int {
        // Identity keeps neighbours together; the high bits fold in so that goids
        // that differ only above the mask (rare) do not all collide.
        Int(truncatingIfNeeded: key ^ (key >> 32)) & mask
    }

    /// Inserts or replaces; returns true when the goid was already live.
    @discardableResult
    func insert(goid: UInt64, createdNs: UInt64, site: Int32) -> Bool {
        if goid == .max { defer { maxGoid = (createdNs, site) }; return maxGoid != nil }
        if (slotsUsed + 1) * 4 > capacity * 3 { grow() }
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
    func remove(goid: UInt64) -> (createdNs: UInt64, site: Int32)? {
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

    private func grow() {
        let (oldKeys, oldTimes, oldSites, oldCapacity) = (keys, times, sites, capacity)
        capacity *= 2
        mask = capacity - 1
        (keys, times, sites) = Self.allocate(capacity)
        slotsUsed = 0
        for i in 0..<oldCapacity where oldKeys[i] != 0 {
            insert(goid: oldKeys[i] &- 1, createdNs: oldTimes[i], site: oldSites[i])
        }
        oldKeys.deallocate(); oldTimes.deallocate(); oldSites.deallocate()
    }

    /// Every live goroutine, in no particular order.
    func forEach(_ body: (_ goid: UInt64, _ createdNs: UInt64, _ site: Int32) -> Void) {
        for i in 0..<capacity where keys[i] != 0 { body(keys[i] &- 1, times[i], sites[i]) }
        if let m = maxGoid { body(.max, m.createdNs, m.site) }
    }
}
