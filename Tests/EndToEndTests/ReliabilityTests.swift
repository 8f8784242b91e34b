import Foundation
import Testing
import TestSupport

/// Wrong data, harm to other programs and hangs found by adversarial testing (issue 14):
/// each test runs real Go programs under real probes and fails without its fix.
extension EndToEnd { @Suite struct ReliabilityTests {
    typealias Live = LiveMonitoringTests

    static func tempDir(_ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// `--path NAME` means ./NAME: a program of the same name on $PATH is never probed.
    @Test func bareNameIsNeverLookedUpOnPath() throws {
        let here = try Self.tempDir("cwd"), onPath = try Self.tempDir("path")
        defer { try? FileManager.default.removeItem(at: here); try? FileManager.default.removeItem(at: onPath) }
        let intended = here.appendingPathComponent("app").path, other = onPath.appendingPathComponent("app").path
        try FileManager.default.copyItem(atPath: Fixtures.binary("1.25.5", "normal"), toPath: intended)
        try FileManager.default.copyItem(atPath: Fixtures.binary("1.21.13", "stripped"), toPath: other)
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = onPath.path + ":/usr/sbin:/usr/bin:/sbin:/bin"
        let gmon = try GmonProcess(["--path", "app", "--log-format", "json", "--log-level", "debug"], directory: here.path, environment: env)
        try gmon.waitUntilAttached()
        #expect(gmon.stderr.contains("watching \(intended) "), "gmon did not say it watches ./app: \(gmon.stderr)")
        let decoy = try FixtureProcess(other, ["-a", "300", "-b", "10", "-c", "2"])
        #expect(decoy.finish().status == 0)
        let fixture = try FixtureProcess(intended, ["-a", "300", "-b", "10", "-c", "2"])
        let (status, output) = fixture.finish()
        #expect(status == 0)
        try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(fixture.process.processIdentifier)")
        #expect(try gmon.stop() == 0)
        let events = gmon.events
        #expect(!events.contains { ($0["pid"] as? Int) == Int(decoy.process.processIdentifier) },
                "gmon probed the program of the same name found on $PATH")
        Live.checkAgainstTruth(Truth.parse(output), Live.counts(events, pid: fixture.process.processIdentifier), "./app")
    }

    /// `--pid` of a process in its own mount namespace, whose executable's path names another
    /// Go program in gmon's namespace: gmon reads and probes the process's own file
    /// (through /proc/PID/exe), and finds a PIE's load address by that file's inode.
    @Test(arguments: ["uprobe", "classic"])
    func pidInAnotherMountNamespace(_ probes: String) throws {
        let dir = try Self.tempDir("mntns")
        defer { try? FileManager.default.removeItem(at: dir) }
        let shared = dir.appendingPathComponent("app").path
        try FileManager.default.copyItem(atPath: Fixtures.binary("1.21.13", "stripped"), toPath: shared)   // what gmon's namespace sees
        let real = Fixtures.binary("1.25.5", "pie")
        // unshare and sh exec: the fixture keeps the pid the test started.
        let fixture = try FixtureProcess("/usr/bin/unshare", ["-m", "--propagation", "private", "/bin/sh", "-c",
                                                             "mount --bind '\(real)' '\(shared)' && exec '\(shared)' -wait-stdin -a 300 -b 20 -c 5"])
        let ready = fixture.waitForLine("ready")
        #expect(ready.contains("ready"), "the fixture did not start in its mount namespace")
        let pid = fixture.process.processIdentifier
        let gmon = try GmonProcess(["--pid", String(pid), "--log-format", "json", "--log-level", "debug"] + (probes == "classic" ? ["--classic-probes"] : []))
        try gmon.waitUntilAttached()
        #expect(gmon.stderr.contains("go1.25.5"), "gmon read another file than the process runs: \(gmon.stderr)")
        fixture.send("")
        let output = fixture.waitForLine("done")
        fixture.send("")
        #expect(fixture.finish().status == 0)
        try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(pid)")
        #expect(try gmon.stop() == 0)
        let events = gmon.events
        Live.checkAgainstTruth(Truth.parse(output), Live.counts(events, pid: pid), "\(probes) in another mount namespace")
        let hex = events.filter { ($0["function"] as? String)?.hasPrefix("0x") == true }
        #expect(hex.isEmpty, "\(hex.count) creations not symbolized (no load address): \(hex.first.map { "\($0)" } ?? "")")
    }

