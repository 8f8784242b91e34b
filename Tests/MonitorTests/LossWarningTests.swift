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
            w.read(atNs: UInt64(t) * s - 20 * ms, fullest: 0.1)
            #expect(w.check(losses: ["ringbuf_full": 0, "read_failed": 7], nowNs: UInt64(t) * s, fullest: 0.1) == nil)
        }
    }

    @Test func theFirstLossIsSaidAtOnceThenAtMostEveryInterval() throws {
        var w = LossWarning(ringBytes: 4 << 20, intervalSeconds: 10)
        #expect(w.check(losses: ["ringbuf_full": 0], nowNs: 1 * s, fullest: 0) == nil)
        w.read(atNs: 2 * s - 20 * ms, fullest: 1)
        let saidFirst = w.check(losses: ["ringbuf_full": 120], nowNs: 2 * s, fullest: 0)
        let first = try #require(saidFirst)
        #expect(first.hasPrefix("gmon: warning: 120 events lost (ringbuf_full 120)"), "\(first)")
        // More within the interval: counted for the next warning, not said now.
        #expect(w.check(losses: ["ringbuf_full": 150], nowNs: 5 * s, fullest: 0) == nil)
        #expect(w.check(losses: ["ringbuf_full": 200, "scratch_busy": 3], nowNs: 11 * s, fullest: 0) == nil)
        let saidSecond = w.check(losses: ["ringbuf_full": 200, "scratch_busy": 3], nowNs: 12 * s, fullest: 0)
        let second = try #require(saidSecond)
        #expect(second.hasPrefix("gmon: warning: 83 events lost since the last warning (ringbuf_full 80, scratch_busy 3)"), "\(second)")
        #expect(second.contains("preempted"))
        // Nothing new since: nothing more to say, however long.
        #expect(w.check(losses: ["ringbuf_full": 200, "scratch_busy": 3], nowNs: 40 * s, fullest: 0) == nil)
    }

    /// The advice follows the numbers: a read 300 ms after the one before is a late reader;
    /// reads on time with a ring found full are a burst larger than the rings.
    @Test func aLateReaderIsToldFromRingsTooSmall() throws {
        var late = LossWarning(ringBytes: 1 << 20)
        for (t, fill) in [(1000, 0.0), (1020, 0.3), (1320, 1), (1341, 0.2)] { late.read(atNs: UInt64(t) * ms, fullest: fill) }
        let saidL = late.check(losses: ["ringbuf_full": 5], nowNs: 1345 * ms, fullest: 0.1)
        let l = try #require(saidL)
        #expect(l.contains("the longest time between two reads of the rings was 300 ms"), "\(l)")
        #expect(l.contains("the fullest ring 100% full when read"), "\(l)")
        #expect(l.contains("fell behind") && l.contains("--ring-buffer-mb (1 MiB per CPU now)"), "\(l)")

        var burst = LossWarning(ringBytes: 256 << 10)
        for (t, fill) in [(1000, 0.0), (1020, 0.97), (1023, 1)] { burst.read(atNs: UInt64(t) * ms, fullest: fill) }
        let saidB = burst.check(losses: ["ringbuf_full": 5], nowNs: 1030 * ms, fullest: 0.5)
        let b = try #require(saidB)
        #expect(b.contains("was 20 ms"), "\(b)")
        #expect(b.contains("filled between reads that came on time") && b.contains("(256 KiB per CPU now)"), "\(b)")
        #expect(!b.contains("fell behind"))
    }

    /// The numbers describe the time the losses began in, not a slow read long before.
    @Test func quietSecondsForgetOldReadTimes() throws {
        var w = LossWarning(ringBytes: 4 << 20)
        w.read(atNs: 100 * ms, fullest: 0)
        w.read(atNs: 1000 * ms, fullest: 0.5)   // a pause long before, nothing lost
        #expect(w.check(losses: [:], nowNs: 1000 * ms, fullest: 0) == nil)
        w.read(atNs: 1020 * ms, fullest: 1)
        let saidText = w.check(losses: ["ringbuf_full": 1], nowNs: 1030 * ms, fullest: 0)
        let text = try #require(saidText)
        #expect(text.hasPrefix("gmon: warning: 1 event lost (ringbuf_full 1)"), "\(text)")
        #expect(text.contains("was 20 ms") && !text.contains("fell behind"), "\(text)")
    }

    /// gmon not scheduled for 2 s just before its check, with no read of the rings since:
    /// the losses of that time are described by that time (measured on a starved gmon, before
    /// this: "67 ms", "0% full" for 104,171 events lost).
    @Test func aStallJustBeforeTheCheckCounts() throws {
        var w = LossWarning(ringBytes: 4 << 20)
        for t in 0...50 { w.read(atNs: UInt64(t) * 20 * ms, fullest: 0.1) }
        let said = w.check(losses: ["ringbuf_full": 104_171], nowNs: 3 * s, fullest: 1)
        let text = try #require(said)
        #expect(text.contains("was 2000 ms") && text.contains("100% full") && text.contains("fell behind"), "\(text)")
    }
}
