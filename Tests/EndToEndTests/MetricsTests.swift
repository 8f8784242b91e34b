import Foundation
import Testing
import TestSupport

/// gmon's metrics endpoint scraped by a real Prometheus while a fixture runs.
extension EndToEnd { @Suite struct MetricsTests {
    static let pythonVenv = (ProcessInfo.processInfo.environment["GMON_GO_CACHE"] ?? "/var/cache/gmon/go") + "/../py/bin/python"

    /// The metrics URL from gmon's "watching … metrics on http://…/metrics" line.
    static func metricsURL(_ gmon: GmonProcess) throws -> String {
        guard let r = gmon.stderr.range(of: "metrics on http://"), let end = gmon.stderr[r.upperBound...].firstIndex(of: "/") else {
            throw E2EError("gmon did not say where it serves metrics: \(gmon.stderr)")
        }
        return String(gmon.stderr[r.upperBound..<end])
    }

    static func curl(_ args: [String]) throws -> String { try run("/usr/bin/curl", ["-s", "--max-time", "10"] + args) }

    static func freePort() -> Int { Int.random(in: 20000...29999) }

    /// Starts Prometheus on loopback, scraping `target` every second, with a throwaway data directory.
    static func startPrometheus(target: String) throws -> (Process, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-prom-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = """
        global: {scrape_interval: 1s, scrape_timeout: 900ms}
        scrape_configs:
          - job_name: gmon
            static_configs: [{targets: ['\(target)']}]
        """
        try config.write(to: dir.appendingPathComponent("prometheus.yml"), atomically: true, encoding: .utf8)
        let listen = "127.0.0.1:\(freePort())"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        p.arguments = ["--config.file=\(dir.path)/prometheus.yml", "--storage.tsdb.path=\(dir.path)/data",
                       "--web.listen-address=\(listen)", "--log.level=error"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let end = Date().addingTimeInterval(30)
        while (try? curl(["http://\(listen)/-/ready"]))?.contains("Ready") != true {
            guard Date() < end, p.isRunning else { throw E2EError("Prometheus did not become ready on \(listen)") }
            usleep(200_000)
        }
        return (p, listen)
    }

    /// Instant query → value of the single series, or nil.
    static func query(_ prom: String, _ q: String) throws -> Double? {
        let out = try curl(["-G", "http://\(prom)/api/v1/query", "--data-urlencode", "query=\(q)"])
        guard let json = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any],
              let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
              result.count == 1, let value = result[0]["value"] as? [Any], let s = value.last as? String else { return nil }
        return Double(s)
    }

