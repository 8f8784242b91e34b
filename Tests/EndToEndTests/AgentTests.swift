import Foundation
import Testing
import TestSupport

/// `gmon --all` on the host: many programs of many Go releases at once, a program that
/// execs another, and programs it must leave alone.
extension EndToEnd { @Suite(.serialized) struct AgentTests {
    /// Copies of fixtures under names of their own (the exe label), in a scratch directory.
    static func executables(_ pairs: [(String, String)], in dir: URL) throws -> [(name: String, path: String)] {
        try pairs.map { version, mode in
            let name = "g\(version.replacingOccurrences(of: ".", with: ""))-\(mode)"
            let path = dir.appendingPathComponent(name).path
            try FileManager.default.copyItem(atPath: Fixtures.binary(version, mode), toPath: path)
            return (name, path)
        }
    }

    /// 50 processes of 10 executables (Go 1.19 to 1.27, normal and stripped), 25 started
    /// before gmon and 25 after: every (executable, site) count equals the sum of its
    /// processes' truths; each executable is attached once, whatever its number of processes.
    /// A non-Go program started meanwhile is left alone, without a note.
    @Test func fiftyProcessesOfTenExecutables() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-agent-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let versions = Fixtures.toolchains.map(\.version)
        var pairs = versions.map { ($0, "normal") }
        for v in versions.reversed() where pairs.count < 10 { pairs.append((v, "stripped")) }
        let exes = try Self.executables(Array(pairs.prefix(10)), in: dir)
        #expect(exes.count == 10)
        let args = ["-a", "20", "-b", "4", "-c", "2", "-wait-stdin"]
        var running: [(exe: String, process: FixtureProcess)] = []
        for (i, e) in exes.enumerated() {
            for _ in 0..<(i % 2 == 0 ? 3 : 2) { running.append((e.name, try FixtureProcess(e.path, args))) }
        }
        #expect(running.count == 25)
        for r in running { _ = r.process.waitForLine("ready") }
        let gmon = try GmonProcess(["--all", "--exe", "g1*", "--log-level", "warn", "--snapshot-interval", "0"])
        try gmon.waitForStderr("gmon: watching every Go program")
        #expect(gmon.stderr.components(separatedBy: "gmon: watching \(dir.path)/").count - 1 == 10, "each executable attached once: \(gmon.stderr)")
        let url = try MetricsTests.metricsURL(gmon)
        // 25 more, and a program that is not Go.
        let notGo = Process()
        notGo.executableURL = URL(fileURLWithPath: "/bin/sleep")
        notGo.arguments = ["30"]
        try notGo.run()
        defer { notGo.terminate() }
        for (i, e) in exes.enumerated() {
            for _ in 0..<(i % 2 == 0 ? 2 : 3) { running.append((e.name, try FixtureProcess(e.path, args))) }
        }
        #expect(running.count == 50)
        for r in running.dropFirst(25) { _ = r.process.waitForLine("ready") }
        var truth: [String: (created: Int, exited: Int)] = [:]
        for r in running {
            r.process.send("go")
            for t in Truth.parse(r.process.waitForLine("done")) {
                let v = truth["\(r.exe) \(t.function)"] ?? (0, 0)
                truth["\(r.exe) \(t.function)"] = (v.created + t.created, v.exited + t.exited)
            }
        }
        #expect(truth.count == 30)
        var problems: [String] = []
        let end = Date().addingTimeInterval(15)
        repeat {
            let got = siteCounts(by: ["exe", "function"], try MetricsTests.curl(["http://\(url)/metrics"]))
            problems = truth.compactMap { k, v in
                got[k].map { $0.created == v.created && $0.exited == v.exited } == true ? nil : "\(k): gmon \(got[k].map { "\($0.created)/\($0.exited)" } ?? "none"), truth \(v.created)/\(v.exited)"
            }
            if problems.isEmpty { break }
            usleep(250_000)
        } while Date() < end
        #expect(problems.isEmpty, "per-executable counts: \(problems.sorted().joined(separator: "; "))")
        for r in running { r.process.send("exit"); _ = r.process.finish() }
        #expect(gmon.stderr.components(separatedBy: "gmon: watching \(dir.path)/").count - 1 == 10, "no executable attached twice: \(gmon.stderr)")
        #expect(!gmon.stderr.contains("sleep"), "a program that is not Go gets no note: \(gmon.stderr)")
        #expect(try gmon.stop() == 0)
        #expect(gmon.stderr.contains("lost events: ring buffer full 0 "), "\(gmon.stderr)")
    }

