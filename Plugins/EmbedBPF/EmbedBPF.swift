import Foundation
import PackagePlugin

/// Compiles the target's BPF C program with clang's BPF backend and embeds the
/// object in the target as a Swift string, so gmon ships no loose files and the
/// C source stays the one source of truth.
@main
struct EmbedBPF: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let source = target.directoryURL.appending(path: "bpf/gmon.bpf.c")
        let header = context.package.directoryURL.appending(path: "Sources/CGmonEvents/include/gmon_events.h")
        let object = context.pluginWorkDirectoryURL.appending(path: "gmon.bpf.o")
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedBPFObject.swift")
        let clang = try context.tool(named: "clang").url
        let script = """
        set -e
        '\(clang.path)' -O2 -g -target bpf -D__TARGET_ARCH_x86 -Wall -Werror \
          -I/usr/include/x86_64-linux-gnu -I'\(header.deletingLastPathComponent().path)' \
          -c '\(source.path)' -o '\(object.path)'
        { printf '// Generated from bpf/gmon.bpf.c by the EmbedBPF plugin.\\nlet embeddedBPFObjectBase64 = "'; base64 -w0 '\(object.path)'; printf '"\\n'; } > '\(output.path)'
        """
        return [.buildCommand(displayName: "Compiling BPF program gmon.bpf.c",
                              executable: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", script],
                              inputFiles: [source, header], outputFiles: [output])]
    }
}
