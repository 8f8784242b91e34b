import CGmonEvents
import Foundation
import GmonExporters
import GmonMetrics
import GmonModel
import Monitor
import GoroutineTracker
import Testing

/// The per-event path on records laid out as the BPF program writes them (gmon_events.h):
/// decoding, pairing, log lines and metrics together.
@Suite struct EventPipelineTests {
    final class Resolver: SiteResolver {
        func site(for c: Creation) -> CreationSite {
            CreationSite(function: "main.f\(c.startPC)", createdBy: Frame(function: "main.main", file: "main.go", line: Int(c.goPC), inlined: false), stack: c.stack.map { .note("pc\($0)") })
        }
        func forget(pid: UInt32) {}
    }

    func createRecord(pid: UInt32, goid: UInt64, g: UInt64, timeNs: UInt64, startPC: UInt64, stack: [UInt64]) -> [UInt8] {
        var e = gmon_create_event()
        e.h.type = UInt32(GMON_EVENT_CREATE.rawValue)
        e.h.tgid = pid
        e.h.goid = goid
        e.h.ktime_ns = timeNs
        e.parent_goid = 1
        e.startpc = startPC
        e.gopc = 14
        e.g = g
        e.stack_len = UInt32(stack.count)
        withUnsafeMutableBytes(of: &e.stack) { raw in for (i, pc) in stack.enumerated() { raw.storeBytes(of: pc, toByteOffset: 8 * i, as: UInt64.self) } }
        let size = MemoryLayout<gmon_create_event>.offset(of: \gmon_create_event.stack)! + 8 * stack.count
        return withUnsafeBytes(of: &e) { Array($0[..<size]) }
    }

    func exitRecord(pid: UInt32, g: UInt64, timeNs: UInt64) -> [UInt8] {
        var e = gmon_exit_event()
        e.h.type = UInt32(GMON_EVENT_EXIT.rawValue)
        e.h.tgid = pid
        e.h.ktime_ns = timeNs
        e.g = g
        return withUnsafeBytes(of: &e) { Array($0) }
    }

    func processExitRecord(pid: UInt32, timeNs: UInt64) -> [UInt8] {
        var e = gmon_exit_event()
        e.h.type = UInt32(GMON_EVENT_PROCESS_EXIT.rawValue)
        e.h.tgid = pid
        e.h.ktime_ns = timeNs
        return withUnsafeBytes(of: &e) { Array($0) }
    }

    /// exit_group stops a process's other threads asynchronously: a goroutine can pass the
    /// exit probe just after the process's exit was reported. Its exit still counts.
    @Test func exitsJustAfterTheirProcessEndedStillCount() {
        let tracker = Tracker(resolver: Resolver(), gStride: 448)
        let devNull = open("/dev/null", O_WRONLY)
        let log = LogWriter(fd: devNull, format: .logfmt, level: .debug)
        defer { log.finish(within: 10); close(devNull) }   // its writer thread writes to the fd until then
        let p = EventPipeline(tracker: tracker, metrics: nil, log: log)
        func feed(_ r: [UInt8]) { r.withUnsafeBytes { p.handle($0) } }
        let g0: UInt64 = 0xc000_2000_00, ms: UInt64 = 1_000_000
        for i in 0..<4 { feed(createRecord(pid: 9, goid: UInt64(i), g: g0 + UInt64(i) * 448, timeNs: 1 * ms, startPC: 1, stack: [7])) }
        feed(processExitRecord(pid: 9, timeNs: 100 * ms))
        feed(exitRecord(pid: 9, g: g0, timeNs: 100 * ms + 3_000))   // a dying thread, 3 µs later
        p.flush(eventTimeLimit: 105 * ms)                          // within the grace: still held
        #expect(tracker.unpairedExits == 0 && tracker.liveCount == 3)
        p.flush(eventTimeLimit: 100 * ms + EventPipeline.processExitGraceNs)
        #expect(tracker.liveCount == 0)
        let s = tracker.sites[0]
        #expect(s.created == 4 && s.exited == 1 && s.closedByProcessExit == 3 && s.lifetimeSumNs == 99 * ms + 3_000)

        // A new process reusing the pid before the grace ends: the old one ends first, so
        // the new goroutine on an old g address is not taken for a lost exit.
        for i in 0..<2 { feed(createRecord(pid: 9, goid: UInt64(i), g: g0 + UInt64(i) * 448, timeNs: 200 * ms, startPC: 1, stack: [7])) }
        feed(processExitRecord(pid: 9, timeNs: 300 * ms))
        feed(createRecord(pid: 9, goid: 1, g: g0, timeNs: 300 * ms + 50_000, startPC: 1, stack: [7]))
        #expect(tracker.exitsLost == 0 && tracker.liveCount == 1 && tracker.sites[0].closedByProcessExit == 5)
        // The last drain applies whatever is still held.
        feed(processExitRecord(pid: 9, timeNs: 400 * ms))
        p.flush()
        #expect(tracker.liveCount == 0 && tracker.sites[0].closedByProcessExit == 6)
    }

