// gmon-floors: the floors `make bench` compares gmon with, on gmon's probe sites. Not part
// of gmon: its programs live in an object of their own (GmonProbeFloors).
//   --count-only          uprobes that only count (what a probe at the site costs)
//   --deliver-only        an empty record per hit through per-CPU rings, counted and dropped
//   --drop-in-user-space  gmon's own probes, their records counted and dropped unread
// It prints the lines bench.sh reads: "gmon: watching", the counts, "lost events: ring
// buffer full N", "gmon: own cost".
import CGmonEvents
import Foundation
import GmonProbeFloors
import GmonProbes
import GoBinary
import GoRuntime
import LibBPF
import ProcFS

let stop = StopToken()
signal(SIGINT) { _ in stop.request() }
signal(SIGTERM) { _ in stop.request() }

func usage() -> Never {
    FileHandle.standardError.write("usage: gmon-floors --path GO_EXECUTABLE (--count-only | --deliver-only | --drop-in-user-space) [--classic-probes] [ignored gmon flags]\n".data(using: .utf8)!)
    exit(2)
}

var args = Array(CommandLine.arguments.dropFirst())
var path: String?, mode: String?, classic = false
while !args.isEmpty {
    let a = args.removeFirst()
    switch a {
    case "--path": path = args.isEmpty ? nil : args.removeFirst()
    case "--count-only", "--deliver-only", "--drop-in-user-space": mode = a
    case "--classic-probes": classic = true
    case "--metrics-address", "--log-level": if !args.isEmpty { args.removeFirst() }   // gmon's, for the same command lines
    default: break
    }
}
guard let path, let mode else { usage() }

func run(path: String, mode: String, classic: Bool) throws {
    let file = try OpenedExecutable(path: path)
    let exe = try GoExecutable(path: file.kernelPath)
    let plan = try AttachPoints.plan(for: exe, classic: classic)
    let cpus = try CPURings.possibleCPUs()
    let ringBytes: UInt32 = UInt32(max(1, min(4, 16 / cpus))) << 20
    var links: [BPFLink] = []
    var rings: CPURings?
    var session: ProbeSession?
    var floors: FloorsObject?
    var report: () -> [String] = { [] }
    switch mode {
    case "--count-only", "--deliver-only":
        let f = try FloorsObject()
        floors = f
        let deliver = mode == "--deliver-only"
        try f.object.setMaxEntries(map: FloorsObject.Map.rings.rawValue, UInt32(cpus))
        for p in FloorsObject.Program.allCases { try f.object.setAutoload(p.rawValue, deliver == (p == .deliver)) }
        try f.object.load()
        if deliver {
            rings = try CPURings(outer: try f.map(.rings), count: cpus, bytesPerRing: ringBytes,
                                 timestampOffset: MemoryLayout<gmon_event_header>.offset(of: \.ktime_ns)!)
        }
        for (a, p) in [(plan.exit, deliver ? FloorsObject.Program.deliver : .countExit), (plan.creation, deliver ? .deliver : .countCreate)] {
            links.append(try f.program(p).attachUprobe(binary: file.kernelPath, fileOffset: a.fileOffset, pid: nil, returnProbe: a.isReturnProbe))
        }
        report = {
            deliver ? ["lost events: ring buffer full \(f.count(.ringFull)) (records of the delivery floor)"]
                : ["gmon: count-only: creations \(f.count(.creations)) exits \(f.count(.exits))"]
        }
    default:
        let s = try ProbeSession(options: .init(collectStacks: true, exitGoid: false, ringBufferBytes: ringBytes), stop: stop)
        _ = try s.attach(file: file.kernelPath, layout: try exe.runtimeLayout(), plan: plan, pid: nil)
        rings = s.rings
        session = s
        report = {
            let c = s.counters()
            return ["lost events: ring buffer full \(c(GMON_LOST_CREATE_RINGBUF) + c(GMON_LOST_EXIT_RINGBUF) + c(GMON_LOST_PROC_RINGBUF)) (creations \(c(GMON_LOST_CREATE_RINGBUF)), exits \(c(GMON_LOST_EXIT_RINGBUF)), process exits \(c(GMON_LOST_PROC_RINGBUF)))"]
        }
    }
    FileHandle.standardError.write("gmon: watching \(path) (\(mode)); stop with Ctrl-C\n".data(using: .utf8)!)
    var delivered: UInt64 = 0
    while !stop.isRequested {
        if let r = rings {
            try r.wait(timeoutMs: 20)
            r.drain(before: .max) { _ in delivered += 1 }
        } else {
            usleep(20_000)
        }
    }
    for l in links { l.destroy() }
    session?.detach()
    rings?.drain(before: .max) { _ in delivered += 1 }
    var lines = report()
    if rings != nil { lines.append("gmon: records delivered and dropped: \(delivered)") }
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let cpu = { (t: timeval) in Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    lines.append("gmon: own cost: user \(cpu(usage.ru_utime)) s, system \(cpu(usage.ru_stime)) s, peak RSS \(usage.ru_maxrss / 1024) MB")
    withExtendedLifetime(floors) {}
    FileHandle.standardError.write((lines.joined(separator: "\n") + "\n").data(using: .utf8)!)
}

do { try run(path: path, mode: mode, classic: classic) } catch {
    FileHandle.standardError.write("gmon-floors: \(error)\n".data(using: .utf8)!)
    exit(1)
}
