import GmonModel
import Testing
@testable import GmonMetrics

@Suite struct ExpositionTests {
    @Test func openMetricsIsAskedForByAcceptHeader() {
        #expect(Exposition.wantsOpenMetrics(accept: "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"))
        #expect(!Exposition.wantsOpenMetrics(accept: "text/plain"))
        #expect(!Exposition.wantsOpenMetrics(accept: nil))
    }

    /// OpenMetrics names counter families without _total; samples keep it; gauges are untouched.
    @Test func counterFamiliesLoseTotalInOpenMetrics() {
        let text = """
        # HELP gmon_events_total Events.
        # TYPE gmon_events_total counter
        gmon_events_total{type="create"} 3
        # HELP gmon_processes_traced Processes.
        # TYPE gmon_processes_traced gauge
        gmon_processes_traced 1

        """
        let om = String(decoding: Exposition.toOpenMetrics(Array(text.utf8)), as: UTF8.self)
        #expect(om == """
        # HELP gmon_events Events.
        # TYPE gmon_events counter
        gmon_events_total{type="create"} 3
        # HELP gmon_processes_traced Processes.
        # TYPE gmon_processes_traced gauge
        gmon_processes_traced 1

        """)
    }

    func metrics() -> GoroutineMetrics { GoroutineMetrics(exe: "app", maxSites: 10, version: "0.1.0", goVersion: "go1.25.5") }

    /// A site's series: exe of its executable, function, created_by and the frames past
    /// created_by's (which stack_0 would repeat), escaped; runtime.goexit left out.
    @Test func siteSeriesCarryTheirLabels() {
        let m = metrics()
        m.executableNames[.init(1)] = "other-app"
        let f = Frame(function: "main.main", file: "/src/main.go", line: 7, inlined: false)
        let odd = Frame.note("a \"quoted\" \\ frame\nwith a newline")
        m.created(site: 0, CreationSite(executable: .init(1), function: "main.worker", createdBy: f, stack: [f, odd]))
        let goexit = Frame(function: "runtime.goexit", file: "/go/src/runtime/asm_amd64.s", line: 1700, inlined: false)
        m.created(site: 1, CreationSite(executable: .init(0), function: "main.worker", createdBy: f, stack: [f, goexit]))
        m.publish()
        let text = String(decoding: m.render(openMetrics: false), as: UTF8.self)
        #expect(text.contains(#"gmon_goroutines_created_total{exe="other-app",function="main.worker",created_by="main.main (main.go:7)",stack_1="a \"quoted\" \\ frame\nwith a newline"} 1"#), "\(text)")
        #expect(text.contains(#"gmon_goroutines_created_total{exe="app",function="main.worker",created_by="main.main (main.go:7)"} 1"#), "\(text)")
        let om = String(decoding: m.render(openMetrics: true), as: UTF8.self)
        #expect(om.hasSuffix("# EOF\n"))
        #expect(om.contains("# TYPE gmon_goroutines_created counter"))
    }

    /// Scrape size: the lifetime histogram is one per function and created_by, summed over
    /// their stacks, and a site costs a bounded number of bytes. 1,000 sites of 100 go
    /// statements (10 stacks each) with labels as long as a real server's (Prometheus's
    /// own sites): 1,821 bytes a site, bounded at 2,000 (it was ~12 KB: a histogram on every
    /// site's full labels, five stack labels of which stack_0 repeated created_by).
    @Test func scrapeBytesPerSiteAreBounded() {
        let m = GoroutineMetrics(exe: "prometheus", maxSites: 5_000, version: "0.1.0", goVersion: "go1.25.5")
        func frame(_ f: String, _ line: Int) -> Frame { Frame(function: f, file: "/build/src/github.com/prometheus/prometheus/\(f.split(separator: ".").first!)/x.go", line: line, inlined: false) }
        for i in 0..<1_000 {
            let statement = i / 10
            let by = frame("github.com/prometheus/prometheus/scrape.(*scrapeLoop).run\(statement)", 1_200 + statement)
            let stack = [by, frame("github.com/prometheus/prometheus/scrape.(*scrapePool).sync\(i % 10)", 700 + i),
                         frame("github.com/prometheus/prometheus/scrape.(*Manager).reload", 190), frame("runtime.goexit", 1700)]
            m.created(site: Int32(i), CreationSite(executable: .init(0), function: "github.com/prometheus/prometheus/scrape.(*scrapeLoop).worker\(statement)", createdBy: by, stack: stack))
            m.exited(site: Int32(i), CreationSite(executable: .init(0), function: "github.com/prometheus/prometheus/scrape.(*scrapeLoop).worker\(statement)", createdBy: by, stack: stack), lifetimeNs: 5_000_000)
        }
        m.publish()
        let text = String(decoding: m.render(openMetrics: false), as: UTF8.self)
        let histograms = text.split(separator: "\n").filter { $0.hasPrefix("gmon_goroutine_lifetime_seconds_count{") }
        #expect(histograms.count == 100, "one histogram per go statement: \(histograms.count)")
        #expect(histograms.allSatisfy { $0.hasSuffix(" 10") && !$0.contains("stack_") })
        #expect(!text.contains("runtime.goexit"))
        let perSite = text.utf8.count / 1_000
        print("scrape: \(text.utf8.count) bytes for 1,000 sites, \(perSite) bytes a site")
        #expect(perSite < 2_000, "\(perSite) bytes a site")
    }

    /// gmon's own families carry `exe` when it watches one executable (none with --all, where
    /// they count for the agent), and the registry's families come grouped, in one order
    /// (by name) from scrape to scrape and run to run.
    @Test func ownFamiliesCarryExeInAFixedOrder() {
        let one = GoroutineMetrics(exe: "app", maxSites: 10, version: "0.1.0", goVersion: "go1.25.5")
        let text = String(decoding: one.render(openMetrics: false), as: UTF8.self)
        #expect(text.contains(#"gmon_events_total{exe="app",type="create"} 0"#), "\(text)")
        #expect(text.contains(#"gmon_events_lost_total{exe="app",reason="ringbuf_full"} 0"#), "\(text)")
        let families = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE gmon_") }.map { $0.split(separator: " ")[2] }
        let registry = Array(families.prefix { !$0.hasPrefix("gmon_goroutine") })
        #expect(registry.count >= 8 && registry == registry.sorted(), "families in a fixed order: \(registry)")
        #expect(Set(families).count == families.count, "each family once, its lines together: \(families)")
        let again = GoroutineMetrics(exe: "app", maxSites: 10, version: "0.1.0", goVersion: "go1.25.5")
        #expect(String(decoding: again.render(openMetrics: false), as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("# TYPE") }
                == text.split(separator: "\n").filter { $0.hasPrefix("# TYPE") })
        let agent = String(decoding: GoroutineMetrics(exe: "", maxSites: 10, version: "0.1.0", goVersion: "").render(openMetrics: false), as: UTF8.self)
        #expect(agent.contains(#"gmon_events_total{type="create"} 0"#) && !agent.contains(#"exe="""#), "with --all, no empty exe label: \(agent)")
    }
}
