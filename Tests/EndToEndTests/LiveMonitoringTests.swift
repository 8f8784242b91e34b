import Foundation
import Testing
import TestSupport

/// Every end-to-end test, one at a time: the kernel checks after each test
/// must see only that test's gmon.
@Suite(.serialized) struct EndToEnd {}

/// Real BPF programs, real uprobes, real Go binaries.
extension EndToEnd { @Suite struct LiveMonitoringTests {
    /// Per-site counts of one pid from gmon's JSON log.
    struct Counts { var created = 0, exited = 0, lifetimes: [Double] = [] }

    static func counts(_ events: [[String: Any]], pid: Int32) -> [String: Counts] {
        var bySite: [String: Counts] = [:]
        var siteOf: [Int: String] = [:]
        for e in events where (e["pid"] as? Int) == Int(pid) {
            guard let msg = e["msg"] as? String, let goid = e["goroutine_id"] as? Int else { continue }
            let fn = e["function"] as? String ?? "?"
            let by = (e["created_by"] as? String ?? "?").split(separator: " ").first.map(String.init) ?? "?"
            let key = "\(fn) <- \(by)"
            if msg == "goroutine is created" {
                bySite[key, default: Counts()].created += 1
                siteOf[goid] = key
            } else if msg == "goroutine is exited", let lt = e["lifetime_seconds"] as? Double {
                #expect(siteOf[goid] == key, "exit of goroutine \(goid) attributed to another site")
                bySite[key, default: Counts()].exited += 1
                bySite[key, default: Counts()].lifetimes.append(lt)
            }
        }
        return bySite
    }

    static func checkAgainstTruth(_ truth: [Truth], _ got: [String: Counts], _ label: String) {
        #expect(truth.count >= 3, "fixture printed no ground truth")
        for t in truth {
            let c = got["\(t.function) <- \(t.createdBy)"] ?? Counts()
            #expect(c.created == t.created, "\(label) site \(t.site): created \(c.created), truth \(t.created); sites seen: \(got.keys.sorted())")
            #expect(c.exited == t.exited, "\(label) site \(t.site): exited \(c.exited), truth \(t.exited)")
            // Lifetimes come from kernel timestamps: never shorter than the sleep the
            // goroutine did; the upper bound allows for scheduling on a busy 2-core machine.
            let minimum: Double = ["A": 0.001, "B": 0.050, "D": 0.001][t.site] ?? 0
            for lt in c.lifetimes { #expect(lt >= minimum && lt < minimum + 2.0, "\(label) site \(t.site) lifetime \(lt)") }
        }
    }

    /// Runs the fixture once under a gmon started with `flags`, checks the counts, returns the stopped gmon.
    static func watchOneRun(_ c: MatrixCase, _ flags: [String], label: String, fixtureArgs: [String] = []) throws -> GmonProcess {
        let gmon = try GmonProcess(["--path", c.path, "--log-format", "json", "--log-level", "debug"] + flags)
        try gmon.waitUntilAttached()
        let fixture = try FixtureProcess(c.path, fixtureArgs)
        let (status, output) = fixture.finish()
        #expect(status == 0)
        try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(fixture.process.processIdentifier)")
        #expect(try gmon.stop() == 0)
        checkAgainstTruth(Truth.parse(output), counts(gmon.events, pid: fixture.process.processIdentifier), label)
        return gmon
    }

    @Test(arguments: Fixtures.matrix.map { MatrixCase($0.0, $0.1) })
    func exactCountsPerSite(_ c: MatrixCase) throws {
        let gmon = try Self.watchOneRun(c, [], label: c.testDescription)
        #expect(gmon.stderr.contains("gmon summary:"))
        #expect(gmon.stderr.contains("ring buffer full 0"))
        #expect(try gmonObjectsInKernel().isEmpty)
    }

    /// The classic sites (uretprobe on newproc1 reading RAX, entry probe on goexit1) count the same.
    @Test(arguments: [MatrixCase(Fixtures.toolchains[0], "pie"), MatrixCase(Fixtures.toolchains[5], "stripped")])
    func classicProbesCountTheSame(_ c: MatrixCase) throws {
        let gmon = try Self.watchOneRun(c, ["--classic-probes"], label: "classic \(c.testDescription)")
        #expect(gmon.stderr.contains("creation probe at return site in runtime.newproc1"))
        #expect(try gmonObjectsInKernel().isEmpty)
    }

    /// SIGUSR1 prints the summary so far and gmon goes on: a leaking site (3 goroutines
    /// blocked for good) is its first row, with its oldest goroutine's age; the summary at
    /// the stop follows as before.
    @Test func summaryOnSIGUSR1WithoutStopping() throws {
        let path = Fixtures.binary("1.25.5", "normal")
        let gmon = try GmonProcess(["--path", path, "--log-level", "warn"])
        try gmon.waitUntilAttached()
        let program = try FixtureProcess(path, ["-a", "40", "-b", "7", "-c", "3", "-wait-stdin"])
        _ = program.waitForLine("ready")
        program.send("go")
        let truth = Truth.parse(program.waitForLine("done"))
        usleep(300_000)
        kill(gmon.process.processIdentifier, SIGUSR1)
        try gmon.waitForStderr("gmon summary:")
        usleep(300_000)
        #expect(gmon.process.isRunning, "gmon stopped on SIGUSR1: \(gmon.stderr)")
        let lines = gmon.stderr.split(separator: "\n")
        let header = try #require(lines.firstIndex { $0.hasPrefix("CREATED") })
        let leak = try #require(truth.first { $0.function == "main.leaked" })
        let first = lines[header + 1].split(separator: " ")
        #expect(lines[header + 1].contains("main.leaked") && first.prefix(3) == ["\(leak.created)", "0", "\(leak.created)"] && first[3].hasSuffix("s"),
                "the leak is the first row, with its age: \(gmon.stderr)")
        program.send("exit")
        _ = program.finish()
        #expect(try gmon.stop() == 0)
        #expect(gmon.stderr.components(separatedBy: "gmon summary:").count == 3, "a summary on SIGUSR1 and one at the stop: \(gmon.stderr)")
    }