    /// An exec ends the old image's goroutines, whether it runs another program or the same file again.
    /// When a thread other than the main one runs exec (Go's exec runs on any thread), the
    /// kernel first ends the old main thread (de_thread), and that exit is what gmon reports:
    /// "process exited" instead of "process ran exec" (about 1 run in 8 here); the old image's
    /// goroutines end all the same. Either line is the marker.
    @Test(arguments: ["other", "self"])
    func execEndsTheOldImagesGoroutines(_ target: String) throws {
        let path = Fixtures.binary("1.25.5", "normal")
        let gmon = try GmonProcess(["--path", path, "--log-format", "json", "--log-level", "debug"])
        try gmon.waitUntilAttached()
        if target == "other" {
            let fixture = try FixtureProcess(path, ["-hold", "50", "-exec", "/bin/sleep", "-exec-args", "30"])
            let pid = fixture.process.processIdentifier
            try gmon.waitForOutput(oneOf: ["\"msg\":\"process ran exec\",\"pid\":\(pid)", "\"msg\":\"process exited\",\"pid\":\(pid)"])
            usleep(300_000)
            #expect(try gmon.stop() == 0)
            #expect(gmon.stderr.contains("exited, 0 still live"), "goroutines of the image exec replaced stay live: \(gmon.stderr)")
            kill(pid, SIGKILL)
            _ = fixture.finish()
        } else {
            let fixture = try FixtureProcess(path, ["-hold", "50", "-exec", "self", "-exec-args", "-a 300 -b 20 -c 5"])
            let pid = fixture.process.processIdentifier
            let (status, output) = fixture.finish()
            #expect(status == 0)
            try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(pid)")
            #expect(try gmon.stop() == 0)
            #expect(gmon.stdout.contains("\"msg\":\"process ran exec\",\"pid\":\(pid),\"live_goroutines\":")
                    || gmon.stdout.components(separatedBy: "\"msg\":\"process exited\",\"pid\":\(pid),").count == 3)
            #expect(!gmon.stderr.contains("exit lost"), "a re-exec was taken for lost exits: \(gmon.stderr)")
            #expect(gmon.stderr.contains("exited, 0 still live"))
            // The new image's goroutines, counted from its own start.
            let events = gmon.events
            var after: [[String: Any]] = []
            var seenExec = false
            for e in events where (e["pid"] as? Int) == Int(pid) {
                if !seenExec, ["process ran exec", "process exited"].contains(e["msg"] as? String) { seenExec = true; continue }
                if seenExec { after.append(e) }
            }
            Live.checkAgainstTruth(Truth.parse(output), Live.counts(after, pid: pid), "after re-exec")
        }
    }

    /// Two stacks alike in the five frames the labels show are one series: its oldest live
    /// goroutine's age is the older of both (the leak alert fires), and the summary shows one row.
    @Test func sitesAlikeInTheirLabelsShareOneSeries() throws {
        let path = Fixtures.binary("1.25.5", "normal")
        let gmon = try GmonProcess(["--path", path])
        try gmon.waitUntilAttached()
        let fixture = try FixtureProcess(path, ["-same-labels"])
        _ = fixture.waitForLine("started")
        usleep(2_500_000)   // the age gauges are refreshed every second
        let text = try MetricsTests.curl(["http://\(try MetricsTests.metricsURL(gmon))/metrics"])
        func samples(_ name: String) -> [Double] {
            text.split(separator: "\n").filter { $0.hasPrefix(name + "{") && $0.contains("function=\"main.sameBody\"") }
                .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
        }
        #expect(samples("gmon_goroutines_live") == [5], "\(text)")
        #expect(samples("gmon_goroutines_created_total") == [10])
        let oldest = samples("gmon_goroutine_oldest_live_seconds")
        #expect(oldest.count == 1 && oldest[0] >= 1.5, "oldest live age \(oldest): the leaked goroutines are 2.5 s old")
        #expect(try gmon.stop() == 0)
        fixture.send("")
        _ = fixture.finish()
        let rows = gmon.stderr.split(separator: "\n").filter { $0.contains("main.sameBody  <-") }
        #expect(rows.count == 1, "summary rows: \(rows)")
        #expect(rows.first.map { $0.split(separator: " ").prefix(3) == ["10", "5", "5"] } == true, "\(rows)")
    }

