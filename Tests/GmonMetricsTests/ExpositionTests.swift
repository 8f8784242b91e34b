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

    /// A site's series: exe of its executable, function, created_by and the first five frames, escaped.
    @Test func siteSeriesCarryTheirLabels() {
        let m = metrics()
        m.executableNames[.init(1)] = "other-app"
        let f = Frame(function: "main.main", file: "/src/main.go", line: 7, inlined: false)
        let odd = Frame.note("a \"quoted\" \\ frame\nwith a newline")
        m.created(site: 0, CreationSite(executable: .init(1), function: "main.worker", createdBy: f, stack: [f, odd]))
        m.created(site: 1, CreationSite(executable: .init(0), function: "main.worker", createdBy: f, stack: [f]))
        m.publish()
        let text = String(decoding: m.render(openMetrics: false), as: UTF8.self)
        #expect(text.contains(#"gmon_goroutines_created_total{exe="other-app",function="main.worker",created_by="main.main (main.go:7)",stack_0="main.main (main.go:7)",stack_1="a \"quoted\" \\ frame\nwith a newline"} 1"#), "\(text)")
        #expect(text.contains(#"gmon_goroutines_created_total{exe="app",function="main.worker",created_by="main.main (main.go:7)",stack_0="main.main (main.go:7)"} 1"#))
        let om = String(decoding: m.render(openMetrics: true), as: UTF8.self)
        #expect(om.hasSuffix("# EOF\n"))
        #expect(om.contains("# TYPE gmon_goroutines_created counter"))
    }
}