    /// SIGHUP stops gmon like SIGINT; a closed stdout (`gmon | head`) stops it cleanly too.
    @Test func hangupAndClosedPipe() throws {
        let path = Fixtures.binary("1.23.9", "normal")
        let gmon = try GmonProcess(["--path", path])
        try gmon.waitUntilAttached()
        #expect(try gmon.stop(SIGHUP) == 0)
        #expect(gmon.stderr.contains("gmon summary:"))

        let sh = Process()
        sh.executableURL = URL(fileURLWithPath: "/bin/sh")
        sh.arguments = ["-c", "'\(GmonProcess.executable)' --path '\(path)' 2>/dev/null | head -n 3 > /dev/null; echo \"${PIPESTATUS:-done}\""]
        try sh.run()
        usleep(1_500_000)
        let fixture = try FixtureProcess(path, ["-a", "2000"])
        _ = fixture.finish()
        let end = Date().addingTimeInterval(20)
        while sh.isRunning && Date() < end { usleep(50_000) }
        #expect(!sh.isRunning, "gmon kept running after its reader went away")
        if sh.isRunning { sh.terminate() }
        #expect(try gmonObjectsInKernel().isEmpty)
    }

    /// The earlier tool's single-dash flags keep working.
    @Test func earlierToolsFlags() throws {
        let path = Fixtures.binary("1.21.13", "stripped")
        #expect(try run(GmonProcess.executable, ["-version"]).contains("gmon "))
        let gmon = try GmonProcess(["-path", path, "-level", "debug", "-metrics", "0"])
        try gmon.waitUntilAttached()
        let fixture = try FixtureProcess(path, ["-a", "10", "-b", "2", "-c", "1"])
        _ = fixture.finish()
        try gmon.waitForOutput("msg=\"process exited\" pid=\(fixture.process.processIdentifier)")
        #expect(gmon.stdout.contains("msg=\"goroutine is exited\""), "-level debug did not enable exit lines")
        #expect(try gmon.stop() == 0)
    }

