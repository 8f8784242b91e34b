#if canImport(Glibc)
import Glibc
#endif

/// The live goroutines of one process: key → (creation time, site). The key is a dense
/// number for the goroutine's runtime.g (GKeys; what an exit names without reading the
/// g's memory, see Tracker), and any other integer in tests.
///
/// Open addressing with linear probing, keyed by the key itself (no hashing): keys of g
/// structs allocated together are neighbours, and goroutines created and exiting close
/// together in time sit in neighbouring slots. Hashed placement made every access a
/// cache miss (make bench: gmon's CPU 0.18 → 0.32 µs per event).
///
/// Memory is what bounds gmon with a million live goroutines, so a slot is 16 bytes, its
/// two words adjacent so that an access touches one cache line: key + 1 (40 bits) packed
/// with the site index (24 bits), then the creation time. Keys past 2^40 − 2 and site
/// indices past 2^24 − 1 go to a Dictionary instead: slower, never wrong.
/// The capacity is any number, not a power of two, so a million goroutines do not
/// need two million slots. A class over raw memory: this runs twice per goroutine,
/// and Arrays cost a uniqueness and a bounds check per access (perf: 5% of gmon's CPU).
final class LiveTable {
    private static let keyBits = 40
    private static let keyMask: UInt64 = (1 << 40) - 1
    private static let maxSite: Int32 = (1 << 24) - 1

    /// slots[2i]: (site << 40) | (key + 1), 0 marks an empty slot; slots[2i + 1]: creation time.
    private var slots: UnsafeMutablePointer<UInt64>
    private var capacity: Int
    private var slotsUsed = 0
    /// Entries that do not pack into a slot.
    private var overflow: [UInt64: (createdNs: UInt64, site: Int32)] = [:]
    var count: Int { slotsUsed + overflow.count }

    init(capacity: Int = 64) {
        self.capacity = max(16, capacity)
        slots = Self.allocate(self.capacity)
    }

    deinit { free(slots) }

    private static func allocate(_ c: Int) -> UnsafeMutablePointer<UInt64> { zeroedWords(2 * c) }

    /// key + 1 when the entry packs into a slot.
    @inline(__always) private static func packable(_ key: UInt64) -> UInt64? {
        let k = key &+ 1
        return k != 0 && k <= keyMask ? k : nil
    }

    /// Identity modulo the capacity keeps neighbours together.
    @inline(__always) static func home(_ packedKey: UInt64, capacity: Int) -> Int {
        Int(truncatingIfNeeded: packedKey % UInt64(capacity))
    }

    @inline(__always) private func home(_ packedKey: UInt64) -> Int { Self.home(packedKey, capacity: capacity) }

    @inline(__always) private func next(_ i: Int) -> Int { i + 1 == capacity ? 0 : i + 1 }

    /// The slot holding `packedKey`, or nil.
    @inline(__always) private func find(_ packedKey: UInt64) -> Int? {
        var i = home(packedKey)
        while true {
            let k = slots[2 * i]
            if k == 0 { return nil }
            if k & Self.keyMask == packedKey { return i }
            i = next(i)
        }
    }

    /// Inserts or replaces; returns the entry it replaced, if the key was live.
    @discardableResult
    func insert(key: UInt64, createdNs: UInt64, site: Int32) -> (createdNs: UInt64, site: Int32)? {
        guard let packedKey = Self.packable(key), site >= 0, site <= Self.maxSite else {
            let inTable = removeFromTable(key)
            return overflow.updateValue((createdNs, site), forKey: key) ?? inTable
        }
        let wasOverflow = overflow.isEmpty ? nil : overflow.removeValue(forKey: key)
        let packed = UInt64(site) << Self.keyBits | packedKey
        if let i = find(packedKey) {
            let old = (slots[2 * i + 1], Int32(truncatingIfNeeded: slots[2 * i] >> Self.keyBits))
            slots[2 * i] = packed; slots[2 * i + 1] = createdNs
            return old
        }
        // Grow at 85% full to 60%: linear probing stays short on dense keys.
        if (slotsUsed + 1) * 20 > capacity * 17 { grow(to: (slotsUsed + 1) * 5 / 3) }
        var i = home(packedKey)
        while slots[2 * i] != 0 { i = next(i) }
        slots[2 * i] = packed; slots[2 * i + 1] = createdNs
        slotsUsed += 1
        return wasOverflow
    }

    /// Removes and returns the goroutine, or nil when it is not live.
    func remove(key: UInt64) -> (createdNs: UInt64, site: Int32)? {
        if let found = removeFromTable(key) { return found }
        return overflow.isEmpty ? nil : overflow.removeValue(forKey: key)
    }

    private func removeFromTable(_ key: UInt64) -> (createdNs: UInt64, site: Int32)? {
        guard slotsUsed > 0, let packedKey = Self.packable(key), let i = find(packedKey) else { return nil }
        let found = (slots[2 * i + 1], Int32(truncatingIfNeeded: slots[2 * i] >> Self.keyBits))
        // Backward-shift deletion: no tombstones, so probe chains never grow with churn.
        // Most entries sit at their home, in runs of consecutive keys: an entry whose key
        // follows that of an entry at home in the slot before is at home too, and stays;
        // that check replaces a division per slot scanned (perf: 8% of the per-event path).
        var hole = i
        var j = next(i)
        var previousAtHome: UInt64 = 0   // key of the slot before j when it is at its home; 0: none
        while slots[2 * j] != 0 {
            let k = slots[2 * j] & Self.keyMask
            if previousAtHome != 0, k == previousAtHome &+ 1 {
                previousAtHome = k
                j = next(j)
                continue
            }
            let h = home(k)
            previousAtHome = h == j ? k : 0
            // Move j into the hole unless its home lies cyclically in (hole, j].
            let between = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j)
            if !between {
                slots[2 * hole] = slots[2 * j]; slots[2 * hole + 1] = slots[2 * j + 1]
                hole = j
            }
            j = next(j)
        }
        slots[2 * hole] = 0
        slotsUsed -= 1
        return found
    }

    private func grow(to newCapacity: Int) {
        let (old, oldCapacity) = (slots, capacity)
        capacity = max(newCapacity, oldCapacity + 1)
        slots = Self.allocate(capacity)
        for i in 0..<oldCapacity where old[2 * i] != 0 {
            var j = home(old[2 * i] & Self.keyMask)
            while slots[2 * j] != 0 { j = next(j) }
            slots[2 * j] = old[2 * i]; slots[2 * j + 1] = old[2 * i + 1]
        }
        free(old)
    }

    /// Every live goroutine, in no particular order.
    func forEach(_ body: (_ key: UInt64, _ createdNs: UInt64, _ site: Int32) -> Void) {
        for i in 0..<capacity where slots[2 * i] != 0 {
            body((slots[2 * i] & Self.keyMask) &- 1, slots[2 * i + 1], Int32(truncatingIfNeeded: slots[2 * i] >> Self.keyBits))
        }
        for (g, v) in overflow { body(g, v.createdNs, v.site) }
    }
}

/// `n` zeroed words from calloc, released with free(): large tables come as fresh pages
/// the kernel has zeroed already; zeroing them again cost 7% of gmon's CPU while a
/// million goroutines piled up. Used by the live table and the g keys' page map.
func zeroedWords(_ n: Int) -> UnsafeMutablePointer<UInt64> {
    guard let raw = calloc(n, MemoryLayout<UInt64>.stride) else { fatalError("out of memory for \(n) words of goroutine tables") }
    return raw.bindMemory(to: UInt64.self, capacity: n)
}
