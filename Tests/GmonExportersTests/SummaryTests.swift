import GmonExporters
import GmonModel
import GoroutineTracker
import Testing

/// The summary of a tracker fed synthetic events: sites named after their raw PCs.
@Suite struct SummaryTests {
    final class PCNames: SiteResolver {
        func site(for c: Creation) -> CreationSite {
            CreationSite(function: "f\(c.startPC)", createdBy: .note("g\(c.goPC)"), stack: c.stack.map { .note("s\($0)") })
        }
        func forget(pid: UInt32) {}
    }

    func creation(_ goid: UInt64, at t: UInt64, g: UInt64? = nil, stack: [UInt64] = [9]) -> Event {
        .create(Creation(pid: 1, goid: goid, g: g ?? 0xc000_0000_00 + goid * 448, parentGoid: 1, timeNs: t, startPC: 1, goPC: 2, stack: stack))
    }

    func exit(_ goid: UInt64, at t: UInt64, g: UInt64? = nil) -> Event {
        .exit(pid: 1, g: g ?? 0xc000_0000_00 + goid * 448, goid: 0, timeNs: t)
    }

    func losses(ringFull: (UInt64, UInt64, UInt64) = (0, 0, 0), failedStacks: UInt64 = 0) -> Summary.Losses {
        .init(ringBufferFull: ringFull, failedReads: 0, failedStacks: failedStacks, processMapFull: 0, undecodable: 0)
    }

    @Test func sitesAndLosses() {
        let t = Tracker(resolver: PCNames())
        t.handle(creation(1, at: 0))
        t.handle(exit(1, at: 2_000_000))
        let s = Summary.render(tracker: t, losses: losses(ringFull: (2, 1, 0), failedStacks: 1))
        #expect(s.contains("1 goroutines created, 1 exited, 0 still live"))
        #expect(s.contains("2ms"))
        #expect(s.contains("ring buffer full 3 (creations 2, exits 1, process exits 0)"))
    }

    /// Rows that look alike (stacks differing only below what a row shows) are one row.
    @Test func rowsThatLookAlikeAreMerged() {
        let t = Tracker(resolver: PCNames())
        t.handle(creation(1, at: 0, stack: [9, 1]))
        t.handle(creation(2, at: 0, stack: [9, 2]))
        t.handle(creation(3, at: 0, stack: [9, 2]))
        t.handle(exit(3, at: 4_000_000))
        #expect(t.sites.count == 2)
        let s = Summary.render(tracker: t, losses: losses(), nowNs: 3_000_000_000)
        let rows = s.split(separator: "\n").filter { $0.hasSuffix("f1  <-  g2") }
        #expect(rows.count == 1 && rows.first?.split(separator: " ").prefix(6) == ["3", "1", "2", "3.0s", "0", "4ms"], "\(s)")
    }

    func creation(_ goid: UInt64, site: UInt64, at t: UInt64, pid: UInt32 = 1) -> Event {
        .create(Creation(pid: pid, goid: goid, g: 0xc000_0000_00 + goid * 448, parentGoid: 1, timeNs: t, startPC: site, goPC: site, stack: [9]))
    }

    /// The summary as SIGUSR1 prints it while gmon runs: a leaking site with few creations
    /// comes first (rows by live goroutines) with the age of its oldest, though 20 busier
    /// sites have none live; those past the row limit are one line, which says none is live.
    @Test func aLeakIsOnTopWhateverItsCreations() {
        let t = Tracker(resolver: PCNames(), gStride: 448)
        var goid: UInt64 = 1
        for site in 100..<120 {
            for _ in 0..<50 {
                t.handle(creation(goid, site: UInt64(site), at: 1_000))
                t.handle(exit(goid, at: 2_000))
                goid += 1
            }
        }
        for i in 0..<3 { t.handle(creation(goid + UInt64(i), site: 7, at: 5_000_000_000 + UInt64(i))) }
        let s = Summary.render(tracker: t, losses: losses(), maxRows: 5, nowNs: 65_000_000_000)
        let lines = s.split(separator: "\n")
        #expect(lines[1].hasPrefix("CREATED  EXITED   LIVE    OLDEST   CLOSED  AVG LIFE"), "\(s)")
        #expect(lines[2].split(separator: " ").prefix(5) == ["3", "0", "3", "60.0s", "0"] && lines[2].hasSuffix("f7  <-  g7"), "the leak first: \(s)")
        #expect(lines.contains("… and 16 more creation sites, none with live goroutines"), "\(s)")
    }

    /// Rows whose goroutines ended with their process say so (CLOSED, with a legend): created
    /// 2, exited 0, live 0 would read as a bug otherwise.
    @Test func goroutinesClosedByTheirProcessAreExplained() {
        let t = Tracker(resolver: PCNames(), gStride: 448)
        t.handle(creation(1, site: 5, at: 100))
        t.handle(creation(2, site: 5, at: 200))
        t.handle(.processExit(pid: 1, timeNs: 300))
        let s = Summary.render(tracker: t, losses: losses(), nowNs: 1_000)
        let row = s.split(separator: "\n").first { $0.hasSuffix("f5  <-  g5") }
        #expect(row?.split(separator: " ").prefix(5) == ["2", "0", "0", "-", "2"], "\(s)")
        #expect(s.contains("CLOSED: goroutines still live when their process exited or ran exec"), "\(s)")
    }

    /// A g reused while live: the earlier goroutine's exit was lost, and the summary says so.
    @Test func exitsFoundLostByReuseAreReported() {
        let t = Tracker(resolver: PCNames(), gStride: 448)
        t.handle(creation(10, at: 100, g: 0xc000_1234_00))
        t.handle(creation(11, at: 200, g: 0xc000_1234_00))
        t.handle(exit(11, at: 250, g: 0xc000_1234_00))
        let s = Summary.render(tracker: t, losses: losses(ringFull: (0, 1, 0)))
        #expect(s.contains("2 goroutines created, 1 exited, 0 still live, 0 exits of goroutines created before gmon attached, 1 goroutines closed when their g was reused (exit lost)"), "\(s)")
    }
}
