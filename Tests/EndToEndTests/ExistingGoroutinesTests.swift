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
    
        /// The README's leak alert: valid for promtool, and (its 10 minutes made 2 seconds) it
        /// finds the blocked pool in a real Prometheus scraping gmon's snapshot gauges. What the
        /// expression returned is recorded in the test's output (the series and its value): one
        /// series, the pool's function, its status, 200 goroutines, and nothing else (gmon's
        /// own goroutines and the program's runtime ones stay out).
        @Test func theReadmesLeakAlertFindsABlockedPool() throws {
            let readme = try String(contentsOfFile: Fixtures.root.deletingLastPathComponent().appendingPathComponent("README.md").path, encoding: .utf8)
            guard let a = readme.range(of: "<!-- leak-alert -->\n```yaml\n"), let b = readme.range(of: "```\n<!-- /leak-alert -->") else {
                Issue.record("the README has no leak alert between its markers"); return
            }
            let rules = String(readme[a.upperBound..<b.lowerBound])
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-rules-\(UUID().uuidString).yml").path
            try rules.write(toFile: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let check = try run("/usr/bin/promtool", ["check", "rules", file])
            #expect(check.contains("SUCCESS: 1 rules found"), "\(check)")
            let expr = try #require(rules.range(of: "expr: |\n").map { r in
                rules[r.upperBound...].split(separator: "\n").prefix(3).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
            })
            let fixture = try GoroutinesCommandTests.blocked("1.25.5", "normal", ["-pool", "200"])
            let gmon = try GmonProcess(["--pid", String(fixture.process.processIdentifier), "--snapshot-interval", "1"])
            try gmon.waitUntilAttached()
            let (prom, listen) = try MetricsTests.startPrometheus(target: try MetricsTests.metricsURL(gmon))
            defer { prom.terminate(); prom.waitUntilExit() }
            let quick = expr.replacingOccurrences(of: "> 600", with: "> 2")
            #expect(quick != expr)
            var vector: [(labels: [String: String], value: Double)] = []
            let end = Date().addingTimeInterval(30)
            while vector.isEmpty && Date() < end {
                usleep(500_000)
                vector = try MetricsTests.queryVector(listen, quick)
            }
            let recording = vector.map { v in "{" + v.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ",") + "} \(v.value)" }
            print("the leak alert's expression returned: \(recording)")
            #expect(vector.count == 1 && vector.first?.value == 200, "the alert's expression in Prometheus: \(recording)")
            #expect(vector.first?.labels["function"] == "main.poolWorker" && vector.first?.labels["status"] == "chan receive"
                    && vector.first?.labels["exe"] == "blocked.normal", "the alert's series: \(recording)")
            GoroutinesCommandTests.finish(fixture)
            #expect(try gmon.stop() == 0)
        }
    }
}
