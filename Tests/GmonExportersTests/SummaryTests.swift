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
        let s = Summary.render(tracker: t, losses: losses())
        let rows = s.split(separator: "\n").filter { $0.hasSuffix("f1  <-  g2") }
        #expect(rows.count == 1 && rows.first?.split(separator: " ").prefix(4) == ["3", "1", "2", "4ms"], "\(s)")
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
