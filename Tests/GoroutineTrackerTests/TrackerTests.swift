import GmonModel
import Testing
@testable import GoroutineTracker

/// A resolver that names sites after the raw PCs and counts how often it is asked.
final class FakeResolver: SiteResolver {
    var calls = 0
    var forgotten: [UInt32] = []
    func site(for c: Creation) -> CreationSite {
        calls += 1
        return CreationSite(function: "f\(c.startPC)", createdBy: .note("g\(c.goPC)"), stack: c.stack.map { .note("s\($0)") })
    }
    func forget(pid: UInt32) { forgotten.append(pid) }
}

/// A creation whose runtime.g sits at `g` (by default a distinct address per goid, as
/// heap objects of runtime.g's size would).
func create(_ pid: UInt32, _ goid: UInt64, at t: UInt64, g: UInt64? = nil, start: UInt64 = 1, go: UInt64 = 2, stack: [UInt64] = [9]) -> Event {
    .create(Creation(pid: pid, goid: goid, g: g ?? gAddress(goid), parentGoid: 1, timeNs: t, startPC: start, goPC: go, stack: stack))
}

func gAddress(_ goid: UInt64) -> UInt64 { 0xc000_0000_00 + goid * 448 }

func exit(_ pid: UInt32, _ goid: UInt64, at t: UInt64, g: UInt64? = nil) -> Event {
    .exit(pid: pid, g: g ?? gAddress(goid), goid: 0, timeNs: t)
}

