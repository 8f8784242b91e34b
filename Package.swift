// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "gmon",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "gmon", targets: ["gmon"]),
        // For the benchmark package in Benchmarks/.
        .library(name: "GmonLibraries", targets: ["GoBinary", "GoroutineTracker", "Symbolization", "GmonExporters"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries, through pkg-config-less module maps.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CCapstone", path: "Sources/CCapstone"),
        .systemLibrary(name: "CLibbpf", path: "Sources/CLibbpf"),

        // Reads Go executables: ELF, build info, pclntab, DWARF. No kernel, no root.
        .target(name: "GoBinary", dependencies: ["CZlib"]),
        // Chooses uprobe sites by disassembling the runtime's machine code.
        .target(name: "AttachPoints", dependencies: ["GoBinary", "CCapstone"]),

        // The BPF program and the event layout it shares with Swift.
        .target(name: "CGmonEvents"),
        .plugin(name: "EmbedBPF", capability: .buildTool()),
        .target(name: "GmonBPF", dependencies: ["CGmonEvents", "GoroutineTracker"], exclude: ["bpf"], plugins: ["EmbedBPF"]),
        // A thin Swift layer over libbpf: objects, uprobe links, ring buffer.
        .target(name: "LibBPF", dependencies: ["CLibbpf"]),

        // Pairs creations and exits per (pid, goid) and keeps per-site counts. Pure logic.
        .target(name: "GoroutineTracker"),
        // Creation sites from a Go executable's symbol table, per process.
        .target(name: "Symbolization", dependencies: ["GoBinary", "AttachPoints", "GoroutineTracker"]),
        // Log lines and the shutdown summary.
        .target(name: "GmonExporters", dependencies: ["GoroutineTracker"]),

        .executableTarget(name: "gmon", dependencies: [
            "GoBinary", "AttachPoints", "GmonBPF", "LibBPF", "GoroutineTracker", "Symbolization", "GmonExporters",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "GoBinaryTests", dependencies: ["GoBinary", "AttachPoints", "TestSupport"]),
        .testTarget(name: "GoroutineTrackerTests", dependencies: ["GoroutineTracker", "GmonExporters"]),
        .testTarget(name: "EndToEndTests", dependencies: ["GoBinary", "TestSupport"]),
    ]
)
