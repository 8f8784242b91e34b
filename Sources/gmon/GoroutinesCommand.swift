import ArgumentParser
import Foundation
import GmonExporters
import GoBinary
import GoroutineSnapshot
import GoRuntime
import PprofExport
import ProcFS

struct Goroutines: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "goroutines",
        abstract: "Print every goroutine of a running Go process, read from its memory (no BPF; the process is never stopped).")

    @Option(name: [.customLong("pid"), .customLong("pid", withSingleDash: true)], help: "The Go process to read.")
    var pid: Int32

    @Flag(name: .customLong("each"), help: "One entry per goroutine, like Go's debug=2 dump (default: groups of identical stacks, largest first).")
    var each = false

    @Flag(name: .customLong("json"), help: "JSON (schema in the README).")
    var json = false

    @Option(name: .customLong("pprof"), help: "Also write a goroutine profile in pprof's format (gzipped protobuf) to this file, for go tool pprof.")
    var pprofFile: String?

    @Flag(name: .customLong("count"), help: "Only how many goroutines are in each status.")
    var count = false

    @Flag(name: .customLong("system"), help: "Include the runtime's own goroutines (GC workers, finalizer…), which Go's dumps leave out.")
    var system = false

    @Option(name: .customLong("layout"), help: "runtime.g's offsets for a Go release gmon does not know, when the binary has no DWARF: the JSON `gmon inspect --json` prints for a build of that release with DWARF.")
    var layoutFile: String?

    func validate() throws {
        if pid <= 0 { throw ValidationError("--pid \(pid) is not a process id") }
        if each && json { throw ValidationError("--each and --json do not go together: pick one") }
    }

    func run() throws {
        if geteuid() != 0, (ProcFS.effectiveCapabilities() ?? 0) & (1 << UInt64(ProcFS.capSysPtrace)) == 0 {
            throw CLIError("gmon goroutines needs root (or CAP_SYS_PTRACE) to read process \(pid)'s memory: run it with sudo")
        }
        let file = try openExecutable(pid: pid, path: nil)
        let exe = try loadExecutable(file.kernelPath, shownAs: "process \(pid) (\(file.displayPath))")
        let override = try layoutFile.map(Self.readLayout)
        let snap: GoroutineReader.Snapshot
        do {
            snap = try GoroutineReader(pid: pid, exe: exe, file: file.identity, layout: override).snapshot()
        } catch let f as GoroutineReader.Failure {
            throw CLIError("process \(pid) (\(file.displayPath)): \(f)")
        } catch let f as ProcessMemory.Failure {
            throw CLIError(f.description)
        }
        if count {
            let byStatus = snap.countByStatus(includingSystem: system)
            print("process \(pid) (\(file.displayPath), \(snap.goVersion)): \(byStatus.values.reduce(0, +)) goroutines")
            for (s, n) in byStatus.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) { print("\(n)\t\(s)") }
            return
        }
        if json {
            // Streamed: never the whole output in memory.
            let out = BufferedStdout()
            GoroutineDump.json(pid: pid, goVersion: snap.goVersion, dead: snap.dead, unreadable: snap.unreadable,
                               forEach: { body in snap.forEach { g in if system || !g.isSystem { body(g) } } }, write: out.write)
            out.flush()
            return
        }
        let shown = snap.goroutines.filter { system || !$0.isSystem }
        if let pprofFile {
            let bytes = try GoroutineProfile.encode(shown, executable: file.displayPath, timeNanos: Int64(Date().timeIntervalSince1970 * 1e9))
            guard FileManager.default.createFile(atPath: pprofFile, contents: Data(bytes)) else {
                throw CLIError("--pprof \(pprofFile): cannot write the file")
            }
        }
        let hidden = snap.goroutines.count - shown.count
        print("process \(pid) (\(file.displayPath), \(snap.goVersion)): \(shown.count) goroutines"
              + (hidden > 0 ? " (and \(hidden) of the runtime's own, shown with --system)" : "")
              + (snap.unreadable > 0 ? "; \(snap.unreadable) g's changed while read and were left out" : "") + "\n")
        print(each ? GoroutineDump.each(shown) : GoroutineDump.grouped(shown), terminator: "")
    }

    /// The `goroutineLayout` of `gmon inspect --json`'s output (or that object alone).
    static func readLayout(_ path: String) throws -> GoroutineLayout {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("--layout \(path): cannot read the file")
        }
        struct Inspected: Decodable { let goroutineLayout: GoroutineLayout? }
        if let l = (try? JSONDecoder().decode(Inspected.self, from: data))?.goroutineLayout { return l }
        do { return try JSONDecoder().decode(GoroutineLayout.self, from: data) } catch {
            throw CLIError("--layout \(path): not the JSON of `gmon inspect --json` (a goroutineLayout object): \(error)")
        }
    }
}

/// stdout in 1 MiB writes.
final class BufferedStdout {
    private var buffer: [UInt8] = []
    init() { buffer.reserveCapacity(1 << 20) }
    func write(_ s: String) {
        buffer += s.utf8
        if buffer.count >= 1 << 20 { flush() }
    }
    func flush() {
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + done, $0.count - done) }
            if n <= 0 { if errno == EINTR { continue }; break }
            done += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