@Suite struct TrackerTests {
    @Test func pairsByPidAndGAddress() {
        let r = FakeResolver()
        let t = Tracker(resolver: r, gStride: 448)
        t.handle(create(100, 7, at: 1_000))
        t.handle(create(200, 7, at: 2_000))
        // The same g address exiting in another process must not pair with pid 100's goroutine.
        if case .exited(_, let lifetime) = t.handle(exit(200, 7, at: 2_500)) {
            #expect(lifetime == 500)
        } else { Issue.record("exit not paired") }
        #expect(t.liveCount(pid: 100) == 1 && t.liveCount(pid: 200) == 0)
        if case .exited(_, let lifetime) = t.handle(exit(100, 7, at: 11_000)) { #expect(lifetime == 10_000) } else { Issue.record("exit not paired") }
        #expect(t.sites.count == 1 && t.sites[0].created == 2 && t.sites[0].exited == 2 && t.sites[0].lifetimeSumNs == 10_500)
    }

    @Test func exitsOfUnseenGoroutinesAreCountedNotPaired() {
        let t = Tracker(resolver: FakeResolver())
        guard case .unpairedExit = t.handle(exit(1, 99, at: 5)) else { Issue.record("paired"); return }
        #expect(t.unpairedExits == 1)
        #expect(t.sites.isEmpty)
    }

    @Test func processExitClosesOutAndStartsClean() {
        let r = FakeResolver()
        let t = Tracker(resolver: r)
        for g in 1...5 { t.handle(create(42, UInt64(g), at: 10)) }
        t.handle(exit(42, 1, at: 20))
        guard case .processEnded(_, let closed) = t.handle(.processExit(pid: 42, timeNs: 30)) else { Issue.record(); return }
        #expect(closed == [0: 4])
        #expect(t.sites[0].live == 0 && t.sites[0].closedByProcessExit == 4)
        #expect(r.forgotten == [42])
        // A new process reusing the pid: its goid 2 is a new goroutine, resolved afresh.
        let before = r.calls
        t.handle(create(42, 2, at: 40))
        #expect(r.calls == before + 1)
        #expect(t.liveCount(pid: 42) == 1)
        guard case .exited(_, let lt) = t.handle(exit(42, 2, at: 45)) else { Issue.record(); return }
        #expect(lt == 5)
    }

    /// The runtime reuses a g only after its goroutine exited, and that exit is in the ring
    /// before the reuse's creation: a creation on a live g means the exit was lost. The old
    /// goroutine is then no longer live, and the exit that follows pairs with the new one.
    @Test func reusedGWhileLiveMeansItsExitWasLost() {
        let t = Tracker(resolver: FakeResolver(), gStride: 448)
        let g: UInt64 = 0xc000_1234_00
        guard case .created(let s0, nil, nil) = t.handle(create(1, 10, at: 100, g: g, start: 1)) else { Issue.record(); return }
        guard case .created(_, let lostOf, _) = t.handle(create(1, 11, at: 200, g: g, start: 5)) else { Issue.record(); return }
        #expect(lostOf == s0)
        #expect(t.exitsLost == 1 && t.sites[Int(s0)].exitsLost == 1 && t.sites[Int(s0)].live == 0)
        guard case .exited(let s1, let lifetime) = t.handle(exit(1, 11, at: 250, g: g)) else { Issue.record(); return }
        #expect(s1 != s0 && lifetime == 50 && t.liveCount == 0 && t.sites[Int(s1)].live == 0)
        #expect(t.sites.map(\.created).reduce(0, +) == 2 && t.sites.map(\.exited).reduce(0, +) == 1 && t.unpairedExits == 0)
    }

    /// Neighbouring g structs (heap objects of runtime.g's size, which gmon divides their
    /// addresses by) keep distinct keys. Sizes: runtime.g in Go 1.19 … 1.27 (DWARF).
    @Test(arguments: [392, 408, 424, 432, 440, 456])
    func neighbouringGsStayDistinct(_ size: Int) {
        let base: UInt64 = 0xc000_0020_00
        let t = Tracker(resolver: FakeResolver(), gStride: size)
        for i in 0..<64 { t.handle(create(1, UInt64(i), at: 1, g: base + UInt64(i * size))) }
        #expect(t.exitsLost == 0 && t.liveCount == 64)
        for i in 0..<64 { guard case .exited = t.handle(exit(1, 0, at: 2, g: base + UInt64(i * size))) else { Issue.record(); return } }
        #expect(t.liveCount == 0)
        // A stride past the objects' size would make neighbours share keys: the test can tell.
        let wrong = Tracker(resolver: FakeResolver(), gStride: size + 8)
        for i in 0..<64 { wrong.handle(create(1, UInt64(i), at: 1, g: base + UInt64(i * size))) }
        #expect(wrong.exitsLost > 0)
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
                CreationSite(function: "main.worker", createdBy: Frame(function: "main.main", file: "/src/main.go", line: 1, inlined: false), stack: [])
            }
            func forget(pid: UInt32) {}
        }
        let t = Tracker(resolver: Coarse())
        t.handle(create(1, 1, at: 1, stack: [1]))
        t.handle(create(1, 2, at: 1, stack: [2]))
        #expect(t.sites.count == 1 && t.sites[0].created == 2)
    }

    /// An exec ends the process's goroutines like its exit; the new image starts clean.
    @Test func execClosesTheOldImage() {
        let t = Tracker(resolver: FakeResolver(), gStride: 448)
        t.handle(create(5, 1, at: 0))
        t.handle(create(5, 2, at: 0))
        guard case .processEnded(_, let closed) = t.handle(.processExec(pid: 5, timeNs: 10)) else { Issue.record(); return }
        #expect(closed.values.reduce(0, +) == 2)
        // The new image's goroutines on the same g addresses are new, not lost exits.
        t.handle(create(5, 1, at: 20))
        #expect(t.exitsLost == 0 && t.liveCount(pid: 5) == 1)
    }

    /// Exits the kernel side flags as those of lost creations are counted apart.
    @Test func exitsOfLostCreationsAreCountedApart() {
        let t = Tracker(resolver: FakeResolver(), gStride: 448)
        guard case .unpairedExit(let lost) = t.handle(.exit(pid: 1, g: gAddress(3), goid: 0, timeNs: 5, creationLost: true)) else { Issue.record(); return }
        #expect(lost)
        t.handle(exit(1, 4, at: 6))
        #expect(t.exitsOfLostCreations == 1 && t.unpairedExits == 1)
    }

    /// Past maxStacks a new stack counts under its function and created_by: counts stay exact,
    /// sites stay bounded, known stacks keep their own site.
    @Test func stacksBeyondTheBoundKeepExactCounts() {
        let t = Tracker(resolver: FakeResolver(), gStride: 448, maxStacks: 3)
        for i in 0..<10 { t.handle(create(1, UInt64(i), at: 0, stack: [UInt64(100 + i)])) }
        t.handle(create(1, 20, at: 0, stack: [100]))   // a known stack
        #expect(t.sites.count == 4 && t.stacksNotKept == 7)
        #expect(t.sites[0].created == 2 && t.sites[3].created == 7 && t.sites[3].site.stack == [Tracker.stackNotKept])
        #expect(t.sites.reduce(0) { $0 + $1.created } == 11)
    }
}