    /// A long-running agent: three rounds of four executables (2,000 creation sites each)
    /// that start, run and end. Each round's series go after --stale-after, and gmon's memory
    /// comes back: after every round it is within a few MB of what it was before the first
    /// (what it holds per executable, site and stack is freed with them), and at least 10 MB
    /// of what each round took is given back.
    @Test func memoryReturnsToItsBaselineWhenTargetsAreGone() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-baseline-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let many = Fixtures.root.appendingPathComponent("manysites").path
        let exes = try ["a", "b", "c", "d"].map { n -> String in
            let p = dir.appendingPathComponent("gmbase-\(n)").path
            try FileManager.default.copyItem(atPath: many, toPath: p)
            return p
        }
        // The shipped (release) binary: a debug build's own allocations would be measured.
        let gmon = try GmonProcess(["--all", "--exe", "gmbase-*", "--log-level", "warn", "--stale-after", "1", "--max-sites", "10000"],
                                   executable: try GmonProcess.distExecutable())
        try gmon.waitForStderr("gmon: watching every Go program")
        let url = try MetricsTests.metricsURL(gmon)
        func rssMB() -> Double {
            let status = (try? String(contentsOfFile: "/proc/\(gmon.process.processIdentifier)/status", encoding: .utf8)) ?? ""
            let kb = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.flatMap { Double($0.split(separator: " ")[1]) } ?? 0
            return kb / 1024
        }
        func siteSeries() throws -> Int {
            try MetricsTests.curl(["http://\(url)/metrics"]).split(separator: "\n").filter { $0.hasPrefix("gmon_goroutines_created_total{") }.count
        }
        usleep(1_000_000)
        _ = try siteSeries()   // the first scrape's own buffers count in the baseline
        let baseline = rssMB()
        var after: [Double] = [], peaks: [Double] = []
        for round in 1...3 {
            let programs = try exes.map { try FixtureProcess($0, []) }
            for p in programs { _ = p.waitForLine("ready") }
            for p in programs { p.send("go"); _ = p.waitForLine("done") }
            var series = 0
            let seen = Date().addingTimeInterval(10)
            repeat { series = try siteSeries(); if series < 8_000 { usleep(200_000) } } while series < 8_000 && Date() < seen
            #expect(series >= 8_000, "round \(round): \(series) site series while the four programs run")
            peaks.append(rssMB())
            for p in programs { p.send("exit"); _ = p.finish() }
            let end = Date().addingTimeInterval(20)
            repeat { usleep(250_000); series = try siteSeries() } while series > 0 && Date() < end
            #expect(series == 0, "round \(round): \(series) series left after --stale-after 1")
            usleep(1_500_000)
            after.append(rssMB())
        }
        let summary = "baseline \(Int(baseline)) MB, while watching \(peaks.map { Int($0) }) MB, after each round \(after.map { Int($0) }) MB"
        print("memory: \(summary)")
        // Measured (release build, as shipped): baseline 45 MB, while watching 74–82 MB, after
        // each round 50–62 MB (e.g. 75, 81, 82 → 51, 61, 62). What stays follows the largest
        // scrape (8,000 series, ~20 MB of text, every 250 ms here), the allocator's high-water
        // mark, not the targets: scraped once a round, 43 MB → 48, 49, 49, 50, 51 over five.
        // Without freeing the gone executables' sites, 2,000 series are left each round.
        #expect(after.allSatisfy { $0 <= baseline + 30 }, "gmon's memory after its targets are gone: \(summary)")
        #expect(zip(peaks, after).allSatisfy { $0.1 <= $0.0 - 10 }, "gmon's memory is not given back when its targets go: \(summary)")
        #expect(peaks.allSatisfy { $0 >= baseline + 10 }, "the rounds should hold memory while they run (else this test shows nothing): \(summary)")
        #expect(try gmon.stop() == 0)
    }

    /// A Go program that execs another Go program: the first image's goroutines end with the
    /// exec (one "process ran exec" line), the second executable is attached when the kernel
    /// reports the exec, and its counts are exact.
    @Test func aGoProgramThatExecsAnother() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-exec-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let exes = try Self.executables([("1.21.13", "normal"), ("1.27.3", "pie")], in: dir)
        let gmon = try GmonProcess(["--all", "--exe", "g1*", "--log-format", "json"])
        try gmon.waitForStderr("gmon: watching every Go program")
        let url = try MetricsTests.metricsURL(gmon)
        let p = try FixtureProcess(exes[0].path, ["-wait-stdin", "-hold", "4", "-exec", exes[1].path, "-exec-args", "-a 30 -b 5 -c 2 -wait-stdin"])
        _ = p.waitForLine("ready")
        try gmon.waitForStderr("gmon: watching \(exes[0].path)")
        p.send("hold and exec")
        _ = p.waitForLine("ready")
        try gmon.waitForStderr("gmon: watching \(exes[1].path)")
        p.send("go")
        let truths = Truth.parse(p.waitForLine("done"))
        #expect(truths.count == 3)
        var problems: [String] = []
        let end = Date().addingTimeInterval(10)
        repeat {
            let got = siteCounts(by: ["exe", "function"], try MetricsTests.curl(["http://\(url)/metrics"]))
            problems = truths.compactMap { t in
                let g = got["\(exes[1].name) \(t.function)"]
                return g.map { $0.created == t.created && $0.exited == t.exited } == true ? nil : "\(t.function): gmon \(g.map { "\($0.created)/\($0.exited)" } ?? "none"), truth \(t.created)/\(t.exited)"
            }
            if problems.isEmpty { break }
            usleep(200_000)
        } while Date() < end
        #expect(problems.isEmpty, "the exec'd program's counts: \(problems.joined(separator: "; "))")
        p.send("exit")
        _ = p.finish()
        #expect(try gmon.stop() == 0)
        let execLines = gmon.events.filter { ($0["msg"] as? String) == "process ran exec" && ($0["pid"] as? Int) == Int(p.process.processIdentifier) }
        #expect(execLines.count == 1, "one exec line for the first image: \(gmon.stdout.suffix(1500))")
    }
} }