    /// Two processes of one binary at once, watched by --path and by --pid.
    @Test(arguments: ["--path", "--pid"])
    func twoProcessesNeverMix(_ how: String) throws {
        let path = Fixtures.binary("1.25.5", "pie")
        let p1 = try FixtureProcess(path, ["-wait-stdin", "-a", "300", "-b", "50", "-c", "5"])
        let p2 = try FixtureProcess(path, ["-wait-stdin", "-a", "700", "-b", "20", "-c", "7"])
        _ = p1.waitForLine("ready"); _ = p2.waitForLine("ready")
        let args = how == "--path" ? ["--path", path] : ["--pid", String(p1.process.processIdentifier)]
        let gmon = try GmonProcess(args + ["--log-format", "json", "--log-level", "debug"])
        try gmon.waitUntilAttached()
        p1.send(""); p2.send("")
        let o1 = p1.waitForLine("done"), o2 = p2.waitForLine("done")
        p1.send(""); p2.send("")
        _ = p1.finish(); _ = p2.finish()
        try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(p1.process.processIdentifier)")
        #expect(try gmon.stop(SIGTERM) == 0)
        let events = gmon.events
        Self.checkAgainstTruth(Truth.parse(o1), Self.counts(events, pid: p1.process.processIdentifier), "pid 1")
        if how == "--path" {
            Self.checkAgainstTruth(Truth.parse(o2), Self.counts(events, pid: p2.process.processIdentifier), "pid 2")
        } else {
            #expect(!events.contains { ($0["pid"] as? Int) == Int(p2.process.processIdentifier) }, "--pid leaked another process's events")
        }
        #expect(try gmonObjectsInKernel().isEmpty)
    }

    /// Attaching to a running process: exits of goroutines created before are unpaired, not mispaired;
    /// a later process of the same binary starts clean; the fixture's output and status are unchanged.
    @Test func attachWhileRunningAndRestart() throws {
        let path = Fixtures.binary("1.22.10", "stripped")
        let unwatched = try FixtureProcess(path, ["-a", "50", "-b", "5", "-c", "2"]).finish()
        // Site B's goroutines start before gmon attaches and exit after (they live 3 s).
        let early = try FixtureProcess(path, ["-wait-stdin", "-a", "50", "-b", "5", "-c", "2", "-b-life", "3s"])
        _ = early.waitForLine("ready")
        early.send("")
        usleep(50_000)
        let gmon = try GmonProcess(["--path", path, "--log-format", "json", "--log-level", "debug"])
        try gmon.waitUntilAttached()
        _ = early.waitForLine("done")
        early.send("")
        let (s1, _) = early.finish()
        #expect(s1 == 0)
        try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(early.process.processIdentifier)")
        // A second process of the same binary, start to end under gmon.
        let later = try FixtureProcess(path, ["-a", "50", "-b", "5", "-c", "2"])
        let (s2, out2) = later.finish()
        try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(later.process.processIdentifier)")
        #expect(try gmon.stop() == 0)
        #expect(s2 == unwatched.status && out2 == unwatched.output, "watched output differs from unwatched")
        Self.checkAgainstTruth(Truth.parse(out2), Self.counts(gmon.events, pid: later.process.processIdentifier), "restart")
        let summary = gmon.stderr
        #expect(summary.contains("exits of goroutines created before gmon attached"))
        let unpaired = gmon.events.filter { ($0["created"] as? String) == "before gmon attached" }.count
        #expect(unpaired > 0, "no unpaired exits were reported for goroutines created before attach")
    }

