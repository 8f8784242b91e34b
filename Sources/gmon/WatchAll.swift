import Discovery
import GmonExporters
import GmonMetrics
import GmonModel
import GmonProbes
import GoroutineTracker
import Monitor
import ProcFS
import LibBPF
import Foundation

extension Watch {
    /// `gmon --all`: the agent finds the Go programs; the rest is the single-executable wiring.
    func runAll() throws {
        let metrics = GoroutineMetrics(exe: "", maxSites: maxSites, version: GMon.version, goVersion: "", snapshots: snapshotInterval > 0)
        var server: MetricsServer?
        if !noMetrics {
            let (host, port) = try metricsPort.map { ("127.0.0.1", $0) } ?? parseListenAddress(metricsAddress)
            let s = MetricsServer(metrics: metrics)
            try s.start(host: host, port: port)
            server = s
        }
        let level = LogWriter.Level(name: logLevel)!   // validated
        let session: ProbeSession
        do {
            session = try ProbeSession(options: .init(collectStacks: !noStacks, exitGoid: level == .debug,
                                                      ringBufferBytes: UInt32(try ringBufferMB ?? Self.defaultRingMB(cpus: CPURings.possibleCPUs())) << 20,
                                                      reportExecs: true),
                                       stop: stopToken)
        } catch let f as ProbeSession.Failure {
            server?.stop()
            throw CLIError(f.description)
        }
        let log = LogWriter(fd: 1, format: LogWriter.Format(rawValue: logFormat)!, level: level)
        let resolver = OwnerResolver()
        // Every runtime.g of a supported release is larger than 256 bytes (the keys of live goroutines).
        let tracker = Tracker(resolver: resolver, gStride: 256, maxStacks: maxStacks)
        let pipeline = EventPipeline(tracker: tracker, metrics: server == nil ? nil : metrics, log: log)
        let monitor = Monitor(session: session, pipeline: pipeline, metrics: server == nil ? nil : metrics, log: log,
                              options: .init(duration: duration, pid: nil, bufferBytes: bufferMB << 20), stop: stopToken)
        let agent = Agent(session: session, resolver: resolver, pipeline: pipeline, metrics: server == nil ? nil : metrics, log: log,
                          options: .init(filters: Filters(exe: exeGlobs, excludeExe: excludeExeGlobs, containers: containers),
                                         classicProbes: classicProbes, staleAfterSeconds: staleAfter, podLogRoot: podLogRoot),
                          stop: stopToken, say: standardErrorLine)
        // Programs that start from now on are reported by the kernel (the exec tracepoint is on):
        // none falls between the scan and the first drain.
        agent.scan()
        monitor.afterDrain = { agent.afterDrain() }
        monitor.everySecond = { agent.everySecond() }
        monitor.willDetach = { server?.isAttached = false }
        var snapshots: PeriodicSnapshots?
        if snapshotInterval > 0 && server != nil {
            let s = PeriodicSnapshots(interval: snapshotInterval, maxRows: maxSites, states: metrics.states) { agent.snapshotTargets() }
            s.start()
            snapshots = s
        }
        server?.isAttached = true
        let metricsNote = server.map { "; metrics on http://\($0.boundAddress)/metrics" } ?? ""
        standardErrorLine("gmon: watching every Go program on this host: \(agent.watchedCount) executable\(agent.watchedCount == 1 ? "" : "s") now, \(agent.seededGoroutines) goroutines already running\(metricsNote); stop with Ctrl-C")
        let outcome = try monitor.run()
        snapshots?.cancel()
        if let r = outcome.reason { standardErrorLine("gmon: \(r)") }
        standardErrorLine(Summary.render(tracker: tracker, losses: outcome.losses))
        if outcome.afterStop > 0 { standardErrorLine("gmon: \(outcome.afterStop) events stamped after gmon stopped watching were left out") }
        standardErrorLine(ownCost())
        server?.stop()
        if log.writeError > 0 {
            throw CLIError("writing the logs to stdout failed: \(String(cString: strerror(log.writeError))); gmon stopped (\(log.droppedLines) lines not written)")
        }
    }
}
