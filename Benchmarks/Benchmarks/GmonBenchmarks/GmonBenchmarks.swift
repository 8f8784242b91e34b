import Benchmark
import Foundation
import GoBinary
import GoRuntime
import GoroutineTracker
import CGmonEvents
import GmonExporters
import GmonMetrics
import GmonModel
import Monitor
#if canImport(Glibc)
import Glibc
#endif

/// The largest Go binary at hand: the `go` command of a toolchain (~15 MB).
let goCommand = ProcessInfo.processInfo.environment["GMON_BENCH_BINARY"]
    ?? "/var/cache/gmon/go/1.25.5/lib/python3.11/site-packages/go/bin/go"

/// Names every site by its entry PC: resolver cost is not what the tracker benchmark measures.
final class PCResolver: SiteResolver {
    func site(for c: Creation) -> CreationSite {
        CreationSite(function: String(c.startPC), createdBy: .note(String(c.goPC)), stack: [])
    }
    func forget(pid: UInt32) {}
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal, .peakMemoryResident], maxDuration: .seconds(5))

    // Issue 2: load and resolve the go command (target: well under a second).
    Benchmark("load go command + runtime layout + probe sites", configuration: .init(maxIterations: 20)) { benchmark in
        for _ in benchmark.scaledIterations {
            let exe = try GoExecutable(path: goCommand)
            blackHole(try exe.runtimeLayout())
            blackHole(try exe.functionEntry("runtime.newproc1"))
        }
    }

    // PC → logical frames (with inlining), 10,000 PCs spread over the text.
    Benchmark("PC to frames, per 10k lookups", configuration: .init(scalingFactor: .one)) { benchmark in
        let exe = try GoExecutable(path: goCommand)
        let n = exe.pclntab.functionCount
        var pcs: [UInt64] = []
        for i in stride(from: 0, to: n, by: max(1, n / 10_000)) {
            let e = try exe.pclntab.entry(ofFunction: i), end = try exe.pclntab.end(ofFunction: i)
            pcs.append(e + (end - e) / 2)
        }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for pc in pcs { blackHole(try exe.pclntab.frames(at: pc)) }
        }
    }

    // Tracker: one creation and one exit per goroutine, 100 sites, steady state.
    Benchmark("tracker, per 100k create+exit pairs") { benchmark in
        let t = Tracker(resolver: PCResolver(), gStride: 448)
        let stack: [UInt64] = (0..<12).map { 0x400000 + UInt64($0) * 64 }
        var goid: UInt64 = 0
        for _ in benchmark.scaledIterations {
            for i in 0..<100_000 {
                goid += 1
                // g structs 448 bytes apart, keyed as gmon keys them (address / sizeof(g)).
                let g = 0xc000_0000_00 + goid * 448
                t.handle(.create(Creation(pid: 1, goid: goid, g: g, parentGoid: 1, timeNs: goid, startPC: UInt64(i % 100),
                                          goPC: 7, stack: stack)))
                t.handle(.exit(pid: 1, g: g, goid: 0, timeNs: goid + 1000))
            }
        }
    }

    // Issue 14: a new series costs the same however many exist (swift-prometheus copied all
    // of them per new one), and a scrape with 100,000 series.
    Benchmark("metrics: 100k new series", configuration: .init(scalingFactor: .one, maxIterations: 3)) { benchmark in
        for _ in benchmark.scaledIterations {
            let m = GoroutineMetrics(exe: "bench", maxSites: 200_000, version: "bench", goVersion: "go1.25.5")
            for i in 0..<100_000 {
                m.created(site: Int32(i), CreationSite(function: "main.worker\(i % 100)", createdBy: Frame(function: "main.spawn", file: "main.go", line: i, inlined: false),
                                                        stack: [Frame(function: "main.spawn", file: "main.go", line: i, inlined: false), Frame(function: "main.main", file: "main.go", line: 20, inlined: false)]))
            }
            m.publish()
            blackHole(m)
        }
    }
    Benchmark("metrics: scrape with 100k series", configuration: .init(scalingFactor: .one, maxIterations: 5)) { benchmark in
        let m = GoroutineMetrics(exe: "bench", maxSites: 200_000, version: "bench", goVersion: "go1.25.5")
        for i in 0..<100_000 {
            m.created(site: Int32(i), CreationSite(function: "main.worker\(i % 100)", createdBy: Frame(function: "main.spawn", file: "main.go", line: i, inlined: false),
                                                    stack: [Frame(function: "main.spawn", file: "main.go", line: i, inlined: false), Frame(function: "main.main", file: "main.go", line: 20, inlined: false)]))
        }
        m.publish()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(m.render(openMetrics: true).count) }
    }

    // Issue 14: a process's exit costs in proportion to its own state, not to every stack
    // ever seen: 100 short processes, each with one goroutine, after 100,000 distinct stacks
    // in a long-lived process (the exit used to filter every process's stack cache).
    Benchmark("tracker: 100 process exits beside 100k cached stacks", configuration: .init(scalingFactor: .one, maxIterations: 5)) { benchmark in
        let t = Tracker(resolver: PCResolver(), gStride: 448, maxStacks: 200_000)
        for i in 0..<100_000 { t.handle(.create(Creation(pid: 1, goid: UInt64(i), g: 0xc000_0000_00 + UInt64(i) * 448, parentGoid: 1, timeNs: 1, startPC: UInt64(i), goPC: 2, stack: [UInt64(i)]))) }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for p in UInt32(2)..<102 {
                t.handle(.create(Creation(pid: p, goid: 1, g: 0xc000_0000_00, parentGoid: 1, timeNs: 1, startPC: 1, goPC: 2, stack: [1])))
                t.handle(.processExit(pid: p, timeNs: 2))
            }
        }
    }

    // Log lines: one "goroutine is created" line per creation, to /dev/null (what
    // formatting costs, without the file system), a site of three frames as in make bench.
    Benchmark("log lines, per 100k creations") { benchmark in
        let fd = open("/dev/null", O_WRONLY)
        defer { close(fd) }
        let log = LogWriter(fd: fd, format: .logfmt, level: .info)
        let site = CreationSite(function: "main.main.func1", createdBy: Frame(function: "main.main", file: "main.go", line: 150, inlined: false),
                                stack: [Frame(function: "main.main", file: "main.go", line: 150, inlined: false), Frame(function: "runtime.main", file: "proc.go", line: 285, inlined: false), Frame(function: "runtime.goexit", file: "asm_amd64.s", line: 1693, inlined: false)])
        var c = Creation(pid: 15782, goid: 0, g: 0, parentGoid: 1, timeNs: 1_000_000_000, startPC: 1, goPC: 2, stack: [1, 2, 3])
        for _ in benchmark.scaledIterations {
            for _ in 0..<100_000 {
                c.goid += 1
                c.timeNs += 1700
                log.created(c, site: site, siteIndex: 0)
            }
            log.flush()
        }
    }

    // gmon's per-event path as Watch runs it: ring-buffer records → decoder → tracker →
    // metrics and log lines (to /dev/null), in make bench's shape: goroutines are created
    // in bursts of 1,000 from one site (stack of 4 PCs) and then exit; g structs are laid
    // out as Go 1.25 allocates them: sizeof(g) 440, size class 448, 18 to an 8 KiB span.
    Benchmark("pipeline (decode, track, metrics, log), per 100k goroutines") { benchmark in
        let fd = open("/dev/null", O_WRONLY)
        defer { close(fd) }
        let metrics = GoroutineMetrics(exe: "bench", maxSites: 100, version: "bench", goVersion: "go1.25.5")
        let p = EventPipeline(tracker: Tracker(resolver: PCResolver(), gStride: 440), metrics: metrics,
                              log: LogWriter(fd: fd, format: .logfmt, level: .info))
        var create = gmon_create_event()
        create.h.type = UInt32(GMON_EVENT_CREATE.rawValue)
        create.h.tgid = 4242
        create.parent_goid = 1
        create.startpc = 0x4a0000
        create.gopc = 0x4a1000
        create.probe_ip = 0x440000
        create.stack_len = 4
        withUnsafeMutableBytes(of: &create.stack) { $0.storeBytes(of: (UInt64(0x440000), UInt64(0x4a1000), UInt64(0x438000), UInt64(0x470000)), as: (UInt64, UInt64, UInt64, UInt64).self) }
        let createSize = MemoryLayout<gmon_create_event>.offset(of: \gmon_create_event.stack)! + 4 * 8
        var exit = gmon_exit_event()
        exit.h.type = UInt32(GMON_EVENT_EXIT.rawValue)
        exit.h.tgid = 4242
        func gAddress(_ i: Int) -> UInt64 { 0xc000_4000_00 + UInt64(i / 18) * 8192 + UInt64(i % 18) * 448 }
        var goid: UInt64 = 0, now: UInt64 = 1_000_000_000
        for _ in benchmark.scaledIterations {
            for _ in 0..<100 {
                for i in 0..<1_000 {
                    goid += 1; now += 1_700
                    create.h.goid = goid; create.h.ktime_ns = now; create.g = gAddress(i)
                    withUnsafeBytes(of: &create) { p.handle(UnsafeRawBufferPointer(rebasing: $0[..<createSize])) }
                }
                for i in 0..<1_000 {
                    now += 1_700
                    exit.h.ktime_ns = now; exit.g = gAddress(i)
                    withUnsafeBytes(of: &exit) { p.handle($0) }
                }
                p.flush()
            }
        }
    }
}