    /// Go 1.17 (the oldest release gmon watches, no toolchain here): a real go1.17.1 cgo
    /// extension (scripts/install-deps.sh) loaded by Python starts the Go runtime, whose
    /// own goroutines are known: runtime.main as goroutine 1, four runtime helpers, and
    /// runtime.main exiting once the package inits ran (library mode). This checks the 1.17 row of the runtime.g table
    /// (goid, gopc, startpc) and the probe sites on a real 1.17 runtime, in a shared object.
    @Test func go117RuntimeInAPythonProcess() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-py-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let module = dir.appendingPathComponent("dockerfile.abi3.so").path
        try FileManager.default.copyItem(atPath: Fixtures.legacy("dockerfile-go1.17.1.so"), toPath: module)
        let gmon = try GmonProcess(["--path", module, "--log-format", "json", "--log-level", "debug"])
        try gmon.waitUntilAttached()
        #expect(gmon.stderr.contains("(go1.17.1)"))
        let py = try FixtureProcess("/usr/bin/python3", ["-c", "import sys; sys.path.insert(0, sys.argv[1]); import dockerfile; print(dockerfile.parse_string('FROM a\\nRUN b\\n')[1].cmd)", dir.path])
        let (status, output) = py.finish()
        #expect(status == 0 && output == "RUN\n", "the extension did not work: \(output)")
        let pid = py.process.processIdentifier
        try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(pid)")
        #expect(try gmon.stop() == 0)
        let mine = gmon.events.filter { ($0["pid"] as? Int) == Int(pid) }
        let created = mine.filter { ($0["msg"] as? String) == "goroutine is created" }
        // goids come from per-P batches of 16, so only goid 1 (runtime.main) is fixed.
        let goids = created.compactMap { $0["goroutine_id"] as? Int }
        #expect(goids.count == 5 && Set(goids).count == 5 && goids.allSatisfy { $0 >= 1 && $0 < 100 }, "\(goids)")
        let sites = Set(created.map { "\($0["goroutine_id"] as? Int == 1 ? "1 " : "")\($0["function"] as? String ?? "?") <- \(($0["created_by"] as? String ?? "?").split(separator: " ").first ?? "?")" })
        #expect(sites == ["1 runtime.main <- runtime.newproc", "runtime.forcegchelper <- runtime.init.7",
                          "runtime.bgsweep <- runtime.gcenable", "runtime.bgscavenge <- runtime.gcenable",
                          "runtime.runfinq <- runtime.createfing"], "\(sites)")
        let exited = mine.filter { ($0["msg"] as? String) == "goroutine is exited" }
        #expect(exited.count == 1 && exited.first?["goroutine_id"] as? Int == 1 && exited.first?["lifetime_seconds"] is Double, "\(exited)")
    }

    /// A PIE process that is gone before gmon reads its events (gmon drains every 20 ms):
    /// its load address comes from where the probe fired, not from /proc/PID/maps, so
    /// every site is still symbolized.
    @Test func shortLivedPIEProcessesAreSymbolized() throws {
        let path = Fixtures.binary("1.22.10", "pie")
        let gmon = try GmonProcess(["--path", path, "--log-format", "json"])
        try gmon.waitUntilAttached()
        var pids: [Int32] = []
        for _ in 0..<5 {
            let p = try FixtureProcess(path, ["-a", "3", "-b", "1", "-b-life", "0s", "-c", "1"])
            let (status, output) = p.finish()
            #expect(status == 0 && Truth.parse(output).count == 3)
            pids.append(p.process.processIdentifier)
        }
        for p in pids { try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(p)") }
        #expect(try gmon.stop() == 0)
        for p in pids {
            let created = gmon.events.filter { ($0["pid"] as? Int) == Int(p) && ($0["msg"] as? String) == "goroutine is created" }
            let functions = Set(created.compactMap { $0["function"] as? String })
            #expect(functions.isSuperset(of: ["main.shortLived", "main.siteB.func1", "main.leaked"]), "pid \(p): \(functions)")
            #expect(!created.contains { ($0["function"] as? String ?? "0x").hasPrefix("0x") || ($0["created_by"] as? String ?? "0x").hasPrefix("0x") },
                    "unsymbolized sites for pid \(p)")
        }
    }

    /// SIGINT, SIGTERM and SIGKILL leave no program or link of gmon's in the kernel.
    @Test(arguments: [SIGINT, SIGTERM, SIGKILL])
    func signalsLeaveNothingAttached(_ sig: Int32) throws {
        let gmon = try GmonProcess(["--path", Fixtures.binary("1.27.3", "normal")])
        try gmon.waitUntilAttached()
        #expect(!(try gmonObjectsInKernel(settle: false)).isEmpty, "bpftool does not see gmon's programs while attached")
        let status = try gmon.stop(sig)
        if sig == SIGKILL {
            #expect(gmon.process.terminationReason == .uncaughtSignal)
        } else {
            #expect(status == 0)
            #expect(gmon.stderr.contains("gmon summary:"))
        }
        #expect(try gmonObjectsInKernel().isEmpty)
    }
}
}