    /// -race builds: the entry function, not the race detector's runtime.racefuncenter.
    @Test(arguments: ["1.21.13", "1.25.5", "1.27.3"])
    func raceBuildsNameTheEntryFunction(_ version: String) throws {
        guard let t = Fixtures.toolchains.first(where: { $0.version == version }) else { throw E2EError("no Go \(version) in the fixtures") }
        let gmon = try Live.watchOneRun(MatrixCase(t, "race"), [], label: "go\(version) -race")
        #expect(!gmon.stdout.contains("runtime.race"))
    }

    /// `go f()` with `f := w.run` is named main.(*worker).run on every release.
    @Test(arguments: Fixtures.toolchains.map(\.version))
    func methodValuesAreNamedAlikeOnEveryRelease(_ version: String) throws {
        let t = Fixtures.toolchains.first { $0.version == version }!
        _ = try Live.watchOneRun(MatrixCase(t, "normal"), [], label: "go\(version) method value", fixtureArgs: ["-a", "20", "-b", "5", "-c", "2", "-d", "30"])
    }

    /// Coroutines (iter.Pull, Go 1.23+) are made by newproc1 from newcoro and end in
    /// coroswitch_m, never passing newproc or goexit1: counted exactly, created by the caller
    /// of iter.Pull; in a PIE the load address comes from whichever creation probe fired.
    @Test(arguments: Fixtures.toolchains.filter { ["1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3"].contains($0.version) }.flatMap { t in
        ["normal", "pie"].map { MatrixCase(t, $0) }
    })
    func coroutinesAreCounted(_ c: MatrixCase) throws {
        let gmon = try Live.watchOneRun(c, [], label: "\(c.testDescription) coroutines",
                                        fixtureArgs: ["-a", "50", "-b", "5", "-c", "2", "-pulls", "100", "-open", "10"])
        #expect(gmon.stdout.contains("\"function\":\"iter.Pull[...]\",\"created_by\":\"main.pulls "), "\(gmon.stdout.prefix(3000))")
        #expect(gmon.stderr.contains(" 0 exits of goroutines created before gmon attached"), "\(gmon.stderr)")
    }

    /// testing/synctest bubbles (Go 1.25+): their first goroutine is made by synctestRun, not
    /// newproc, and ends through goexit1: without its own probe each bubble's exit would be
    /// taken for one of a goroutine created before gmon attached.
    @Test(arguments: ["1.25.5", "1.27.3"])
    func synctestBubblesAreCounted(_ version: String) throws {
        let path = Fixtures.binary(version, "test", program: "synctest")
        let gmon = try GmonProcess(["--path", path, "--log-format", "json", "--log-level", "debug"])
        try gmon.waitUntilAttached()
        let test = try FixtureProcess(path, ["-test.run", "TestBubbles"])
        let (status, output) = test.finish()
        #expect(status == 0, "\(output)")
        try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(test.process.processIdentifier)")
        #expect(try gmon.stop() == 0)
        #expect(gmon.stderr.contains(" 0 exits of goroutines created before gmon attached"), "\(gmon.stderr)")
        let created = gmon.events.filter { ($0["msg"] as? String) == "goroutine is created" && ($0["created_by"] as? String)?.hasPrefix("testing/synctest.Test") == true }
        #expect(created.count == 3, "bubble roots seen: \(created.count)")
    }

