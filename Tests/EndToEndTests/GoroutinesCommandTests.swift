import Foundation
import Testing
import TestSupport

/// `gmon goroutines --pid N`: every goroutine of a running program, read from its memory.
extension EndToEnd {
    @Suite struct GoroutinesCommandTests {
        /// The blocked fixture, started and waiting ("ready PID").
        static func blocked(_ version: String, _ mode: String, _ args: [String] = []) throws -> FixtureProcess {
            let f = try FixtureProcess(Fixtures.binary(version, mode, program: "blocked"), args)
            let out = f.waitForLine(prefix: "ready ")
            #expect(out.contains("ready "), "the blocked fixture did not start: \(out)")
            return f
        }

        /// The fixture's own dump: goid → status.
        static func dumpStatuses(_ f: FixtureProcess) -> [UInt64: String] {
            f.send("")
            let text = f.waitForLine("end")
            var out: [UInt64: String] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("goroutine ") && line.hasSuffix("]:") {
                guard let id = UInt64(line.dropFirst(10).prefix { $0.isNumber }), let open = line.firstIndex(of: "[") else { continue }
                out[id] = String(line[line.index(after: open)...].prefix { $0 != "," && $0 != "]" })
            }
            return out
        }

        /// Lets the blocked fixture print its dump, end its pool and exit.
        @discardableResult
        static func finish(_ f: FixtureProcess) -> Int32 {
            f.send("")
            _ = f.waitForLine("end")
            f.send("")
            f.send("")
            return f.finish().status
        }

        static func json(_ text: String) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not JSON: \(text.prefix(300))")
        }

        /// The three outputs of one program: JSON with the documented schema and the program's
        /// own goroutines and statuses, the grouped text, and one entry per goroutine.
        @Test(arguments: ["1.25.5 pie", "1.19 stripped"])
        func jsonGroupsAndEach(_ c: String) throws {
            let (version, mode) = (String(c.split(separator: " ")[0]), String(c.split(separator: " ")[1]))
            let f = try Self.blocked(version, mode)
            let pid = String(f.process.processIdentifier)
            let doc = try Self.json(try run(GmonProcess.executable, ["goroutines", "--pid", pid, "--json"]))
            let grouped = try run(GmonProcess.executable, ["goroutines", "--pid", pid])
            let each = try run(GmonProcess.executable, ["goroutines", "--pid", pid, "--each"])
            let withSystem = try Self.json(try run(GmonProcess.executable, ["goroutines", "--pid", pid, "--json", "--system"]))
            let profile = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-\(UUID().uuidString).pb.gz").path
            defer { try? FileManager.default.removeItem(atPath: profile) }
            _ = try run(GmonProcess.executable, ["goroutines", "--pid", pid, "--pprof", profile])
            let dump = Self.dumpStatuses(f)
            f.send("")
            f.send("")
            #expect(f.finish().status == 0)

            #expect(doc["pid"] as? Int == Int(pid) && (doc["goVersion"] as? String)?.hasPrefix("go\(version)") == true)
            let gs = try #require(doc["goroutines"] as? [[String: Any]])
            var ours: [UInt64: [String: Any]] = [:]
            for g in gs { ours[(g["goid"] as? NSNumber)?.uint64Value ?? 0] = g }
            #expect(Set(ours.keys) == Set(dump.keys), "gmon \(ours.keys.sorted()) dump \(dump.keys.sorted())")
            for (goid, status) in dump where goid != 1 && !["running", "runnable"].contains(status) {
                let g = try #require(ours[goid])
                #expect(g["status"] as? String == status, "goroutine \(goid)")
                let stack = try #require(g["stack"] as? [[String: Any]])
                #expect(!stack.isEmpty && stack.allSatisfy { $0["function"] is String && $0["file"] is String && ($0["line"] as? Int ?? 0) > 0 })
                let createdBy = try #require(g["createdBy"] as? [String: Any])
                #expect(createdBy["function"] as? String == "main.main" && (createdBy["line"] as? Int ?? 0) > 0)
                #expect(g["function"] is String && g["waitSeconds"] != nil || g["waitSeconds"] == nil)
                if version != "1.19" { #expect((g["parentGoid"] as? Int) == 1) } else { #expect(g["parentGoid"] == nil) }
            }
            let systemCount = (withSystem["goroutines"] as? [[String: Any]])?.filter { $0["system"] as? Bool == true }.count ?? 0
            #expect(systemCount >= 2, "the runtime's own goroutines (GC workers, …) with --system: \(systemCount)")
            // Text: groups with counts and statuses; one entry per goroutine in Go's own header format.
            #expect(grouped.contains("goroutines") && grouped.contains("1 goroutine [select (no cases)]"), "\(grouped)")
            for (goid, status) in dump where !["running", "runnable", "syscall"].contains(status) || goid != 1 {
                if ["running", "runnable"].contains(status) { continue }
                #expect(each.contains("goroutine \(goid) [\(status)"), "no entry for goroutine \(goid) [\(status)] in --each")
            }
            #expect(each.contains("created by main.main"))
            // Go's pprof reads the profile: as many goroutines as the program has, its stacks.
            let go = try #require(Fixtures.toolchains.last?.go)
            let top = try run(go, ["tool", "pprof", "-top", profile])
            #expect(top.contains("of \(dump.count) total"), "\(top)")
            let traces = try run(go, ["tool", "pprof", "-traces", profile])
            #expect(traces.contains("main.selectForever") && traces.contains("status:  select"), "\(traces)")
        }

        /// A program creating and ending goroutines at full speed: every snapshot ends, quickly,
        /// and reports only goroutines that are real (unique ids, known functions, statuses Go
        /// uses, stacks of known frames).
        @Test func aChurningProgramNeverGivesGarbage() throws {
            let f = try Self.blocked("1.25.5", "normal", ["-churn", "-pool", "2000"])
            let pid = String(f.process.processIdentifier)
            // Go 1.25's wait reasons (every one of its runtime2.go) and g statuses.
            let statuses: Set<String> = ["running", "runnable", "syscall", "waiting", "preempted", "copystack",
                                          "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)", "dumping heap", "garbage collection", "garbage collection scan", "panicwait", "select", "select (no cases)", "GC assist wait", "GC sweep wait", "GC scavenge wait", "chan receive", "chan send", "finalizer wait", "force gc (idle)", "GOMAXPROCS updater (idle)", "semacquire", "sleep", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "sync.WaitGroup.Wait", "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted", "debug call", "GC mark termination", "stopping the world", "flushing proc caches", "trace goroutine status", "trace proc status", "page trace flush", "coroutine", "GC weak to strong wait", "synctest.Run", "synctest.Wait", "chan receive (durable)", "chan send (durable)", "select (durable)", "sync.WaitGroup.Wait (durable)", "cleanup wait"]
            var seen = 0
            for _ in 0..<10 {
                let start = Date()
                let doc = try Self.json(try run(GmonProcess.executable, ["goroutines", "--pid", pid, "--json", "--system"]))
                #expect(Date().timeIntervalSince(start) < 20)
                let gs = try #require(doc["goroutines"] as? [[String: Any]])
                let ids = gs.compactMap { ($0["goid"] as? NSNumber)?.uint64Value }
                #expect(ids.count == gs.count && Set(ids).count == ids.count, "duplicate or missing goroutine ids")
                #expect(gs.count >= 2000, "the pool's 2000 goroutines: \(gs.count)")
                for g in gs {
                    let status = g["status"] as? String ?? "?"
                    #expect(statuses.contains(status), "status \(status)")
                    #expect((g["function"] as? String)?.hasPrefix("0x") == false, "\(g)")
                    for fr in g["stack"] as? [[String: Any]] ?? [] {
                        #expect((fr["function"] as? String)?.hasPrefix("0x") == false && (fr["line"] as? Int ?? 0) > 0, "\(fr)")
                    }
                }
                seen += gs.count
            }
            #expect(seen > 0)
            #expect(Self.finish(f) == 0)
        }

        /// A process in another mount namespace: read through /proc/PID/exe (the file it runs),
        /// never the file at that path in gmon's namespace.
        @Test func aProcessInAnotherMountNamespace() throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-gns-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let shared = dir.appendingPathComponent("app").path
            try FileManager.default.copyItem(atPath: Fixtures.binary("1.21.13", "stripped", program: "blocked"), toPath: shared)
            let real = Fixtures.binary("1.25.5", "pie", program: "blocked")
            let f = try FixtureProcess("/usr/bin/unshare", ["-m", "--propagation", "private", "/bin/sh", "-c",
                                                           "mount --bind '\(real)' '\(shared)' && exec '\(shared)'"])
            #expect(f.waitForLine(prefix: "ready ").contains("ready "))
            let out = try run(GmonProcess.executable, ["goroutines", "--pid", String(f.process.processIdentifier)])
            #expect(out.contains("go1.25.5") && out.contains("main.selectForever"), "\(out)")
            Self.finish(f)
        }