extension EndToEnd {
    @Suite struct FaultTests {
        /// Per-site created/exited counts from gmon's summary table.
        static func summaryRow(_ stderr: String, function: String) -> (created: Int, exited: Int)? {
            for line in stderr.split(separator: "\n") where line.contains(" \(function)  <-  ") {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                if f.count >= 2, let c = Int(f[0]), let e = Int(f[1]) { return (c, e) }
            }
            return nil
        }

        static func lostCreationsAndExits(_ stderr: String) -> (Int, Int) {
            guard let r = stderr.range(of: "(creations ") else { return (-1, -1) }
            let rest = stderr[r.upperBound...]
            let c = Int(rest.prefix { $0.isNumber }) ?? -1
            guard let r2 = rest.range(of: "exits ") else { return (c, -1) }
            return (c, Int(rest[r2.upperBound...].prefix { $0.isNumber }) ?? -1)
        }

        /// An event storm: gmon stays responsive, every creation is either seen or counted
        /// as lost, memory stays bounded, and counting is exact again afterwards.
        @Test func eventStorm() throws {
            let seconds = ProcessInfo.processInfo.environment["GMON_STORM_SECONDS"] ?? "20"
            let path = Fixtures.binary("1.25.5", "normal")
            let gmon = try GmonProcess(["--path", path, "--log-level", "warn", "--metrics-address", "127.0.0.1:0"])
            try gmon.waitUntilAttached()
            let base = "http://\(try MetricsTests.metricsURL(gmon))"
            let storm = try FixtureProcess(path, ["-storm", "\(seconds)s"])
            var healthy = 0, maxRSSKB = 0
            while storm.process.isRunning {
                if (try? MetricsTests.curl(["\(base)/healthz"])) == "ok\n" { healthy += 1 }
                let status = (try? String(contentsOfFile: "/proc/\(gmon.process.processIdentifier)/status", encoding: .utf8)) ?? ""
                if let l = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                   let kb = Int(l.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") { maxRSSKB = max(maxRSSKB, kb) }
                usleep(500_000)
            }
            let (status, output) = storm.finish()
            #expect(status == 0)
            #expect(healthy >= 5, "healthz answered \(healthy) times during the storm")
            #expect(maxRSSKB < 1_000_000, "gmon grew to \(maxRSSKB) kB")
            // Recovery: once gmon has worked through the storm's backlog (up to the rings and
            // --buffer-mb; a debug build takes seconds), a normal run is counted exactly.
            func eventsSoFar() -> String {
                ((try? MetricsTests.curl(["\(base)/metrics"])) ?? "").split(separator: "\n").filter { $0.hasPrefix("gmon_events_total{") }.joined()
            }
            var last = eventsSoFar()
            let caughtUpBy = Date().addingTimeInterval(90)
            while Date() < caughtUpBy {
                usleep(500_000)
                let now = eventsSoFar()
                if now == last { break }
                last = now
            }
            let after = try FixtureProcess(path, ["-a", "100", "-b", "10", "-c", "1"])
            let (s2, out2) = after.finish()
            #expect(s2 == 0)
            usleep(1_000_000)
            #expect(try gmon.stop() == 0)
            let truth = Truth.parse(output)
            let n = try #require(truth.first { $0.site == "storm" }).created
            let seen = Self.summaryRow(gmon.stderr, function: "main.runStorm.func1")
            let (lostCreate, lostExit) = Self.lostCreationsAndExits(gmon.stderr)
            #expect(lostCreate >= 0 && lostExit >= 0, "\(gmon.stderr)")
            if let seen {
                // Each creation is seen or counted lost (lost ones cannot be told apart by site,
                // and the runtime's own few goroutines may be among them).
                #expect(seen.created <= n && seen.created + lostCreate >= n && seen.created + lostCreate <= n + 50,
                        "storm created \(n), seen \(seen.created), lost creations \(lostCreate)")
                #expect(seen.exited <= seen.created)
            } else {
                Issue.record("no summary row for the storm site: \(gmon.stderr)")
            }
            let afterTruth = Truth.parse(out2)
            #expect(afterTruth.count == 3)
            for t in afterTruth {
                let row = Self.summaryRow(gmon.stderr, function: t.function)
                #expect(row?.created == t.created && row?.exited == t.exited, "after the storm, site \(t.site): \(String(describing: row)) vs \(t)")
            }
        }
    }
}

