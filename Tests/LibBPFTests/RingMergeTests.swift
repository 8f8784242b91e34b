import Testing
@testable import LibBPF

/// The per-CPU ring reader's merge, on rings laid out in memory as the kernel lays them
/// out (8-byte record headers with busy and discard bits, data pages mapped twice).
@Suite struct RingMergeTests {
    /// A ring in ordinary memory: writing a byte at x also writes it at x + size, as the
    /// kernel's double mapping of the data pages shows it.
    final class FakeRing {
        let size: Int
        let consumer = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        let producer = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        let data: UnsafeMutableRawPointer
        init(size: Int) {
            self.size = size
            data = UnsafeMutableRawPointer.allocate(byteCount: 2 * size, alignment: 8)
            data.initializeMemory(as: UInt8.self, repeating: 0, count: 2 * size)
            consumer.pointee = 0; producer.pointee = 0
        }
        deinit { consumer.deallocate(); producer.deallocate(); data.deallocate() }

        var memory: RingMemory {
            RingMemory(consumerPos: consumer, producerPos: UnsafePointer(producer), data: UnsafeRawPointer(data), mask: UInt64(size - 1))
        }

        func put(_ byte: UInt8, at p: UInt64) {
            let x = Int(p) & (size - 1)
            data.storeBytes(of: byte, toByteOffset: x, as: UInt8.self)
            data.storeBytes(of: byte, toByteOffset: x + size, as: UInt8.self)
        }

        /// Appends a record: a tag, then the stamp at offset 8 (the header's ktime_ns), then
        /// padding; returns its position.
        @discardableResult
        func append(tag: UInt64, stamp: UInt64, busy: Bool = false, discarded: Bool = false, length: Int = 24) -> UInt64 {
            let at = producer.pointee
            var len = UInt32(length)
            if busy { len |= RingMemory.busyBit }
            if discarded { len |= RingMemory.discardBit }
            var bytes = withUnsafeBytes(of: len.littleEndian) { Array($0) } + [0, 0, 0, 0]
            bytes += withUnsafeBytes(of: tag.littleEndian) { Array($0) } + withUnsafeBytes(of: stamp.littleEndian) { Array($0) }
            bytes += [UInt8](repeating: 0xAB, count: length - 16)
            for (i, b) in bytes.enumerated() { put(b, at: at + UInt64(i)) }
            producer.pointee = at + UInt64((8 + length + 7) & ~7)
            return at
        }

        func setBusy(_ busy: Bool, at p: UInt64, length: Int = 24) {
            let len = UInt32(length) | (busy ? RingMemory.busyBit : 0)
            withUnsafeBytes(of: len.littleEndian) { for (i, b) in $0.enumerated() { put(b, at: p + UInt64(i)) } }
        }
    }

