import Foundation
import PackagePlugin

/// Compiles the target's BPF C program (its one bpf/*.bpf.c) with clang's BPF backend and
/// embeds the object in the target as a Swift string, so gmon ships no loose files and
/// the C source stays the one source of truth.
@main
struct EmbedBPF: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let dir = target.directoryURL.appending(path: "bpf")
        let sources = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".bpf.c") }.sorted()
        guard sources.count == 1, let name = sources.first else {
            throw PluginError("\(target.name): expected one bpf/*.bpf.c, found \(sources)")
        }
        let source = dir.appending(path: name)
        let header = context.package.directoryURL.appending(path: "Sources/CGmonEvents/include/gmon_events.h")
        let object = context.pluginWorkDirectoryURL.appending(path: name.replacingOccurrences(of: ".c", with: ".o"))
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedBPFObject.swift")
        let clang = try context.tool(named: "clang").url
        let script = """
        set -e
        '\(clang.path)' -O2 -g -target bpf -D__TARGET_ARCH_x86 -Wall -Werror \
          -I/usr/include/x86_64-linux-gnu -I'\(header.deletingLastPathComponent().path)' \
          -c '\(source.path)' -o '\(object.path)'
        { printf '// Generated from bpf/\(name) by the EmbedBPF plugin.\\nlet embeddedBPFObjectBase64 = "'; base64 -w0 '\(object.path)'; printf '"\\n'; } > '\(output.path)'
        """
        return [.buildCommand(displayName: "Compiling BPF program \(name)",
                              executable: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", script],
                              inputFiles: [source, header], outputFiles: [output])]
    }
}

struct PluginError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
