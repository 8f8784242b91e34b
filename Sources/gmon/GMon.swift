import ArgumentParser
import GmonMetrics
import GmonProbes
import GoBinary
import GoRuntime
import LibBPF
#if canImport(Glibc)
import Glibc
#endif

@main
struct GMon: ParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "gmon",
        abstract: "Watch the goroutines of unmodified Go programs with eBPF.",
        version: version,
        subcommands: [Watch.self, Goroutines.self, Inspect.self],
        defaultSubcommand: Watch.self)

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let e as CLIError {
            fail(e.description)
        } catch let e as GoBinaryError {
            fail(e.description)
        } catch let e as AttachPointError {
            fail(e.description)
        } catch let e as BPFError {
            fail(e.description)
        } catch let e as ProbeSession.Failure {
            fail(e.description)
        } catch let e as MetricsServer.Failure {
            fail(e.description)
        } catch {
            exit(withError: error)
        }
    }
}

/// One line on stderr, exit status 1: gmon's errors name the problem and the fix.
func fail(_ message: String) -> Never {
    standardErrorLine("gmon: \(message)")
    Glibc.exit(1)
}

/// One line on stderr, written at once (no buffering that a crash or exit could lose).
func standardErrorLine(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
