import Foundation
import Testing
import TestSupport

/// Watch mode starts from the goroutines that already exist (read from memory after the
/// probes are attached): live from the first scrape, their exits paired with them.
extension EndToEnd {
    @Suite struct ExistingGoroutinesTests {
        @Test(arguments: ["1.25.5 pie", "1.19 stripped", "1.27.3 normal"])
        func preexistingGoroutinesAreLiveFromTheFirstScrapeAndTheirExitsPair(_ c: String) throws {
            let (version, mode) = (String(c.split(separator: " ")[0]), String(c.split(separator: " ")[1]))
            let fixture = try GoroutinesCommandTests.blocked(version, mode, ["-pool", "1000"])
            let pid = fixture.process.processIdentifier
            let gmon = try GmonProcess(["--pid", String(pid), "--log-format", "json", "--log-level", "debug"])
            try gmon.waitUntilAttached()
            #expect(gmon.stderr.contains("goroutines already running in 1 process"), "\(gmon.stderr)")
            let url = "http://\(try MetricsTests.metricsURL(gmon))/metrics"
            func samples(_ text: String, _ name: String, _ function: String) -> [Double] {
                text.split(separator: "\n").filter { $0.hasPrefix(name + "{") && $0.contains("function=\"\(function)\"") }
                    .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            }
            let first = try MetricsTests.curl([url])
            #expect(samples(first, "gmon_goroutines_live", "main.poolWorker") == [1000], "\(first)")
            #expect(first.contains("stack_0=\"(created before gmon attached: creation stack unknown)\""))
            // The pool ends: every exit pairs with a goroutine read at attach.
            fixture.send("")
            _ = fixture.waitForLine("end")
            fixture.send("")
            _ = fixture.waitForLine("pool ended")
            usleep(300_000)
            let after = try MetricsTests.curl([url])
            #expect(samples(after, "gmon_goroutines_live", "main.poolWorker") == [0], "\(after)")
            #expect(samples(after, "gmon_goroutines_exited_total", "main.poolWorker") == [1000])
            fixture.send("")
            #expect(fixture.finish().status == 0)
            try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(pid)")
            #expect(try gmon.stop() == 0)
            let summary = gmon.stderr
            #expect(summary.contains("already running when gmon attached)"), "\(summary)")
            #expect(summary.contains(" 0 exits of goroutines created before gmon attached"), "\(summary)")
            let row = summary.split(separator: "\n").first { $0.contains("main.poolWorker  <-") }
            #expect(row?.hasPrefix("(1000)   1000") == true, "\(row ?? "no row")")
            // The exits are logged with their site, and as exits of goroutines created before gmon attached.
            let exits = gmon.events.filter { $0["msg"] as? String == "goroutine is exited" && $0["function"] as? String == "main.poolWorker" && $0["created"] as? String == "before gmon attached" }
            #expect(exits.count == 1000)
        }
    }
}