extension EndToEnd.FaultTests {
    /// Crashing and restarted targets: gmon keeps running, frees each dead process and counts the next exactly.
    @Test func crashingAndRestartedTargets() throws {
        let path = Fixtures.binary("1.24.11", "pie")
        let gmon = try GmonProcess(["--path", path, "--log-format", "json", "--log-level", "debug"])
        try gmon.waitUntilAttached()
        for round in 0..<6 {
            let crash = round % 2 == 0
            let p = try FixtureProcess(path, crash ? ["-crash", "-a", "100", "-b", "10", "-c", "3"] : ["-a", "100", "-b", "10", "-c", "3"])
            let (status, output) = p.finish()
            let pid = p.process.processIdentifier
            try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(pid)")
            #expect(gmon.process.isRunning)
            if crash {
                #expect(status != 0, "the crash fixture did not crash")
            } else {
                #expect(status == 0)
                EndToEnd.LiveMonitoringTests.checkAgainstTruth(Truth.parse(output), EndToEnd.LiveMonitoringTests.counts(gmon.events, pid: pid), "round \(round)")
            }
        }
        #expect(try gmon.stop() == 0)
        #expect(gmon.stderr.contains("0 still live"), "dead processes' goroutines were not closed out: \(gmon.stderr)")
    }

    /// Twenty processes of one binary at once: per-process counts stay separate and exact.
    @Test func twentyProcesses() throws {
        let path = Fixtures.binary("1.27.3", "stripped")
        let gmon = try GmonProcess(["--path", path, "--log-format", "json", "--log-level", "debug"])
        try gmon.waitUntilAttached()
        let procs = try (0..<20).map { i in try FixtureProcess(path, ["-wait-stdin", "-a", "\(50 + i)", "-b", "5", "-c", "\(i % 4)"]) }
        for p in procs { _ = p.waitForLine("ready") }
        for p in procs { p.send("") }
        var outputs: [String] = []
        for p in procs { outputs.append(p.waitForLine("done")); p.send("") }
        for p in procs { _ = p.finish() }
        for p in procs { try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(p.process.processIdentifier)") }
        #expect(try gmon.stop() == 0)
        let events = gmon.events
        for (p, out) in zip(procs, outputs) {
            EndToEnd.LiveMonitoringTests.checkAgainstTruth(Truth.parse(out), EndToEnd.LiveMonitoringTests.counts(events, pid: p.process.processIdentifier), "pid \(p.process.processIdentifier)")
        }
    }

    /// A deployment replaces the executable on disk: gmon says what that means.
    @Test func executableReplacedOnDisk() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-deploy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let live = dir.appendingPathComponent("app").path
        try FileManager.default.copyItem(atPath: Fixtures.binary("1.25.5", "normal"), toPath: live)
        let gmon = try GmonProcess(["--path", live])
        try gmon.waitUntilAttached()
        let next = dir.appendingPathComponent("app.new").path
        try FileManager.default.copyItem(atPath: Fixtures.binary("1.25.5", "normal"), toPath: next)
        #expect(rename(next, live) == 0)
        let end = Date().addingTimeInterval(10)
        while !gmon.stderr.contains("was replaced on disk") && Date() < end { usleep(100_000) }
        #expect(gmon.stderr.contains("was replaced on disk"), "\(gmon.stderr)")
        #expect(try gmon.stop() == 0)
    }
}

