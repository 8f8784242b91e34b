import ArgumentParser
import GoRuntime
import Foundation
import GoBinary

/// Overrides for the runtime.g offsets, for releases gmon does not know.
struct LayoutOverrides: ParsableArguments {
    @Option(name: .customLong("goid-offset"), help: "Offset of runtime.g.goid (bytes), for Go releases gmon does not know.")
    var goid: Int?
    @Option(name: .customLong("gopc-offset"), help: "Offset of runtime.g.gopc.")
    var gopc: Int?
    @Option(name: .customLong("startpc-offset"), help: "Offset of runtime.g.startpc.")
    var startpc: Int?
    @Option(name: .customLong("parent-goid-offset"), help: "Offset of runtime.g.parentGoid (Go 1.21+).")
    var parentGoid: Int?

    func validate() throws {
        for (name, v) in [("goid", goid), ("gopc", gopc), ("startpc", startpc), ("parent-goid", parentGoid)] {
            if let v, !(0...4096).contains(v) { throw ValidationError("--\(name)-offset \(v) is out of range (0…4096)") }
        }
        // Here, not in layout(): shown with the usage of the command it was given to.
        if (goid != nil || gopc != nil || startpc != nil) && !(goid != nil && gopc != nil && startpc != nil) {
            throw ValidationError("--goid-offset, --gopc-offset and --startpc-offset go together")
        }
    }

    /// The layout to use: all overrides given win; otherwise DWARF or the table.
    func layout(for exe: GoExecutable) throws -> RuntimeLayout {
        if let goid, let gopc, let startpc {
            return RuntimeLayout(goid: goid, gopc: gopc, startpc: startpc, parentGoid: parentGoid, source: .override)
        }
        return try exe.runtimeLayout()
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what gmon reads from a Go executable: release, uprobe sites, runtime.g layout; symbolize addresses.")

    @Argument(help: "Path of the Go executable.")
    var path: String

    @Option(name: .customLong("pc"), help: "Symbolize this address (hex, repeatable), with inlined frames.")
    var pcs: [String] = []

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @OptionGroup var overrides: LayoutOverrides

    static func address(_ s: String) -> UInt64? {
        UInt64(s.hasPrefix("0x") || s.hasPrefix("0X") ? String(s.dropFirst(2)) : s, radix: 16)
    }

    /// Here, not in run(): a validation error is shown with inspect's usage, one from run() with gmon's.
    func validate() throws {
        for s in pcs where Self.address(s) == nil { throw ValidationError("--pc \(s) is not a hexadecimal address (for example 0x4a1b2c)") }
    }

    func run() throws {
        let exe = try loadExecutable(path)
        let layout = try overrides.layout(for: exe)
        let plan = try AttachPoints.plan(for: exe)
        let addresses = pcs.compactMap(Self.address)
        let report = InspectReport(exe: exe, layout: layout, plan: plan, pcs: try addresses.map { pc in
            InspectReport.Symbolized(pc: hex(pc), frames: try exe.pclntab.frames(at: pc).map {
                .init(function: $0.function, file: $0.file, line: $0.line, inlined: $0.inlined)
            })
        })
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print(report.text)
        }
    }
}

struct InspectReport: Encodable {
    struct Probe: Encodable {
        var kind: String, function: String, callee: String?, address: String, fileOffset: String, register: String
    }
    struct Offsets: Encodable { var goid: Int, gopc: Int, startpc: Int, parentGoid: Int?, size: Int?, source: String }
    struct Symbolized: Encodable {
        struct F: Encodable { var function: String, file: String, line: Int, inlined: Bool }
        var pc: String
        var frames: [F]
    }

    /// `mainPackage`: the main package's import path (buildinfo's `path`); `module`: the main module (`mod`),
    /// absent when the binary was built outside module mode (Debian builds in GOPATH mode).
    var path: String, goVersion: String, mainPackage: String?, module: String?, moduleVersion: String?
    var pie: Bool, stripped: Bool, dwarf: Bool, functions: Int, pclntabFormat: String
    var creationProbe: Probe, exitProbe: Probe, otherCreationProbes: [Probe], otherExitProbes: [Probe], warnings: [String]
    var runtimeG: Offsets
    /// What `gmon goroutines --layout FILE` takes for a release gmon does not know (nil when unknown here too).
    var goroutineLayout: GoroutineLayout?
    var pcs: [Symbolized]

