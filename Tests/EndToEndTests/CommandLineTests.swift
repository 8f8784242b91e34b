import Foundation
import Testing
import TestSupport

/// The command line as a new user meets it: help, version, positional arguments, what
/// inspect reads from real binaries. Each runs the built gmon.
extension EndToEnd {
    @Suite struct CommandLineTests {
        /// stdout, stderr and exit status of a gmon that is expected to end by itself.
        static func gmon(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: GmonProcess.executable)
            p.arguments = args
            // Help is wrapped to the terminal's width: a fixed one, whatever runs the tests.
            p.environment = ["COLUMNS": "80", "PATH": "/usr/bin:/bin"]
            let out = Pipe(), err = Pipe()
            p.standardOutput = out
            p.standardError = err
            p.standardInput = FileHandle.nullDevice
            try p.run()
            let watchdog = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
            DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: watchdog)
            let e = DispatchQueue.global().sync { err.fileHandleForReading.readDataToEndOfFile() }
            let o = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            watchdog.cancel()
            return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
        }

        /// The first lines of `gmon --help`: the main job's usage and options, not only the subcommands.
        @Test func helpShowsTheMainJobsOptions() throws {
            let expected = """
            OVERVIEW: Watch the goroutines of unmodified Go programs with eBPF.

            USAGE: gmon [<path-or-pid>] [--path <path>] [--pid <pid>] [--all] [<options>]
                   gmon <subcommand>

            ARGUMENTS:
              <path-or-pid>           A Go executable's path (as --path) or, when no such
                                      file exists and it is all digits, a process id (as
                                      --pid).

            OPTIONS:
              --path, -path <path>    Go executable to watch: every running and future
                                      process of it.
              --pid, -pid <pid>       Watch only this process.
              --all                   Watch every Go program on the host, running now and
                                      started later, in containers too (a node agent).
            """
            // Also when the main job's options come first (its help is the main help).
            for flag in [["--help"], ["-h"], ["help"], ["--log-format", "json", "--help"]] {
                let r = try Self.gmon(flag)
                #expect(r.status == 0)
                let head = r.out.split(separator: "\n", omittingEmptySubsequences: false).prefix(expected.split(separator: "\n", omittingEmptySubsequences: false).count).joined(separator: "\n")
                #expect(head == expected, "gmon \(flag):\n\(r.out)")
                for option in ["--metrics-address", "--log-format", "--stack-depth", "--duration"] { #expect(r.out.contains(option), "\(option) missing") }
                #expect(r.out.contains("SUBCOMMANDS:") && r.out.contains("inspect") && r.out.contains("goroutines"))
            }
        }

        @Test func versionIsTheSameEverywhere() throws {
            for args in [["version"], ["--version"], ["-version"]] {
                let r = try Self.gmon(args)
                #expect(r.status == 0 && r.out == "gmon 0.1.0\n", "gmon \(args): \(r.out)\(r.err)")
            }
        }

        /// A path or a pid without its flag; what is neither is named, with one line and a non-zero exit.
        @Test func positionalPathOrPid() throws {
            let path = Fixtures.binary("1.25.5", "normal")
            let byPath = try Self.gmon([path, "--duration", "0.5", "--no-metrics"])
            #expect(byPath.status == 0 && byPath.err.contains("gmon: watching \(path) (go1.25.5)"), "\(byPath.err)")

            let fixture = try GoroutinesCommandTests.blocked("1.25.5", "normal")
            let pid = fixture.process.processIdentifier
            let byPid = try Self.gmon([String(pid), "--duration", "0.5", "--no-metrics"])
            #expect(byPid.status == 0 && byPid.err.contains("gmon: watching process \(pid) of "), "\(byPid.err)")

            let typo = try Self.gmon(["verison"])
            #expect(typo.status != 0)
            #expect(typo.err == "gmon: verison: no such file, and not a process id: give the path of a Go executable or a pid (see gmon --help)\n", "\(typo.err)")
            let both = try Self.gmon([path, "--path", path])
            #expect(both.status != 0 && both.err.contains("not both") && both.err.split(separator: "\n").count == 1, "\(both.err)")
            let withAll = try Self.gmon(["--all", path])
            #expect(withAll.status != 0 && withAll.err.contains("--all watches every Go program: drop \(path)"), "\(withAll.err)")
            let zero = try Self.gmon(["0"])
            #expect(zero.status != 0 && zero.err.contains("--pid 0 is not a process id"), "\(zero.err)")
        }

        /// A subcommand's bad option is shown with that subcommand's usage.
        @Test func inspectErrorsShowInspectsUsage() throws {
            let r = try Self.gmon(["inspect", Fixtures.binary("1.25.5", "normal"), "--pc", "zz"])
            #expect(r.status != 0)
            #expect(r.err.hasPrefix("Error: --pc zz is not a hexadecimal address"), "\(r.err)")
            #expect(r.err.contains("Usage: gmon inspect <path>") && r.err.contains("gmon inspect --help"), "\(r.err)")
            let offsets = try Self.gmon(["inspect", Fixtures.binary("1.25.5", "normal"), "--goid-offset", "152"])
            #expect(offsets.status != 0 && offsets.err.contains("go together") && offsets.err.contains("Usage: gmon inspect"), "\(offsets.err)")
        }

        /// `:PORT` binds every interface; `-metrics N` keeps loopback and says how to bind every interface.
        @Test func metricsAddresses() throws {
            let path = Fixtures.binary("1.25.5", "normal")
            let port = Int.random(in: 30000...39999)
            let all = try Self.gmon([path, "--duration", "1", "--metrics-address", ":\(port)"])
            #expect(all.status == 0 && all.err.contains("metrics on http://0.0.0.0:\(port)/metrics"), "\(all.err)")
            let legacy = try Self.gmon([path, "--duration", "1", "-metrics", String(port + 1)])
            #expect(legacy.status == 0 && legacy.err.contains("metrics on http://127.0.0.1:\(port + 1)/metrics"), "\(legacy.err)")
            #expect(legacy.err.contains("gmon: note: -metrics \(port + 1) serves on 127.0.0.1:\(port + 1) only (the earlier gmon bound every interface); to bind every interface use --metrics-address :\(port + 1)\n"), "\(legacy.err)")
            let modern = try Self.gmon([path, "--duration", "0.5", "--metrics-port", String(port + 2)])
            #expect(!modern.err.contains("note:"), "\(modern.err)")
            // An IPv6 address is shown as a URL takes it.
            let v6 = try Self.gmon([path, "--duration", "0.5", "--metrics-address", "[::1]:\(port + 3)"])
            #expect(v6.err.contains("metrics on http://[::1]:\(port + 3)/metrics"), "\(v6.err)")
        }

        /// inspect shows the main package and the main module as `go version -m` reads them, from
        /// real binaries: Debian's prometheus (built outside module mode: a path, no module),
        /// a fixture (module mode) and a Go 1.17 build (the older, pointer-based build info).
        @Test(arguments: ["/usr/bin/prometheus", Fixtures.binary("1.25.5", "normal"), Fixtures.legacy("dockerfile-go1.17.1.so")])
        func inspectShowsPathAndModule(_ binary: String) throws {
            let go = try run(Fixtures.oldestGo, ["version", "-m", binary])
            func field(_ name: String) -> [String]? {
                go.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }.first { $0.first == name }.map { Array($0.dropFirst()) }
            }
            let text = try run(GmonProcess.executable, ["inspect", binary])
            let mainPackage = try #require(field("path"), "go version -m shows a path: \(go)")
            #expect(text.contains("main package:   \(mainPackage[0])\n"), "\(text)")
            if let mod = field("mod") {
                #expect(text.contains("module:         \(mod[0]) \(mod[1])\n"), "\(text)")
            } else {
                #expect(text.contains("module:         - (built outside module mode)\n"), "\(text)")
            }
            let json = try JSONSerialization.jsonObject(with: Data(try run(GmonProcess.executable, ["inspect", "--json", binary]).utf8)) as? [String: Any]
            #expect(json?["mainPackage"] as? String == mainPackage[0])
            #expect(json?["module"] as? String == field("mod")?[0])
        }
    }
}