/// Goroutines read from memory at attach (seeded) and the probes' events of the same time:
/// events wait in the rings while the snapshot runs, so they come after the seeds, and the
/// time each g was read tells which goroutine an event is of.
@Suite struct SeedingTests {
    let site = CreationSite(function: "main.pool", createdBy: .note("main.main"), stack: [])
    let g: UInt64 = 0xc000_2000_00

    @Test func anExitAfterTheReadPairsWithTheSeededGoroutine() {
        let t = Tracker(resolver: FakeResolver(), gStride: 448)
        let s = t.seed(pid: 1, g: g, seenAtNs: 1000, site: site)!
        #expect(t.sites[Int(s)].isPreexisting && t.sites[Int(s)].live == 1 && t.liveCount == 1)
        guard case .exitedPreexisting(let e) = t.handle(exit(1, 0, at: 2000, g: g)) else { Issue.record("not paired"); return }
        #expect(e == s && t.sites[Int(s)].live == 0 && t.unpairedExits == 0 && t.liveCount == 0)
    }

    /// The snapshot read a goroutine created after the probes went on: its creation event
    /// (stamped before the read) replaces the seed, with its stack, and is counted once.
    @Test func aCreationBeforeTheReadIsTheSeededGoroutine() {
        let t = Tracker(resolver: FakeResolver(), gStride: 448)
        let s = t.seed(pid: 1, g: g, seenAtNs: 1000, site: site)!
        guard case .created(let c, nil, let replaced) = t.handle(create(1, 5, at: 900, g: g)) else { Issue.record(); return }
        #expect(replaced == s && t.sites[Int(s)].live == 0 && t.sites[Int(c)].live == 1 && t.liveCount == 1 && t.exitsLost == 0)
        guard case .exited(let e, _) = t.handle(exit(1, 5, at: 3000, g: g)) else { Issue.record(); return }
        #expect(e == c && t.liveCount == 0)
    }

    /// An exit stamped before the read is of an earlier goroutine on that g (created before
    /// gmon attached); the one read stays live, and its own creation replaces the seed.
    @Test func anExitBeforeTheReadIsOfAnEarlierGoroutine() {
        let t = Tracker(resolver: FakeResolver(), gStride: 448)
        let s = t.seed(pid: 1, g: g, seenAtNs: 1000, site: site)!
        guard case .unpairedExit = t.handle(exit(1, 0, at: 500, g: g)) else { Issue.record("paired with the seed"); return }
        #expect(t.unpairedExits == 1 && t.sites[Int(s)].live == 1)
        guard case .created(_, nil, s?) = t.handle(create(1, 6, at: 600, g: g)) else { Issue.record(); return }
        #expect(t.liveCount == 1 && t.sites[Int(s)].live == 0)
    }

    /// A goroutine live from its creation event and then read from memory (its process's
    /// events came first: a file detached and attached again while a new process of it ran):
    /// the event's entry stays, the read adds nothing (it crashed gmon: a count below zero).
    @Test func aReadOfAGoroutineLiveFromItsEventAddsNothing() {
        let t = Tracker(resolver: FakeResolver(), gStride: 448)
        guard case .created(let c, nil, nil) = t.handle(create(1, 8, at: 500, g: g)) else { Issue.record(); return }
        #expect(t.seed(pid: 1, g: g, seenAtNs: 1000, site: site) == nil)
        #expect(t.liveCount == 1 && t.sites[Int(c)].live == 1 && t.preexistingTotal == 0)
        guard case .exited(let e, _) = t.handle(exit(1, 8, at: 3000, g: g)) else { Issue.record("not paired with its creation"); return }
        #expect(e == c && t.liveCount == 0)
    }

    /// A creation stamped after the read on a seeded g that is still live: its exit was lost.
    @Test func aCreationAfterTheReadMeansTheSeedsExitWasLost() {
        let t = Tracker(resolver: FakeResolver(), gStride: 448)
        let s = t.seed(pid: 1, g: g, seenAtNs: 1000, site: site)!
        guard case .created(_, s?, nil) = t.handle(create(1, 7, at: 1500, g: g)) else { Issue.record(); return }
        #expect(t.exitsLost == 1 && t.sites[Int(s)].live == 0 && t.liveCount == 1)
    }
}