    /// A query's whole instant vector: each series' labels and value.
    static func queryVector(_ prom: String, _ q: String) throws -> [(labels: [String: String], value: Double)] {
        let out = try curl(["-G", "http://\(prom)/api/v1/query", "--data-urlencode", "query=\(q)"])
        guard let json = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any],
              let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]] else { return [] }
        return result.compactMap { r in
            guard let value = r["value"] as? [Any], let s = value.last as? String, let v = Double(s) else { return nil }
            return ((r["metric"] as? [String: String]) ?? [:], v)
        }
    }

    @Test func prometheusSeesTheFixturesGroundTruth() throws {
        let path = Fixtures.binary("1.25.5", "normal")
        let gmon = try GmonProcess(["--path", path, "--metrics-address", "127.0.0.1:0"])
        try gmon.waitUntilAttached()
        let target = try Self.metricsURL(gmon)
        let (prom, promAddress) = try Self.startPrometheus(target: target)
        defer { prom.terminate(); prom.waitUntilExit() }

        let fixture = try FixtureProcess(path, ["-wait-stdin"])
        _ = fixture.waitForLine("ready")
        fixture.send("")
        let output = fixture.waitForLine("done")   // sites A and B have exited, C's goroutines live on
        let truth = Truth.parse(output)
        #expect(truth.count == 3)

        // Wait until Prometheus has scraped the final numbers (1 s interval).
        var expected: [(String, Double)] = []
        for t in truth {
            let sel = "exe=\"goroutines.normal\",function=\"\(t.function)\""
            expected.append(("sum(gmon_goroutines_created_total{\(sel)})", Double(t.created)))
            expected.append(("sum(gmon_goroutines_exited_total{\(sel)})", Double(t.exited)))
            expected.append(("sum(gmon_goroutines_live{\(sel)})", Double(t.created - t.exited)))
        }
        var mismatches: [String] = []
        let end = Date().addingTimeInterval(30)
        repeat {
            mismatches = []
            for (q, want) in expected {
                let got = try Self.query(promAddress, q)
                if got != want { mismatches.append("\(q) = \(got.map { String($0) } ?? "none"), want \(want)") }
            }
            if mismatches.isEmpty { break }
            usleep(500_000)
        } while Date() < end
        #expect(mismatches.isEmpty, "\(mismatches)")

        // Lifetimes: the median lands in the bucket holding the fixture's known lifetime.
        let qA = try Self.query(promAddress, "histogram_quantile(0.5, sum by (le) (gmon_goroutine_lifetime_seconds_bucket{function=\"main.shortLived\"}))")
        #expect(qA.map { $0 > 0.001 && $0 <= 0.01 } == true, "site A median \(String(describing: qA))")
        let qB = try Self.query(promAddress, "histogram_quantile(0.5, sum by (le) (gmon_goroutine_lifetime_seconds_bucket{function=\"main.siteB.func1\"}))")
        #expect(qB.map { $0 > 0.01 && $0 <= 0.1 } == true, "site B median \(String(describing: qB))")
        // The leaked goroutines are visible as live with a growing age.
        let age = try Self.query(promAddress, "max(gmon_goroutine_oldest_live_seconds{function=\"main.leaked\"})")
        #expect(age.map { $0 >= 0 } == true)
        #expect(try Self.query(promAddress, "up{job=\"gmon\"}") == 1)

        fixture.send("")
        _ = fixture.finish()
        #expect(try gmon.stop() == 0)
    }

    @Test func bodyPassesPromtoolAndTheOpenMetricsParser() throws {
        let path = Fixtures.binary("1.24.11", "stripped")
        let gmon = try GmonProcess(["--path", path, "--metrics-address", "127.0.0.1:0"])
        try gmon.waitUntilAttached()
        _ = try FixtureProcess(path, ["-a", "100", "-b", "10", "-c", "2"]).finish()
        usleep(1_500_000)
        let url = "http://\(try Self.metricsURL(gmon))/metrics"

        let text = try Self.curl([url])
        #expect(text.contains("gmon_goroutines_created_total{"))
        // gmon's own cost, as every exporter serves it.
        func value(_ name: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        let rss = value("process_resident_memory_bytes") ?? 0, started = value("process_start_time_seconds") ?? 0
        #expect(rss > 10e6 && rss < 2e9, "process_resident_memory_bytes \(rss)")
        #expect(abs(started - Date().timeIntervalSince1970) < 120, "process_start_time_seconds \(started)")
        #expect((value("process_cpu_seconds_total") ?? 0) > 0 && (value("process_open_fds") ?? 0) > 3 && value("process_max_fds") != nil)
        let promtool = Process()
        promtool.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        promtool.arguments = ["check", "metrics"]
        let inp = Pipe(), out = Pipe()
        promtool.standardInput = inp
        promtool.standardOutput = out
        promtool.standardError = out
        try promtool.run()
        inp.fileHandleForWriting.write(Data(text.utf8))
        try inp.fileHandleForWriting.close()
        let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        promtool.waitUntilExit()
        #expect(promtool.terminationStatus == 0 && said.isEmpty, "promtool: \(said)")

        let headers = try Self.curl(["-D", "-", "-o", "/dev/null", "-H", "Accept: application/openmetrics-text; version=1.0.0", url])
        #expect(headers.lowercased().contains("content-type: application/openmetrics-text; version=1.0.0"))
        let om = try Self.curl(["-H", "Accept: application/openmetrics-text; version=1.0.0", url])
        #expect(om.hasSuffix("# EOF\n"))
        let parse = try run(Self.pythonVenv, ["-c", """
            import sys
            from prometheus_client.openmetrics.parser import text_string_to_metric_families
            fams = list(text_string_to_metric_families(sys.stdin.read()))
            print(len(fams), sum(len(f.samples) for f in fams))
            """], stdin: om)
        #expect(parse.split(separator: " ").first.flatMap { Int($0) }.map { $0 >= 10 } == true, "parser said \(parse)")
        #expect(try gmon.stop() == 0)
    }

    @Test func badRequestsGetProperAnswersAndBusyPortIsAnError() throws {
        let path = Fixtures.binary("1.21.13", "normal")
        let gmon = try GmonProcess(["--path", path, "--metrics-address", "127.0.0.1:0"])
        try gmon.waitUntilAttached()
        let base = "http://\(try Self.metricsURL(gmon))"
        func code(_ args: [String]) throws -> String { try Self.curl(["-o", "/dev/null", "-w", "%{http_code}"] + args) }
        #expect(try code(["\(base)/healthz"]) == "200")
        #expect(try code(["\(base)/nope"]) == "404")
        #expect(try code(["-X", "POST", "\(base)/metrics"]) == "405" || (try code(["-X", "POST", "\(base)/metrics"])) == "404")
        let huge = String(repeating: "x", count: 100_000)
        let hugeCode = try code(["-H", "X-Big: \(huge)", "\(base)/metrics"])
        #expect(hugeCode.hasPrefix("4") || hugeCode == "000", "huge header answered \(hugeCode)")
        // A client that connects and says nothing must not block others.
        let slow = Process()
        slow.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        slow.arguments = ["-s", "--max-time", "5", "telnet://\(base.dropFirst(7))"]
        slow.standardInput = Pipe()
        slow.standardOutput = FileHandle.nullDevice
        try slow.run()
        #expect(try code(["\(base)/metrics"]) == "200")
        slow.terminate()
        // Monitoring kept working through all that.
        _ = try FixtureProcess(path, ["-a", "10", "-b", "1", "-c", "1"]).finish()
        usleep(1_200_000)
        #expect(try Self.curl(["\(base)/metrics"]).contains("function=\"main.shortLived\""))

        // A second gmon on the same port fails with a clear message.
        let port = base.split(separator: ":").last!
        let second = try GmonProcess(["--path", path, "--metrics-address", "127.0.0.1:\(port)"])
        second.process.waitUntilExit()
        #expect(second.process.terminationStatus != 0)
        #expect(second.stderr.contains("is busy"), "\(second.stderr)")
        #expect(try gmon.stop() == 0)
    }
}
}