    /// Call paths that keep changing: past --max-stacks a new stack counts under its function
    /// and created_by only, so counts stay exact while the stacks kept stay bounded.
    @Test func stacksBeyondTheBoundStillCountExactly() throws {
        let path = Fixtures.binary("1.25.5", "normal")
        let gmon = try GmonProcess(["--path", path, "--max-stacks", "1000", "--ring-buffer-mb", "16", "--log-level", "warn"])
        try gmon.waitUntilAttached()
        let fixture = try FixtureProcess(path, ["-stacks", "3000"])
        let (status, output) = fixture.finish()
        #expect(status == 0)
        let truth = try #require(Truth.parse(output).first { $0.site == "S" })
        usleep(2_000_000)
        #expect(try gmon.stop() == 0)
        let err = gmon.stderr
        let rows = err.split(separator: "\n").filter { $0.hasSuffix("main.stackLeaf  <-  main.descend (main.go:\(Self.number(in: err, after: "main.stackLeaf  <-  main.descend (main.go:")))") }
        #expect(rows.count == 1, "\(err)")
        #expect(rows.first?.split(separator: " ").prefix(2) == ["\(truth.created)", "\(truth.exited)"], "\(err)")
        #expect(Self.number(in: err, after: "creation stacks beyond --max-stacks 1000, counted under their function and created_by only: ") >= 2000, "\(err)")
        #expect(err.contains("ring buffer full 0 "), "\(err)")
    }

    /// A burst of goroutines from new call paths with default settings: each is symbolized,
    /// far slower than the burst comes, so records are copied out of the rings first and
    /// processed from gmon's memory. Nothing is lost and every count is exact.
    @Test func aBurstOfNewStacksLosesNothing() throws {
        let path = Fixtures.binary("1.25.5", "normal")
        let gmon = try GmonProcess(["--path", path, "--log-level", "warn"])
        try gmon.waitUntilAttached()
        let fixture = try FixtureProcess(path, ["-stacks", "20000"])
        let (status, output) = fixture.finish()
        #expect(status == 0)
        let truth = try #require(Truth.parse(output).first { $0.site == "S" })
        usleep(1_000_000)
        #expect(try gmon.stop(timeout: 120) == 0)
        let err = gmon.stderr
        #expect(err.contains("ring buffer full 0 "), "\(err)")
        let row = FaultTests.summaryRow(err, function: "main.stackLeaf")
        #expect(row?.created == truth.created && row?.exited == truth.exited, "\(String(describing: row)) vs \(truth)")
    }

    /// A number that follows `prefix` in `text`, or that precedes `suffix` (0 when absent).
    static func number(in text: String, after prefix: String) -> Int {
        guard let r = text.range(of: prefix) else { return 0 }
        return Int(text[r.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    static func number(in text: String, before suffix: String) -> Int {
        guard let r = text.range(of: suffix) else { return 0 }
        return Int(String(text[..<r.lowerBound].reversed().prefix { $0.isNumber }.reversed())) ?? 0
    }

    /// Creations lost to a full ring (a debug gmon writing every line cannot keep up with a
    /// storm in 1 MiB rings): the kernel side remembers their g's, and their exits count as
    /// exits of lost creations, not of goroutines created before gmon attached.
    @Test func exitsOfLostCreationsAreNotTakenForEarlierGoroutines() throws {
        let path = Fixtures.binary("1.25.5", "normal")
        let gmon = try GmonProcess(["--path", path, "--no-metrics", "--ring-buffer-mb", "1"])
        try gmon.waitUntilAttached()
        let fixture = try FixtureProcess(path, ["-storm", "3s"])
        // Said while gmon runs, not only in its summary, with what its reads of the rings showed.
        try gmon.waitForStderr(" events lost (ringbuf_full ", timeout: 20)
        #expect(gmon.stderr.contains("the longest time between two reads of the rings was "), "\(gmon.stderr)")
        #expect(fixture.finish().status == 0)
        // Not "process exited": under such losses that record may be lost too (counted).
        // Stopping drains every record stamped before the stop.
        usleep(500_000)
        #expect(try gmon.stop(timeout: 120) == 0)
        let err = gmon.stderr
        let lostCreations = Self.number(in: err, after: "(creations ")
        try #require(lostCreations > 0, "the storm lost no creation, so this test shows nothing: \(err)")
        let beforeAttach = Self.number(in: err, before: " exits of goroutines created before gmon attached")
        let ofLost = Self.number(in: err, before: " exits of goroutines whose creation was lost")
        let untracked = Self.number(in: err, after: "creations lost and not remembered (table full; their exits count as before gmon attached): ")
        #expect(beforeAttach <= untracked, "\(beforeAttach) exits taken for goroutines created before gmon attached: \(err)")
        #expect(ofLost > 0 && ofLost <= lostCreations, "\(ofLost) exits of lost creations, \(lostCreations) creations lost: \(err)")
    }

    /// Stopping gmon while goroutines come and go at full speed: watching ends at one instant
    /// for both probes, so no exit is taken for one of a goroutine created before gmon attached,
    /// and no creation for one whose exit was lost.
    @Test func stoppingDuringAStormKeepsPairs() throws {
        let path = Fixtures.binary("1.25.5", "normal")
        // Rings big enough for the debug build to keep up: this is about the stop, not about losses.
        let gmon = try GmonProcess(["--path", path, "--no-metrics", "--log-level", "warn", "--no-stacks", "--ring-buffer-mb", "128"])
        try gmon.waitUntilAttached()
        let fixture = try FixtureProcess(path, ["-storm", "4s"])
        usleep(1_500_000)
        #expect(try gmon.stop() == 0)
        _ = fixture.finish()
        #expect(gmon.stderr.contains(" 0 exits of goroutines created before gmon attached"), "\(gmon.stderr)")
        #expect(!gmon.stderr.contains("exit lost"), "\(gmon.stderr)")
        #expect(gmon.stderr.contains("ring buffer full 0 "), "\(gmon.stderr)")
    }

    /// A stdout reader that does not read (`gmon | (sleep 40)`), blocking or non-blocking: events
    /// and metrics go on, SIGINT stops gmon within a second, and the lines it could not write are
    /// counted. gmon does not spin on a non-blocking stdout.
    @Test(arguments: ["blocking", "non-blocking"])
    func aStdoutReaderThatDoesNotRead(_ mode: String) throws {
        let path = Fixtures.binary("1.25.5", "normal")
        let stuck = Pipe()   // never read
        if mode == "non-blocking" {
            let fd = stuck.fileHandleForWriting.fileDescriptor
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        let gmon = try GmonProcess(["--path", path, "--ring-buffer-mb", "64"], stdoutTo: stuck)
        try gmon.waitUntilAttached()
        let base = "http://" + (try MetricsTests.metricsURL(gmon))
        let fixture = try FixtureProcess(path, ["-a", "5000", "-b", "10", "-c", "2"])   // ~1.6 MB of lines, a pipe holds 64 KiB
        #expect(fixture.finish().status == 0)
        usleep(1_500_000)
        // Counting went on: the metrics have every goroutine although no line was read.
        let text = try MetricsTests.curl(["\(base)/metrics"])
        let created = text.split(separator: "\n").first { $0.hasPrefix("gmon_goroutines_created_total{") && $0.contains("function=\"main.shortLived\"") }
        #expect(created?.hasSuffix(" 5000") == true, "metrics stalled with stdout: \(created.map(String.init) ?? "no series")")
        let stopAt = Date()
        #expect(try gmon.stop(SIGINT, timeout: 10) == 0)
        let took = Date().timeIntervalSince(stopAt)
        #expect(took < 1.5, "gmon took \(took) s to stop on SIGINT with a stuck stdout")
        let err = gmon.stderr
        #expect(err.contains("log lines dropped (stdout's reader too slow, or writing failed): "), "\(err)")
        if let cost = err.range(of: "own cost: user "), let user = Double(err[cost.upperBound...].prefix { $0 != " " }) {
            #expect(user < 1.5, "gmon used \(user) s of CPU: it spins on a stdout that takes nothing")
        } else {
            Issue.record("no cost line: \(err)")
        }
    }

    /// Logs to a full disk: gmon says so on stderr and exits non-zero instead of ending silently.
    @Test func stdoutOnAFullDiskIsAnError() throws {
        let path = Fixtures.binary("1.25.5", "normal")
        let gmon = try GmonProcess(["--path", path, "--no-metrics"], stdoutTo: try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/full")))
        try gmon.waitUntilAttached()
        #expect(fixtureRuns(path))
        let stopBy = Date().addingTimeInterval(10)
        while gmon.process.isRunning && Date() < stopBy { usleep(20_000) }
        #expect(!gmon.process.isRunning, "gmon kept running with every log write failing")
        if gmon.process.isRunning { return }
        #expect(gmon.process.terminationStatus == 1)
        #expect(gmon.stderr.contains("gmon: writing the logs to stdout failed: No space left on device"), "\(gmon.stderr)")
    }

    func fixtureRuns(_ path: String) -> Bool {
        (try? FixtureProcess(path, ["-a", "100", "-b", "5", "-c", "1"]).finish().status) == 0
    }
} }
