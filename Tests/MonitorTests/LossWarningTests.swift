import Monitor
import Testing

/// The warning given while gmon runs when events begin to be lost (synthetic counters and
/// read times; the end-to-end test of a real storm is ReliabilityTests').
@Suite struct LossWarningTests {
    let s: UInt64 = 1_000_000_000
    let ms: UInt64 = 1_000_000

    @Test func nothingLostSaysNothing() {
        var w = LossWarning(ringBytes: 4 << 20)
        for t in 1...30 {
            w.read(gapNs: 20 * ms, fullest: 0.1)
            #expect(w.check(losses: ["ringbuf_full": 0, "read_failed": 7], nowNs: UInt64(t) * s) == nil)
        }
    }

    @Test func theFirstLossIsSaidAtOnceThenAtMostEveryInterval() throws {
        var w = LossWarning(ringBytes: 4 << 20, intervalSeconds: 10)
        #expect(w.check(losses: ["ringbuf_full": 0], nowNs: 1 * s) == nil)
        w.read(gapNs: 20 * ms, fullest: 1)
        let saidFirst = w.check(losses: ["ringbuf_full": 120], nowNs: 2 * s)
        let first = try #require(saidFirst)
        #expect(first.hasPrefix("gmon: warning: 120 events lost (ringbuf_full 120)"), "\(first)")
        // More within the interval: counted for the next warning, not said now.
        #expect(w.check(losses: ["ringbuf_full": 150], nowNs: 5 * s) == nil)
        #expect(w.check(losses: ["ringbuf_full": 200, "scratch_busy": 3], nowNs: 11 * s) == nil)
        let saidSecond = w.check(losses: ["ringbuf_full": 200, "scratch_busy": 3], nowNs: 12 * s)
        let second = try #require(saidSecond)
        #expect(second.hasPrefix("gmon: warning: 83 events lost since the last warning (ringbuf_full 80, scratch_busy 3)"), "\(second)")
        #expect(second.contains("preempted"))
        // Nothing new since: nothing more to say, however long.
        #expect(w.check(losses: ["ringbuf_full": 200, "scratch_busy": 3], nowNs: 40 * s) == nil)
    }

    /// The advice follows the numbers: a read 300 ms after the one before is a late reader;
    /// reads on time with a ring found full are a burst larger than the rings.
    @Test func aLateReaderIsToldFromRingsTooSmall() throws {
        var late = LossWarning(ringBytes: 1 << 20)
        late.read(gapNs: 20 * ms, fullest: 0.3)
        late.read(gapNs: 300 * ms, fullest: 1)
        late.read(gapNs: 21 * ms, fullest: 0.2)
        let saidL = late.check(losses: ["ringbuf_full": 5], nowNs: 3 * s)
        let l = try #require(saidL)
        #expect(l.contains("the longest time between two reads of the rings was 300 ms"), "\(l)")
        #expect(l.contains("the fullest ring 100% full when read"), "\(l)")
        #expect(l.contains("fell behind") && l.contains("--ring-buffer-mb (1 MiB per CPU now)"), "\(l)")

        var burst = LossWarning(ringBytes: 256 << 10)
        burst.read(gapNs: 20 * ms, fullest: 0.97)
        burst.read(gapNs: 3 * ms, fullest: 1)
        let saidB = burst.check(losses: ["ringbuf_full": 5], nowNs: 3 * s)
        let b = try #require(saidB)
        #expect(b.contains("was 20 ms"), "\(b)")
        #expect(b.contains("filled between reads that came on time") && b.contains("(256 KiB per CPU now)"), "\(b)")
        #expect(!b.contains("fell behind"))
    }

    /// The numbers describe the time the losses began in, not a slow read long before.
    @Test func quietSecondsForgetOldReadTimes() throws {
        var w = LossWarning(ringBytes: 4 << 20)
        w.read(gapNs: 900 * ms, fullest: 0.5)   // a pause long before, nothing lost
        #expect(w.check(losses: [:], nowNs: 1 * s) == nil)
        w.read(gapNs: 20 * ms, fullest: 1)
        let saidText = w.check(losses: ["ringbuf_full": 1], nowNs: 2 * s)
        let text = try #require(saidText)
        #expect(text.hasPrefix("gmon: warning: 1 event lost (ringbuf_full 1)"), "\(text)")
        #expect(text.contains("was 20 ms") && !text.contains("fell behind"), "\(text)")
    }
}
