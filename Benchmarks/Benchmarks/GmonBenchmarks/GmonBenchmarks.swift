import Benchmark
import Foundation
import GoBinary
import GoroutineTracker

/// The largest Go binary at hand: the `go` command of a toolchain (~15 MB).
let goCommand = ProcessInfo.processInfo.environment["GMON_BENCH_BINARY"]
    ?? "/var/cache/gmon/go/1.25.5/lib/python3.11/site-packages/go/bin/go"

/// Names every site by its entry PC: resolver cost is not what the tracker benchmark measures.
final class PCResolver: SiteResolver {
    func site(for c: Creation) -> CreationSite {
        CreationSite(function: String(c.startPC), createdBy: String(c.goPC), stack: [])
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
}