    @Test func recordsBecomeLinesCountsAndLifetimes() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-pipeline-\(UUID().uuidString)").path
        let fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0o600)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        let metrics = GoroutineMetrics(exe: "app", maxSites: 10, version: "test", goVersion: "go1.25.5")
        let tracker = Tracker(resolver: Resolver(), gStride: 448)
        let p = EventPipeline(tracker: tracker, metrics: metrics, log: LogWriter(fd: fd, format: .logfmt, level: .info))
        // Two sites, interleaved: the tracker's last-site shortcut must not mix them up.
        for i in 0..<1_000 {
            let site: UInt64 = i % 3 == 0 ? 2 : 1
            createRecord(pid: 7, goid: UInt64(i + 10), g: 0xc000_1000_00 + UInt64(i) * 448, timeNs: UInt64(i) * 1_000,
                         startPC: site, stack: [site * 100, 42]).withUnsafeBytes { p.handle($0) }
        }
        for i in 0..<1_000 where i % 2 == 0 {
            exitRecord(pid: 7, g: 0xc000_1000_00 + UInt64(i) * 448, timeNs: UInt64(i) * 1_000 + 5_000_000).withUnsafeBytes { p.handle($0) }
        }
        [UInt8](repeating: 0, count: 3).withUnsafeBytes { p.handle($0) }   // too short: counted, not decoded
        p.flush()

        #expect(p.undecodable == 1)
        #expect(tracker.liveCount == 500)
        let bySite = Dictionary(uniqueKeysWithValues: tracker.sites.map { ($0.site.function, $0) })
        #expect(bySite["main.f1"]?.created == 666 && bySite["main.f2"]?.created == 334)
        #expect(bySite["main.f1"]?.exited == 333 && bySite["main.f2"]?.exited == 167)
        #expect(bySite["main.f2"]?.lifetimeSumNs == 167 * 5_000_000)

        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1_000)
        #expect(lines[3].contains(" pid=7 goroutine_id=13 parent_goroutine_id=1 function=main.f2 created_by=\"main.main (main.go:14)\" stack.0=pc200 stack.1=pc42"))
        #expect(lines[4].contains(" goroutine_id=14 parent_goroutine_id=1 function=main.f1 "))

        let text = String(decoding: metrics.render(openMetrics: false), as: UTF8.self)
        #expect(text.contains("gmon_goroutines_created_total{exe=\"app\",function=\"main.f2\",created_by=\"main.main (main.go:14)\",stack_0=\"pc200\",stack_1=\"pc42\"} 334"))
        #expect(text.contains("gmon_goroutines_live{exe=\"app\",function=\"main.f1\",created_by=\"main.main (main.go:14)\",stack_0=\"pc100\",stack_1=\"pc42\"} 333"))
        #expect(text.contains("gmon_goroutine_lifetime_seconds_count{exe=\"app\",function=\"main.f2\",created_by=\"main.main (main.go:14)\"} 167"))
    }

    /// Sites whose stacks differ only below the frames the labels show (three by default) are one series:
    /// counts add up and the oldest age is the oldest of all (the leak alert must fire even
    /// when the last-refreshed site of the series has nothing live). Exec records close like exits.
    @Test func sitesAlikeInTheirLabelsAreOneSeries() throws {
        let devNull = open("/dev/null", O_WRONLY)
        defer { close(devNull) }
        let metrics = GoroutineMetrics(exe: "app", maxSites: 10, version: "test", goVersion: "go1.25.5")
        let tracker = Tracker(resolver: Resolver(), gStride: 448)
        let p = EventPipeline(tracker: tracker, metrics: metrics, log: LogWriter(fd: devNull, format: .logfmt, level: .warn))
        let deep: [UInt64] = [1, 2, 3, 4, 5]
        let s = UInt64(1_000_000_000)
        for i in 0..<3 { createRecord(pid: 7, goid: UInt64(i), g: 0xc000_1000_00 + UInt64(i) * 448, timeNs: s, startPC: 1, stack: deep + [6]).withUnsafeBytes { p.handle($0) } }
        for i in 3..<5 { createRecord(pid: 7, goid: UInt64(i), g: 0xc000_1000_00 + UInt64(i) * 448, timeNs: 5 * s, startPC: 1, stack: deep + [7]).withUnsafeBytes { p.handle($0) } }
        for i in 3..<5 { exitRecord(pid: 7, g: 0xc000_1000_00 + UInt64(i) * 448, timeNs: 6 * s).withUnsafeBytes { p.handle($0) } }
        p.flush()
        #expect(tracker.sites.count == 2)
        metrics.refresh(tracker: tracker, nowNs: 11 * s, losses: [:])
        let text = String(decoding: metrics.render(openMetrics: false), as: UTF8.self)
        let labels = "{exe=\"app\",function=\"main.f1\",created_by=\"main.main (main.go:14)\",stack_0=\"pc1\",stack_1=\"pc2\",stack_2=\"pc3\"}"
        #expect(text.contains("gmon_goroutines_created_total\(labels) 5"), "\(text)")
        #expect(text.contains("gmon_goroutines_live\(labels) 3.0") || text.contains("gmon_goroutines_live\(labels) 3\n"), "\(text)")
        #expect(text.contains("gmon_goroutine_oldest_live_seconds\(labels) 10.0") || text.contains("gmon_goroutine_oldest_live_seconds\(labels) 10\n"), "\(text)")
        var e = gmon_exit_event()
        e.h.type = UInt32(GMON_EVENT_PROCESS_EXEC.rawValue)
        e.h.tgid = 7
        e.h.ktime_ns = 12 * s
        withUnsafeBytes(of: &e) { p.handle($0) }
        p.flush()
        #expect(tracker.liveCount == 0 && tracker.sites[0].closedByProcessExit == 3)
    }
}