extension EndToEnd {
    @Suite struct MetricsUnderLoadTests {
        /// Ten scrapers hammering /metrics while the fixture runs: every scrape is answered
        /// and every event is still counted exactly.
        @Test func concurrentScrapersDoNotDisturbCounting() throws {
            let path = Fixtures.binary("1.26.6", "normal")
            let gmon = try GmonProcess(["--path", path, "--metrics-address", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug"])
            try gmon.waitUntilAttached()
            let url = "http://\(try MetricsTests.metricsURL(gmon))/metrics"
            let stop = NIOFlag()
            let group = DispatchGroup()
            let failures = Counter(), scrapes = Counter()
            // Ten threads of their own (GCD's pool may run as few as one per core here).
            for i in 0..<10 {
                group.enter()
                Thread {
                    while !stop.isSet {
                        let args = i % 2 == 0 ? [url] : ["-H", "Accept: application/openmetrics-text; version=1.0.0", url]
                        if let body = try? MetricsTests.curl(args), body.contains("gmon_events_total") { scrapes.add() } else { failures.add() }
                    }
                    group.leave()
                }.start()
            }
            // Scraping is under way before counting starts, and lasts as long (site B lives 2 s).
            let end = Date().addingTimeInterval(20)
            while scrapes.value < 10 && Date() < end { usleep(10_000) }
            let before = scrapes.value
            let fixture = try FixtureProcess(path, ["-a", "3000", "-b", "300", "-c", "20", "-b-life", "2s"])
            let (status, output) = fixture.finish()
            #expect(status == 0)
            try gmon.waitForOutput("\"msg\":\"process exited\",\"pid\":\(fixture.process.processIdentifier)")
            stop.set()
            group.wait()
            #expect(try gmon.stop() == 0)
            #expect(failures.value == 0 && before >= 10 && scrapes.value > before + 10, "\(scrapes.value) scrapes (\(before) before counting), \(failures.value) failed")
            LiveMonitoringTests.checkAgainstTruth(Truth.parse(output), LiveMonitoringTests.counts(gmon.events, pid: fixture.process.processIdentifier), "under scrapes")
        }

        /// Tens of thousands of series, ten scrapers: every scrape is answered and the
        /// scraped gmon still counts the program's next burst of goroutines exactly.
        @Test func manySeriesUnderScrapeLoad() throws {
            let many = Fixtures.root.appendingPathComponent("manysites").path
            let gmon = try GmonProcess(["--path", many, "--metrics-address", "127.0.0.1:0", "--max-sites", "5000", "--log-level", "warn"])
            try gmon.waitUntilAttached()
            let url = "http://\(try MetricsTests.metricsURL(gmon))/metrics"
            let program = try FixtureProcess(many, [])
            _ = program.waitForLine("ready")
            usleep(1_500_000)
            let series = try MetricsTests.curl([url]).split(separator: "\n").filter { !$0.hasPrefix("#") }.count
            #expect(series >= 20_000, "only \(series) series")
            let stop = NIOFlag(), group = DispatchGroup(), failures = Counter(), scrapes = Counter()
            for i in 0..<10 {
                DispatchQueue.global().async(group: group) {
                    while !stop.isSet {
                        let args = i % 2 == 0 ? [url] : ["-H", "Accept: application/openmetrics-text; version=1.0.0", url]
                        if let b = try? MetricsTests.curl(args), b.contains("gmon_events_total") { scrapes.add() } else { failures.add() }
                    }
                }
            }
            // The burst starts once scrapes are in flight, and scraping goes on until twenty are done.
            let end = Date().addingTimeInterval(60)
            while scrapes.value < 3 && Date() < end { usleep(20_000) }
            program.send("")
            let output = program.waitForLine("done")
            while scrapes.value < 20 && Date() < end { usleep(20_000) }
            stop.set()
            group.wait()
            program.send("")
            _ = program.finish()
            #expect(try gmon.stop() == 0)
            #expect(failures.value == 0 && scrapes.value >= 20, "\(scrapes.value) scrapes, \(failures.value) failed")
            let truth = try #require(Truth.parse(output).first)
            let row = FaultTests.summaryRow(gmon.stderr, function: truth.function)
            #expect(row?.created == truth.created && row?.exited == truth.exited, "\(String(describing: row)) vs \(truth)")
            #expect(gmon.stderr.contains("2000 goroutines") || gmon.stderr.contains("more creation sites"))
        }

        /// Past --max-sites, sites share one created_by="other" series and the folding is counted.
        @Test func cardinalityIsBounded() throws {
            let path = Fixtures.binary("1.22.10", "pie")
            let gmon = try GmonProcess(["--path", path, "--metrics-address", "127.0.0.1:0", "--max-sites", "2"])
            try gmon.waitUntilAttached()
            _ = try FixtureProcess(path, ["-a", "50", "-b", "5", "-c", "2"]).finish()
            usleep(1_500_000)
            let body = try MetricsTests.curl(["http://\(try MetricsTests.metricsURL(gmon))/metrics"])
            var sites = Set<String>()
            for line in body.split(separator: "\n") where line.hasPrefix("gmon_goroutines_created_total{") {
                if let r = line.range(of: "created_by=\"") {
                    sites.insert(String(line[r.upperBound...].prefix { $0 != "\"" }))
                }
            }
            #expect(sites.contains("other"))
            #expect(sites.count <= 3, "\(sites.count) created_by series with --max-sites 2: \(sites)")
            var folded = 0.0
            for line in body.split(separator: "\n") where line.hasPrefix("gmon_sites_folded_total") {
                folded = Double(line.split(separator: " ").last ?? "") ?? 0
            }
            #expect(folded >= 1, "gmon_sites_folded_total is \(folded)")
            #expect(try gmon.stop() == 0)
        }
    }
}

/// Thread-safe flag and counter for the scraper threads.
final class NIOFlag: @unchecked Sendable {
    private let lock = NSLock(); private var v = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return v }
    func set() { lock.lock(); v = true; lock.unlock() }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock(); private var v = 0
    var value: Int { lock.lock(); defer { lock.unlock() }; return v }
    func add() { lock.lock(); v += 1; lock.unlock() }
}