    func drain(_ rings: [FakeRing], before limit: UInt64) -> [(tag: UInt64, stamp: UInt64)] {
        var out: [(UInt64, UInt64)] = []
        let merge = RingMerge(rings: rings.map(\.memory), timestampOffset: 8)
        let n = merge.drain(before: limit) { r in
            out.append((r.loadUnaligned(fromByteOffset: 0, as: UInt64.self), r.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        #expect(n == out.count)
        return out
    }

    @Test func interleavedRingsComeOutInStampOrder() {
        let a = FakeRing(size: 4096), b = FakeRing(size: 4096), c = FakeRing(size: 4096)
        for s in [1, 4, 5, 9, 12] as [UInt64] { a.append(tag: 100 + s, stamp: s) }
        for s in [2, 3, 6, 7, 8, 13] as [UInt64] { b.append(tag: 100 + s, stamp: s) }
        for s in [10, 11] as [UInt64] { c.append(tag: 100 + s, stamp: s) }
        let out = drain([a, b, c], before: 1000)
        #expect(out.map(\.stamp) == Array(1...13))
        #expect(out.map(\.tag) == (1...13).map { 100 + $0 })
        // Everything was consumed and the consumer positions say so.
        for r in [a, b, c] { #expect(r.consumer.pointee == r.producer.pointee) }
        #expect(drain([a, b, c], before: 1000).isEmpty)
    }

    @Test func recordsStampedAtOrAfterTheLimitWaitForTheNextDrain() {
        let a = FakeRing(size: 4096), b = FakeRing(size: 4096)
        for s in [1, 5, 7] as [UInt64] { a.append(tag: s, stamp: s) }
        for s in [2, 4, 6] as [UInt64] { b.append(tag: s, stamp: s) }
        #expect(drain([a, b], before: 5).map(\.stamp) == [1, 2, 4])
        #expect(a.consumer.pointee == 32 && b.consumer.pointee == 64)
        b.append(tag: 8, stamp: 8)
        #expect(drain([a, b], before: 100).map(\.stamp) == [5, 6, 7, 8])
    }

    @Test func aRecordStillBeingWrittenHoldsBackOnlyItsOwnRing() {
        let a = FakeRing(size: 4096), b = FakeRing(size: 4096)
        a.append(tag: 1, stamp: 1)
        let busy = a.append(tag: 3, stamp: 3, busy: true)
        a.append(tag: 5, stamp: 5)
        for s in [2, 4, 6] as [UInt64] { b.append(tag: s, stamp: s) }
        #expect(drain([a, b], before: 100).map(\.stamp) == [1, 2, 4, 6])
        #expect(a.consumer.pointee == busy)
        a.setBusy(false, at: busy)
        #expect(drain([a, b], before: 100).map(\.stamp) == [3, 5])
    }

    @Test func discardedRecordsAreSkipped() {
        let a = FakeRing(size: 4096), b = FakeRing(size: 4096)
        a.append(tag: 1, stamp: 1)
        a.append(tag: 2, stamp: 2, discarded: true)
        a.append(tag: 3, stamp: 3)
        b.append(tag: 4, stamp: 4, discarded: true)
        #expect(drain([a, b], before: 100).map(\.tag) == [1, 3])
        #expect(b.consumer.pointee == b.producer.pointee)
    }

    @Test func recordsWrapAroundTheEndOfASmallRing() {
        // 128 bytes of data, 40-byte records (32 + header): positions run past the end many times.
        let a = FakeRing(size: 128), b = FakeRing(size: 128)
        var expected: [UInt64] = []
        var stamp: UInt64 = 0
        for _ in 0..<20 {
            for r in [a, b, a] { stamp += 1; r.append(tag: stamp * 3, stamp: stamp, length: 32); expected.append(stamp) }
            let out = drain([a, b], before: .max)
            #expect(out.map(\.stamp) == expected && out.map(\.tag) == expected.map { $0 * 3 })
            expected.removeAll()
        }
        #expect(a.consumer.pointee > 1000)
    }

    /// The benchmarks' delivery floor stamps every record 0: they still all come out.
    @Test func recordsStampedAlikeComeOutRingAfterRing() {
        let a = FakeRing(size: 4096), b = FakeRing(size: 4096)
        a.append(tag: 1, stamp: 0); a.append(tag: 2, stamp: 0)
        b.append(tag: 3, stamp: 0)
        #expect(drain([a, b], before: .max).map(\.tag) == [1, 2, 3])
        #expect(drain([a, b], before: .max).isEmpty)
    }

    @Test func consumerPositionsArePublishedDuringALongDrain() {
        // Publishing only at the end would let a full ring refuse records for a whole drain.
        let a = FakeRing(size: 1 << 20)
        for s in 0..<4000 { a.append(tag: UInt64(s), stamp: UInt64(s) + 1, length: 56) }
        var seenPublished: UInt64 = 0
        let merge = RingMerge(rings: [a.memory], timestampOffset: 8)
        merge.drain(before: .max) { _ in seenPublished = max(seenPublished, a.consumer.pointee) }
        #expect(seenPublished >= 64 << 10 && seenPublished < a.producer.pointee)
        #expect(a.consumer.pointee == a.producer.pointee)
    }
}