    init(exe: GoExecutable, layout: RuntimeLayout, plan: AttachPlan, pcs: [Symbolized]) {
        func probe(_ p: AttachPoint) -> Probe {
            Probe(kind: p.kind.rawValue, function: p.function, callee: p.callee, address: hex(p.address),
                  fileOffset: hex(p.fileOffset), register: p.register.rawValue)
        }
        path = exe.path; goVersion = exe.goVersion
        mainPackage = exe.buildInfo.path
        module = exe.buildInfo.mainModule; moduleVersion = exe.buildInfo.mainModuleVersion
        pie = exe.isPIE; stripped = exe.isStripped; dwarf = exe.hasDWARF
        functions = exe.pclntab.functionCount
        pclntabFormat = "\(exe.pclntab.format)"
        creationProbe = probe(plan.creation); exitProbe = probe(plan.exit); warnings = plan.warnings
        otherCreationProbes = plan.otherCreations.map(probe); otherExitProbes = plan.otherExits.map(probe)
        runtimeG = Offsets(goid: layout.goid, gopc: layout.gopc, startpc: layout.startpc, parentGoid: layout.parentGoid, size: layout.gSize, source: layout.source.rawValue)
        goroutineLayout = try? exe.goroutineLayout()
        self.pcs = pcs
    }

    var text: String {
        func probeLine(_ p: Probe) -> String {
            let at = p.callee.map { p.kind == "branch" ? "jump after CALL \($0) in \(p.function)" : "CALL \($0) in \(p.function)" } ?? "\(p.kind) of \(p.function)"
            return "\(at) at \(p.address) (file offset \(p.fileOffset)), g in \(p.register.uppercased())"
        }
        var lines = [
            "path:           \(path)",
            "go version:     \(goVersion)",
            "main package:   \(mainPackage ?? "-")",
            "module:         \(module.map { $0 + (moduleVersion.map { " " + $0 } ?? "") } ?? (mainPackage == nil ? "-" : "- (built outside module mode)"))",
            "pie:            \(pie ? "yes" : "no")",
            "stripped:       \(stripped ? "yes" : "no")\(dwarf ? "" : " (no DWARF)")",
            "functions:      \(functions) (pclntab \(pclntabFormat))",
            "creation probe: \(probeLine(creationProbe))",
            "exit probe:     \(probeLine(exitProbe))",
        ] + otherCreationProbes.map { "also created:   \(probeLine($0))" } + otherExitProbes.map { "also ended:     \(probeLine($0))" } + [
            "runtime.g:      goid=\(runtimeG.goid) gopc=\(runtimeG.gopc) startpc=\(runtimeG.startpc) parentGoid=\(runtimeG.parentGoid.map(String.init) ?? "-") size=\(runtimeG.size.map(String.init) ?? "-") (from \(runtimeG.source))",
        ]
        lines += warnings.map { "warning:        \($0)" }
        for s in pcs {
            lines.append("\(s.pc):" + (s.frames.isEmpty ? " not in Go code" : ""))
            for f in s.frames {
                lines.append("    \(f.function)\(f.inlined ? " (inlined)" : "")\n        \(f.file):\(f.line)")
            }
        }
        return lines.joined(separator: "\n")
    }
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

/// Loads a Go executable, turning reader errors into one-line CLI errors.
/// `shownAs`: the name errors give the file when `path` is an fd path.
func loadExecutable(_ path: String, shownAs: String? = nil) throws -> GoExecutable {
    do { return try GoExecutable(path: path) } catch let e as GoBinaryError {
        throw CLIError("\(shownAs ?? path): \(e)")
    }
}

/// An error printed as one line, with a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ s: String) { description = s }
}