        @Test func badInput() throws {
            typealias B = BadInputTests
            B.expectClearError(try B.gmon(["goroutines", "--pid", "999999"]), "no process with pid 999999")
            let sleeper = Process()
            sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
            sleeper.arguments = ["30"]
            try sleeper.run()
            defer { sleeper.terminate() }
            B.expectClearError(try B.gmon(["goroutines", "--pid", String(sleeper.processIdentifier)]), "not a Go program")
            let f = try Self.blocked("1.25.5", "normal")
            let pid = String(f.process.processIdentifier)
            B.expectClearError(try B.gmon(["goroutines", "--pid", pid], asUser: "65534"), "needs root")
            B.expectClearError(try B.gmon(["goroutines", "--pid", pid, "--each", "--json"]), "do not go together")
            B.expectClearError(try B.gmon(["goroutines", "--pid", pid, "--layout", "/nonexistent"]), "--layout /nonexistent")
            Self.finish(f)
            // A release gmon has no table for, without DWARF: pointed to --layout, which works.
            let future = try B.withGoVersion("go1.99.1", from: Fixtures.binary("1.25.5", "stripped", program: "blocked"))
            let g = try FixtureProcess(future, [])
            #expect(g.waitForLine(prefix: "ready ").contains("ready "))
            let gpid = String(g.process.processIdentifier)
            B.expectClearError(try B.gmon(["goroutines", "--pid", gpid]), "--layout FILE")
            let layout = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-layout-\(UUID().uuidString).json").path
            try run(GmonProcess.executable, ["inspect", "--json", Fixtures.binary("1.25.5", "normal", program: "blocked")])
                .write(toFile: layout, atomically: true, encoding: .utf8)
            let out = try run(GmonProcess.executable, ["goroutines", "--pid", gpid, "--layout", layout])
            #expect(out.contains("main.selectForever") && out.contains("waiting (reason"), "\(out)")
            Self.finish(g)
        }
    }
}
