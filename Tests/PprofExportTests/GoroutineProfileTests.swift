import Foundation
import GmonModel
import Testing
import TestSupport
@testable import PprofExport

/// Profiles as Go's own pprof reads them: `go tool pprof -top` and `-traces`.
@Suite struct GoroutineProfileTests {
    func goroutine(_ goid: UInt64, _ status: String, _ frames: [(String, Int)]) -> Goroutine {
        Goroutine(goid: goid, state: .waiting, status: status, waitSeconds: nil, function: frames.last?.0 ?? "?",
                  createdBy: nil, parentGoid: nil, stack: frames.map { Frame(function: $0.0, file: "/src/main.go", line: $0.1, inlined: false) },
                  stackNote: nil, isSystem: false, lockedToThread: false)
    }

    @Test func goToolPprofReadsTheProfile() throws {
        var gs: [Goroutine] = []
        for i in 0..<7 { gs.append(goroutine(UInt64(10 + i), "chan receive", [("main.worker", 12), ("main.main.func1", 30)])) }
        for i in 0..<3 { gs.append(goroutine(UInt64(30 + i), "select", [("main.poll", 40), ("main.main.func2", 31)])) }
        let bytes = try GoroutineProfile.encode(gs, executable: "/bin/app", timeNanos: 1_700_000_000_000_000_000)
        #expect(bytes.prefix(2) == [0x1f, 0x8b], "not gzip")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-\(UUID().uuidString).pb.gz").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let go = try #require(Fixtures.toolchains.last?.go)
        let top = try run(go, ["tool", "pprof", "-top", path])
        // Flat counts per leaf function: 7 and 3 goroutines, 10 in all.
        #expect(top.contains("Type: goroutine"), "\(top)")
        let rows = top.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(rows.contains { $0.first == "7" && $0.last == "main.worker" }, "\(top)")
        #expect(rows.contains { $0.first == "3" && $0.last == "main.poll" }, "\(top)")
        #expect(top.contains("of 10 total"), "\(top)")
        let traces = try run(go, ["tool", "pprof", "-traces", path])
        #expect(traces.contains("main.worker") && traces.contains("main.main.func1") && traces.contains("status:  chan receive"), "\(traces)")
        #expect(traces.components(separatedBy: "-----------+").count - 1 >= 10, "one trace per goroutine: \(traces)")
    }
}
