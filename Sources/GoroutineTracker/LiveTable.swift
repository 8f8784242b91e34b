/// The live goroutines of one process: goid → (creation time, site).
///
/// Open addressing with linear probing, keyed by the goid itself (no hashing):
/// the runtime hands out goids from a counter in batches per P, so goroutines
/// created and exiting close together in time sit in neighbouring slots. A
/// Dictionary hashes each goid to a random slot, and at hundreds of thousands
/// of live goroutines every lookup was a cache miss (20% of gmon's CPU in
/// `make bench`).
///
/// Memory is what bounds gmon with a million live goroutines, so a slot is 16 bytes:
/// the creation time, and goid + 1 (40 bits) packed with the site index (24 bits).
/// Goids past 2^40 − 2 and site indices past 2^24 − 1 (a trillion goroutines in one
/// process, sixteen million sites) go to a Dictionary instead: slower, never wrong.
/// The capacity is any number, not a power of two, so a million goroutines do not
/// need two million slots. A class over raw memory: this runs twice per goroutine,
/// and Arrays cost a uniqueness and a bounds check per access (perf: 5% of gmon's CPU).
final class LiveTable {
    private static let goidBits = 40
    private static let keyMask: UInt64 = (1 << 40) - 1
    private static let maxSite: Int32 = (1 << 24) - 1

    private var keys: UnsafeMutablePointer<UInt64>   // (site << 40) | (goid + 1); 0 marks an empty slot
    private var times: UnsafeMutablePointer<UInt64>
    private var capacity: Int
    private var slotsUsed = 0
    /// Entries that do not pack into a slot.
    private var overflow: [UInt64: (createdNs: UInt64, site: Int32)] = [:]
    var count: Int { slotsUsed + overflow.count }

    init(capacity: Int = 64) {
        self.capacity = max(16, capacity)
        (keys, times) = Self.allocate(self.capacity)
    }

    deinit { keys.deallocate(); times.deallocate() }

    private static func allocate(_ c: Int) -> (UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<UInt64>) {
        let k = UnsafeMutablePointer<UInt64>.allocate(capacity: c)
        k.initialize(repeating: 0, count: c)
        let t = UnsafeMutablePointer<UInt64>.allocate(capacity: c)
        t.initialize(repeating: 0, count: c)
        return (k, t)
    }

    /// goid + 1 when the entry packs into a slot.
    @inline(__always) private static func packable(_ goid: UInt64) -> UInt64? {
        let key = goid &+ 1
        return key != 0 && key <= keyMask ? key : nil
    }

    /// Identity modulo the capacity keeps neighbours together.
    @inline(__always) private func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: key % UInt64(capacity)) }

    @inline(__always) private func next(_ i: Int) -> Int { i + 1 == capacity ? 0 : i + 1 }

    /// The slot holding `key`, or nil.
    @inline(__always) private func find(_ key: UInt64) -> Int? {
        var i = home(key)
        while true {
            let k = keys[i]
            if k == 0 { return nil }
            if k & Self.keyMask == key { return i }
            i = next(i)
        }
    }

    /// Inserts or replaces; returns true when the goid was already live.
    @discardableResult
    func insert(goid: UInt64, createdNs: UInt64, site: Int32) -> Bool {
        guard let key = Self.packable(goid), site >= 0, site <= Self.maxSite else {
            let inTable = removeFromTable(goid) != nil
            return overflow.updateValue((createdNs, site), forKey: goid) != nil || inTable
        }
        let wasOverflow = !overflow.isEmpty && overflow.removeValue(forKey: goid) != nil
        let packed = UInt64(site) << Self.goidBits | key
        if let i = find(key) { keys[i] = packed; times[i] = createdNs; return true }
        // Grow at 85% full to 60%: linear probing stays short on goids, which are near-sequential.
        if (slotsUsed + 1) * 20 > capacity * 17 { grow(to: (slotsUsed + 1) * 5 / 3) }
        var i = home(key)
        while keys[i] != 0 { i = next(i) }
        keys[i] = packed; times[i] = createdNs
        slotsUsed += 1
        return wasOverflow
    }

    /// Removes and returns the goroutine, or nil when it is not live.
    func remove(goid: UInt64) -> (createdNs: UInt64, site: Int32)? {
        if let found = removeFromTable(goid) { return found }
        return overflow.isEmpty ? nil : overflow.removeValue(forKey: goid)
    }

    private func removeFromTable(_ goid: UInt64) -> (createdNs: UInt64, site: Int32)? {
        guard slotsUsed > 0, let key = Self.packable(goid), let i = find(key) else { return nil }
        let found = (times[i], Int32(truncatingIfNeeded: keys[i] >> Self.goidBits))
        // Backward-shift deletion: no tombstones, so probe chains never grow with churn.
        var hole = i
        var j = next(i)
        while keys[j] != 0 {
            let h = home(keys[j] & Self.keyMask)
            // Move j into the hole unless its home lies cyclically in (hole, j].
            let between = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j)
            if !between {
                keys[hole] = keys[j]; times[hole] = times[j]
                hole = j
            }
            j = next(j)
        }
        keys[hole] = 0
        slotsUsed -= 1
        return found
    }

    private func grow(to newCapacity: Int) {
        let (oldKeys, oldTimes, oldCapacity) = (keys, times, capacity)
        capacity = max(newCapacity, oldCapacity + 1)
        (keys, times) = Self.allocate(capacity)
        for i in 0..<oldCapacity where oldKeys[i] != 0 {
            var j = home(oldKeys[i] & Self.keyMask)
            while keys[j] != 0 { j = next(j) }
            keys[j] = oldKeys[i]; times[j] = oldTimes[i]
        }
        oldKeys.deallocate(); oldTimes.deallocate()
    }

    /// Every live goroutine, in no particular order.
    func forEach(_ body: (_ goid: UInt64, _ createdNs: UInt64, _ site: Int32) -> Void) {
        for i in 0..<capacity where keys[i] != 0 {
            body((keys[i] & Self.keyMask) &- 1, times[i], Int32(truncatingIfNeeded: keys[i] >> Self.goidBits))
        }
        for (g, v) in overflow { body(g, v.createdNs, v.site) }
    }
}
