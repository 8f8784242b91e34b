import Foundation
import Testing
import TestSupport

/// Logs as a pipeline reads them: with --log-format json every line gmon writes, on stdout and
/// on stderr, is one JSON object; stacks are arrays of frames; --stack-depth bounds them.
extension EndToEnd {
    @Suite struct JSONLogTests {
        /// gmon watching one run of the fixture with `flags`, stopped.
        static func watchOneRun(_ flags: [String]) throws -> GmonProcess {
            let path = Fixtures.binary("1.25.5", "normal")
            let gmon = try GmonProcess([path, "--log-level", "debug"] + flags)
            try gmon.waitUntilAttached()
            let fixture = try FixtureProcess(path, [])
            #expect(fixture.finish().status == 0)
            try gmon.waitForOutput("process exited")
            #expect(try gmon.stop() == 0)
            return gmon
        }

        static func objects(_ text: String, _ stream: String) -> [[String: Any]] {
            text.split(separator: "\n").compactMap { line in
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    Issue.record("a \(stream) line is not a JSON object: \(line)")
                    return nil
                }
                return o
            }
        }

        @Test func everyLineIsJSONAndStacksAreArraysOfFrames() throws {
            let gmon = try Self.watchOneRun(["--log-format", "json"])
            let lines = Self.objects(gmon.stdout, "stdout")
            let created = lines.filter { $0["msg"] as? String == "goroutine is created" }
            #expect(created.count >= 1000, "\(lines.count) lines")
            for line in created {
                guard let stack = line["stack"] as? [[String: Any]], !stack.isEmpty else {
                    Issue.record("no stack array: \(line)")
                    break
                }
                #expect(stack.allSatisfy { $0["function"] is String && $0["file"] is String && $0["line"] is Int }, "\(stack)")
                #expect(!line.keys.contains { $0.hasPrefix("stack.") })
            }
            #expect(created.contains { (($0["stack"] as? [[String: Any]])?.first?["file"] as? String)?.hasSuffix("/testdata/fixtures/goroutines/main.go") == true },
                    "the frames carry the source file's path")

            // gmon's own lines: the start-up line, the summary, its cost, each an object {time, level, msg}.
            let own = Self.objects(gmon.rawStderr, "stderr")
            #expect(own.count >= 5, "\(gmon.rawStderr)")
            #expect(own.allSatisfy { $0["time"] is String && ["INFO", "WARN", "ERROR"].contains($0["level"] as? String ?? "") && $0["msg"] is String }, "\(gmon.rawStderr)")
            let msgs = own.compactMap { $0["msg"] as? String }
            #expect(msgs.contains { $0.hasPrefix("gmon: watching ") } && msgs.contains { $0.hasPrefix("gmon summary: ") } && msgs.contains { $0.hasPrefix("gmon: own cost: ") },
                    "\(msgs)")

            // A usage error in JSON mode is one JSON object too.
            let bad = try BadInputTests.gmon(["--log-format", "json", "--max-sites", "0", "--path", Fixtures.binary("1.25.5", "normal")])
            #expect(bad.status != 0)
            let badLines = Self.objects(bad.stderr, "stderr")
            #expect(badLines.count == 1 && badLines.first?["level"] as? String == "ERROR" && (badLines.first?["msg"] as? String)?.contains("--max-sites") == true, "\(bad.stderr)")
            let failed = try BadInputTests.gmon(["--log-format", "json", "/nonexistent/app"])
            let failedLines = Self.objects(failed.stderr, "stderr")
            #expect(failed.status != 0 && failedLines.count == 1 && failedLines.first?["level"] as? String == "ERROR", "\(failed.stderr)")
        }

        /// --stack-depth 2: no line has more than two frames, in either format.
        @Test func stackDepthBoundsTheFrames() throws {
            let json = try Self.watchOneRun(["--log-format", "json", "--stack-depth", "2"])
            let stacks = Self.objects(json.stdout, "stdout").compactMap { $0["stack"] as? [[String: Any]] }
            #expect(stacks.count >= 1000)
            #expect(stacks.allSatisfy { $0.count <= 2 } && stacks.contains { $0.count == 2 }, "\(stacks.map(\.count).max() ?? -1) frames")
            let logfmt = try Self.watchOneRun(["--stack-depth", "2"])
            let created = logfmt.stdout.split(separator: "\n").filter { $0.contains("msg=\"goroutine is created\"") }
            #expect(created.count >= 1000)
            #expect(created.allSatisfy { !$0.contains(" stack.2=") } && created.contains { $0.contains(" stack.1=") })
            let bad = try BadInputTests.gmon(["--path", Fixtures.binary("1.25.5", "normal"), "--stack-depth", "-1"])
            BadInputTests.expectClearError(bad, "--stack-depth")
        }
    }
}
