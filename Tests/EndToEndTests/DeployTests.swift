import Foundation
import Testing
import TestSupport

/// deploy/: the files a user applies, checked against real tools and a real Prometheus
/// scraping `gmon --all`.
extension EndToEnd { @Suite struct DeployTests {
    static let deploy = repositoryRoot.appendingPathComponent("deploy")

    /// The alert rules pass promtool; the manifests parse, and the DaemonSet asks for what
    /// the systemd unit allows (one set of capabilities, measured: README); every query of
    /// the Grafana dashboard and of the alerts runs on a real Prometheus scraping gmon --all,
    /// and the dashboard's live-goroutines query finds the demo's series.
    @Test func deployFilesWorkWithARealPrometheus() throws {
        let rules = try run("/usr/bin/promtool", ["check", "rules", Self.deploy.appendingPathComponent("prometheus/alerts.yml").path])
        #expect(rules.contains("SUCCESS: 3 rules found"), "\(rules)")

        // The manifests as YAML documents (Python's parser), and the capabilities they ask for.
        let summary = try run("/usr/bin/python3", ["-c", """
            import sys, yaml
            docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d and "kind" in d]
            ds = next(d for d in docs if d["kind"] == "DaemonSet")
            spec = ds["spec"]["template"]["spec"]
            c = spec["containers"][0]
            print("kinds", ",".join(sorted(d["kind"] for d in docs)))
            print("hostPID", spec.get("hostPID"))
            print("args", " ".join(c["args"]))
            print("caps", ",".join(sorted(c["securityContext"]["capabilities"]["add"])))
            print("privileged", c["securityContext"]["privileged"])
            """, Self.deploy.appendingPathComponent("kubernetes/daemonset.yaml").path,
            Self.deploy.appendingPathComponent("kubernetes/podmonitor.yaml").path,
            Self.deploy.appendingPathComponent("prometheus/scrape.yml").path])
        #expect(summary.contains("kinds DaemonSet,Namespace,PodMonitor"), "\(summary)")
        #expect(summary.contains("hostPID True") && summary.contains("args --all") && summary.contains("privileged False"), "\(summary)")
        let unit = try String(contentsOf: Self.deploy.appendingPathComponent("gmon.service"), encoding: .utf8)
        let unitCaps = unit.split(separator: "\n").first { $0.hasPrefix("CapabilityBoundingSet=") }?
            .dropFirst("CapabilityBoundingSet=".count).split(separator: " ").map { String($0.dropFirst(4)) }.sorted().joined(separator: ",")
        #expect(summary.contains("caps \(unitCaps ?? "-")"), "the DaemonSet's capabilities and the unit's differ: \(summary) vs \(unitCaps ?? "-")")

        // gmon --all on the demo service, scraped by Prometheus.
        let demo = try FixtureProcess(repositoryRoot.appendingPathComponent(".fixtures/demo").path, ["-addr", "127.0.0.1:\(MetricsTests.freePort())"])
        _ = demo
        let gmon = try GmonProcess(["--all", "--exe", "demo", "--snapshot-interval", "1", "--log-level", "warn"])
        let end = Date().addingTimeInterval(30)
        while !gmon.stderr.contains("watching every Go program") && Date() < end { usleep(50_000) }
        let (prom, promAddress) = try MetricsTests.startPrometheus(target: try MetricsTests.metricsURL(gmon))
        defer { prom.terminate(); prom.waitUntilExit() }
        let scraped = Date().addingTimeInterval(30)
        while (try? MetricsTests.query(promAddress, "sum(gmon_goroutines_live)")) == nil && Date() < scraped { usleep(250_000) }

        let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.deploy.appendingPathComponent("grafana/gmon.json"))) as! [String: Any]
        var exprs = (dashboard["panels"] as! [[String: Any]]).flatMap { ($0["targets"] as! [[String: Any]]).map { $0["expr"] as! String } }
        let alertText = try String(contentsOf: Self.deploy.appendingPathComponent("prometheus/alerts.yml"), encoding: .utf8)
        #expect(exprs.count >= 9)
        for (k, v) in [("$namespace", ".*"), ("$pod", ".*"), ("$exe", ".*"), ("$__rate_interval", "1m")] { exprs = exprs.map { $0.replacingOccurrences(of: k, with: v) } }
        var failures: [String] = []
        for e in exprs {
            let out = try MetricsTests.curl(["-G", "http://\(promAddress)/api/v1/query", "--data-urlencode", "query=\(e)"])
            if !out.contains("\"status\":\"success\"") { failures.append("\(e): \(out.prefix(300))") }
        }
        #expect(failures.isEmpty, "dashboard queries Prometheus refuses: \(failures)")
        let live = try MetricsTests.curl(["-G", "http://\(promAddress)/api/v1/query", "--data-urlencode", "query=\(exprs[0])"])
        #expect(live.contains("\"exe\":\"demo\""), "the live-goroutines panel finds the demo: \(live.prefix(500))")
        #expect(alertText.contains("gmon_goroutines_by_status"))
        #expect(try gmon.stop() == 0)
    }
} }
