import GmonExporters
import Testing
@testable import GoroutineTracker

/// A resolver that names sites after the raw PCs and counts how often it is asked.
final class FakeResolver: SiteResolver {
    var calls = 0
    var forgotten: [UInt32] = []
    func site(for c: Creation) -> CreationSite {
        calls += 1
        return CreationSite(function: "f\(c.startPC)", createdBy: "g\(c.goPC)", stack: c.stack.map { "s\($0)" })
    }
    func forget(pid: UInt32) { forgotten.append(pid) }
}

func create(_ pid: UInt32, _ goid: UInt64, at t: UInt64, start: UInt64 = 1, go: UInt64 = 2, stack: [UInt64] = [9]) -> Event {
    .create(Creation(pid: pid, goid: goid, parentGoid: 1, timeNs: t, startPC: start, goPC: go, stack: stack))
}

@Suite struct TrackerTests {
    @Test func pairsByPidAndGoid() {
        let r = FakeResolver()
        let t = Tracker(resolver: r)
        t.handle(create(100, 7, at: 1_000))
        t.handle(create(200, 7, at: 2_000))
        // The same goid exiting in another process must not pair with pid 100's goroutine.
        if case .exited(_, let lifetime) = t.handle(.exit(pid: 200, goid: 7, timeNs: 2_500)) {
            #expect(lifetime == 500)
        } else { Issue.record("exit not paired") }
        #expect(t.liveCount(pid: 100) == 1 && t.liveCount(pid: 200) == 0)
        if case .exited(_, let lifetime) = t.handle(.exit(pid: 100, goid: 7, timeNs: 11_000)) { #expect(lifetime == 10_000) }
        #expect(t.sites.count == 1 && t.sites[0].created == 2 && t.sites[0].exited == 2 && t.sites[0].lifetimeSumNs == 10_500)
    }

    @Test func exitsOfUnseenGoroutinesAreCountedNotPaired() {
        let t = Tracker(resolver: FakeResolver())
        guard case .unpairedExit = t.handle(.exit(pid: 1, goid: 99, timeNs: 5)) else { Issue.record("paired"); return }
        #expect(t.unpairedExits == 1)
        #expect(t.sites.isEmpty)
    }

    @Test func processExitClosesOutAndStartsClean() {
        let r = FakeResolver()
        let t = Tracker(resolver: r)
        for g in 1...5 { t.handle(create(42, UInt64(g), at: 10)) }
        t.handle(.exit(pid: 42, goid: 1, timeNs: 20))
        guard case .processEnded(_, let closed) = t.handle(.processExit(pid: 42, timeNs: 30)) else { Issue.record(); return }
        #expect(closed == [0: 4])
        #expect(t.sites[0].live == 0 && t.sites[0].closedByProcessExit == 4)
        #expect(r.forgotten == [42])
        // A new process reusing the pid: its goid 2 is a new goroutine, resolved afresh.
        let before = r.calls
        t.handle(create(42, 2, at: 40))
        #expect(r.calls == before + 1)
        #expect(t.liveCount(pid: 42) == 1)
        guard case .exited(_, let lt) = t.handle(.exit(pid: 42, goid: 2, timeNs: 45)) else { Issue.record(); return }
        #expect(lt == 5)
    }

    @Test func stacksAreResolvedOncePerDistinctStack() {
        let r = FakeResolver()
        let t = Tracker(resolver: r)
        for g in 0..<1000 { t.handle(create(1, UInt64(g), at: 1, stack: [UInt64(g % 3)])) }
        #expect(r.calls == 3)
        #expect(t.sites.count == 3)
        #expect(t.sites.map(\.created).reduce(0, +) == 1000)
    }

    @Test func differentRawStacksWithSameLabelsShareASite() {
        final class Coarse: SiteResolver {
            func site(for c: Creation) -> CreationSite {
                CreationSite(function: "main.worker", createdBy: "main.main (main.go:1)", stack: [])
            }
            func forget(pid: UInt32) {}
        }
        let t = Tracker(resolver: Coarse())
        t.handle(create(1, 1, at: 1, stack: [1]))
        t.handle(create(1, 2, at: 1, stack: [2]))
        #expect(t.sites.count == 1 && t.sites[0].created == 2)
    }

    @Test func summaryShowsSitesAndLosses() {
        let t = Tracker(resolver: FakeResolver())
        t.handle(create(1, 1, at: 0))
        t.handle(.exit(pid: 1, goid: 1, timeNs: 2_000_000))
        let s = Summary.render(tracker: t, losses: .init(ringBufferFull: (2, 1, 0), failedReads: 0, failedStacks: 1, processMapFull: 0, undecodable: 0))
        #expect(s.contains("1 goroutines created, 1 exited, 0 still live"))
        #expect(s.contains("2ms"))
        #expect(s.contains("ring buffer full 3 (creations 2, exits 1, process exits 0)"))
    }
}
