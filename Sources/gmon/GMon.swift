import ArgumentParser
import Foundation
import GmonExporters
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
    /// What `gmon version`, `gmon --version` and the earlier tool's `-version` print.
    static let versionLine = "gmon \(version)"
    static let configuration = CommandConfiguration(
        commandName: "gmon",
        abstract: "Watch the goroutines of unmodified Go programs with eBPF.",
        version: versionLine,
        subcommands: [Watch.self, Goroutines.self, Inspect.self, Version.self],
        defaultSubcommand: Watch.self)

    static func main() {
        // The main job is the default subcommand, whose options ArgumentParser would show only
        // under `gmon help watch`: the top-level help (and the default command's) shows them.
        let args = CommandLine.arguments.dropFirst()
        let named = configuration.subcommands.map { $0._commandName } + ["help"]
        if args == ["help"] || (args.contains { $0 == "--help" || $0 == "-h" } && !named.contains(args.first ?? "")) {
            print(mainHelp())
            return
        }
        messagesAsJSON = zip(CommandLine.arguments, CommandLine.arguments.dropFirst()).contains { $0 == ("--log-format", "json") }
            || CommandLine.arguments.contains("--log-format=json")
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exitReporting(error)
        }
        do {
            var command = command
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
            exitReporting(error)
        }
    }

    /// ArgumentParser's report of an error (the usage with it), or with --log-format json one
    /// JSON object; help and --version requests stay text.
    static func exitReporting(_ error: Error) -> Never {
        guard messagesAsJSON, exitCode(for: error) != .success else { exit(withError: error) }
        standardErrorLine("gmon: \(message(for: error))", level: .error)
        Glibc.exit(exitCode(for: error).rawValue)
    }
}

extension GMon {
    /// The root's help (overview, subcommands) with the default command's arguments and options
    /// in place of its own, and a usage line without the subcommand's name.
    static func mainHelp(columns: Int? = nil) -> String {
        func sections(_ text: String) -> [(title: String, body: String)] {
            text.components(separatedBy: "\n\n").map { block in
                let title = block.prefix { $0 != ":" && $0 != "\n" }
                return (title.allSatisfy { $0.isUppercase || $0 == " " } ? String(title) : "", block)
            }
        }
        let root = sections(helpMessage(columns: columns))
        let watch = sections(helpMessage(for: Watch.self, columns: columns))
        func pick(_ from: [(title: String, body: String)], _ title: String) -> [String] { from.filter { $0.title == title }.map(\.body) }
        var out = pick(root, "OVERVIEW")
        out.append("USAGE: gmon [<path-or-pid>] [--path <path>] [--pid <pid>] [--all] [<options>]\n       gmon <subcommand>")
        out += pick(watch, "ARGUMENTS") + pick(watch, "OPTIONS") + pick(root, "SUBCOMMANDS")
        // The closing "See 'gmon help <subcommand>'…" line.
        out += root.filter { $0.title.isEmpty }.map(\.body)
        return out.joined(separator: "\n\n").trimmingCharacters(in: .newlines)
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print gmon's version (as --version does).")
    func run() { print(GMon.versionLine) }
}

/// One line on stderr, exit status 1: gmon's errors name the problem and the fix.
func fail(_ message: String) -> Never {
    standardErrorLine("gmon: \(message)", level: .error)
    Glibc.exit(1)
}

/// With --log-format json, gmon's own lines on stderr are JSON too (set once, before anything is said).
nonisolated(unsafe) var messagesAsJSON = false

/// Lines on stderr, written at once (no buffering that a crash or exit could lose). With
/// --log-format json each line is an object {time, level, msg}, msg the text line as it is
/// (the summary's rows too): the level is WARN for "gmon: warning: …", else INFO unless given.
func standardErrorLine(_ s: String, level: LogWriter.Level? = nil) {
    var text = s + "\n"
    if messagesAsJSON {
        text = s.split(separator: "\n", omittingEmptySubsequences: false).map {
            LogWriter.jsonMessage(level ?? ($0.hasPrefix("gmon: warning: ") ? .warn : .info), String($0))
        }.joined(separator: "\n") + "\n"
    }
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
