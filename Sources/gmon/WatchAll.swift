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
        let metrics = GoroutineMetrics(exe: "", maxSites: maxSites, version: GMon.version, goVersion: "", snapshots: snapshotInterval > 0,
                                       stackLabels: stackLabels)
        let server = try startServer(metrics)
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
        let log = LogWriter(fd: 1, format: LogWriter.Format(rawValue: logFormat)!, level: level, stackDepth: stackDepth)
        let resolver = OwnerResolver()
        // Every runtime.g of a supported release is larger than 256 bytes (the keys of live goroutines).
        let tracker = Tracker(resolver: resolver, gStride: 256, maxStacks: maxStacks)
        let pipeline = EventPipeline(tracker: tracker, metrics: server == nil ? nil : metrics, log: log)
        let monitor = Monitor(session: session, pipeline: pipeline, metrics: server == nil ? nil : metrics, log: log,
                              options: .init(duration: duration, pid: nil, bufferBytes: bufferMB << 20), stop: stopToken)
        let agent = Agent(session: session, resolver: resolver, pipeline: pipeline, metrics: server == nil ? nil : metrics, log: log,
                          options: .init(filters: Filters(exe: exeGlobs, excludeExe: excludeExeGlobs, containers: containers),
                                         classicProbes: classicProbes, staleAfterSeconds: staleAfter, podLogRoot: podLogRoot),
                          stop: stopToken, say: { standardErrorLine($0) })
        // Programs that start from now on are reported by the kernel (the exec tracepoint is on):
        // none falls between the scan and the first drain.
        agent.scan()
        wireSummary(monitor, tracker)
        monitor.afterDrain = { agent.afterDrain() }
        monitor.everySecond = { agent.everySecond() }
        monitor.willDetach = { server?.isAttached = false }
        monitor.warn = { standardErrorLine($0) }
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
        try finish(outcome, tracker: tracker, log: log, server: server)
    }
}
