import ArgumentParser
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
        subcommands: [Watch.self, Inspect.self],
        defaultSubcommand: Watch.self)

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let e as CLIError {
            FileHandle.standardErrorLine("gmon: \(e.description)")
            Glibc.exit(1)
        } catch {
            exit(withError: error)
        }
    }
}

enum FileHandle {
    static func standardErrorLine(_ s: String) {
        var line = s + "\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}