extension EndToEnd.FaultTests {
    /// Waits until gmon's BPF programs are in the kernel (loaded, not yet all attached
    /// while --attach-pause-ms holds it between loading and the uprobes).
    static func waitUntilLoaded(_ gmon: GmonProcess) throws {
        let end = Date().addingTimeInterval(20)
        while (try gmonObjectsInKernelNow()).isEmpty {
            guard Date() < end, gmon.process.isRunning else { throw E2EError("gmon never loaded its programs: \(gmon.stderr)") }
            usleep(20_000)
        }
        #expect(!gmon.stderr.contains("gmon: watching"), "gmon was already attached")
    }

    /// A signal in the middle of attaching (programs loaded, the process-exit link made,
    /// the uprobes not yet): a clean stop, nothing left in the kernel, the watched program unharmed.
    @Test(arguments: [SIGINT, SIGTERM, SIGHUP, SIGKILL])
    func signalDuringAttach(_ sig: Int32) throws {
        let path = Fixtures.binary("1.23.9", "pie")
        let target = try FixtureProcess(path, ["-wait-stdin", "-a", "200", "-b", "20", "-c", "2"])
        _ = target.waitForLine("ready")
        let gmon = try GmonProcess(["--path", path, "--attach-pause-ms", "5000"])
        try Self.waitUntilLoaded(gmon)
        let status = try gmon.stop(sig)
        if sig == SIGKILL {
            #expect(gmon.process.terminationReason == .uncaughtSignal)
        } else {
            #expect(status == 0, "\(gmon.stderr)")
            #expect(gmon.stderr.contains("gmon: stopped while attaching; nothing is left attached"), "\(gmon.stderr)")
        }
        #expect(try gmonObjectsInKernel().isEmpty)
        target.send("")
        let out = target.waitForLine("done")
        target.send("")
        let (code, _) = target.finish()
        #expect(code == 0 && Truth.parse(out).count == 3, "the watched program was harmed: \(out)")
    }

    /// The --pid process exits while gmon attaches to it: one clear line, non-zero exit, nothing left.
    @Test func pidExitsDuringAttach() throws {
        let path = Fixtures.binary("1.26.6", "stripped")
        let target = try FixtureProcess(path, ["-wait-stdin"])
        _ = target.waitForLine("ready")
        let pid = target.process.processIdentifier
        let gmon = try GmonProcess(["--pid", "\(pid)", "--attach-pause-ms", "5000"])
        try Self.waitUntilLoaded(gmon)
        kill(pid, SIGKILL)
        _ = target.finish()   // reaped: the pid no longer exists
        let end = Date().addingTimeInterval(20)
        while gmon.process.isRunning && Date() < end { usleep(20_000) }
        #expect(!gmon.process.isRunning, "gmon hangs after its process exited during attach")
        #expect(gmon.process.terminationStatus != 0)
        #expect(gmon.stderr.contains("gmon: process \(pid) exited while gmon was attaching to it"), "\(gmon.stderr)")
        #expect(!gmon.stderr.contains("Backtrac"))
        #expect(try gmonObjectsInKernel().isEmpty)
    }

    /// A watched --pid that exits but is never reaped by its parent stays a zombie, which
    /// kill(pid, 0) still finds: gmon must see it has exited and stop by itself.
    @Test func watchedPidBecomesAZombie() throws {
        let path = Fixtures.binary("1.25.5", "normal")
        // sh starts the fixture in the background, then becomes `sleep`, which never reaps it.
        let parent = try FixtureProcess("/bin/sh", ["-c", "\"$0\" -a 50 -b 5 -b-life 2s -c 0 >/dev/null & echo $!; exec sleep 60", path])
        defer { kill(parent.process.processIdentifier, SIGKILL) }
        var line = ""
        while !line.hasSuffix("\n") {
            let d = parent.out.fileHandleForReading.availableData
            if d.isEmpty { break }
            line += String(decoding: d, as: UTF8.self)
        }
        let pid = try #require(Int32(line.trimmingCharacters(in: .whitespacesAndNewlines)))
        let gmon = try GmonProcess(["--pid", "\(pid)"])
        try gmon.waitUntilAttached()
        let end = Date().addingTimeInterval(20)
        while gmon.process.isRunning && Date() < end { usleep(50_000) }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        #expect(stat.contains(") Z "), "the fixture should be a zombie now: \(stat)")
        #expect(!gmon.process.isRunning, "gmon still watches a zombie")
        #expect(gmon.process.terminationStatus == 0)
        #expect(gmon.stderr.contains("gmon: process \(pid) exited") && gmon.stderr.contains("gmon summary:"), "\(gmon.stderr)")
    }

    /// A program profiling itself (SIGPROF tracebacks at 1 kHz) while creating goroutines
    /// at full speed: tracebacks that start inside runtime.newproc1 must meet no probe
    /// trampoline. It runs to the end, its profile parses, and gmon's counts stay exact.
    /// gmon's own probes are plain uprobes on CALL instructions (no trampoline at all); the
    /// classic uretprobe on runtime.newproc1 is run too: it did not crash either.
    @Test(arguments: ["1.19", "1.27.3", "1.19 classic", "1.27.3 classic"])
    func selfProfilingTarget(_ setup: String) throws {
        let version = String(setup.split(separator: " ")[0]), classic = setup.hasSuffix("classic")
        let path = Fixtures.binary(version, "normal")
        let go = try #require(Fixtures.toolchains.first { $0.version == version }).go
        // The debug build under test consumes several times slower than a release build;
        // a ring that holds most of the storm keeps this test about the probes, not that
        // speed (a 3 s storm, 1.35 M goroutines, once lost 3,198 creations: counted, on a
        // fresh clone while its debug gmon fell behind).
        let gmon = try GmonProcess(["--path", path, "--log-level", "warn", "--ring-buffer-mb", "64"] + (classic ? ["--classic-probes"] : []))
        try gmon.waitUntilAttached()
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-cpu-\(UUID().uuidString).pprof").path
        defer { unlink(profile) }
        let target = try FixtureProcess(path, ["-storm", "2s", "-cpuprofile", profile])
        let (status, output) = target.finish()
        #expect(status == 0, "the self-profiling program died under gmon: \(status)")
        usleep(500_000)
        #expect(try gmon.stop() == 0)
        let top = try run(go, ["tool", "pprof", "-top", "-nodecount=200", path, profile])
        #expect(top.contains("runtime.newproc1") || top.contains("runtime.newproc"), "no samples in goroutine creation: \(top.prefix(2000))")
        let n = try #require(Truth.parse(output).first { $0.site == "storm" }).created
        let row = Self.summaryRow(gmon.stderr, function: "main.runStorm.func1")
        let (lostCreate, lostExit) = Self.lostCreationsAndExits(gmon.stderr)
        // Each creation is seen or counted lost: a debug gmon on a busy 2-core machine can fall
        // behind a storm (seen with this test's code before and after the change that added
        // this remark), and this test is about probes meeting profiling tracebacks, not speed.
        // Exits: all but the last batch of 1,000 surely ran goexit before the process ended.
        let created = row?.created ?? 0, exited = row?.exited ?? 0
        #expect(created <= n && created + lostCreate >= n && created + lostCreate <= n + 50 && exited + lostExit + lostCreate >= n - 1000,
                "storm \(n): \(String(describing: row)), lost creations \(lostCreate), exits \(lostExit)")
    }
}
