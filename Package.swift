// swift-tools-version:6.1
import PackageDescription

// The per-event path (decoder → tracker → log writer → metrics, in the event loop) runs on
// one thread; in release builds dynamic exclusivity checks cost it ~25% of its CPU
// (make bench), so they are off there. Debug builds and tests keep them.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "gmon",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "gmon", targets: ["gmon"]),
        // For the benchmark package in Benchmarks/.
        .library(name: "GmonLibraries", targets: ["GoBinary", "GoroutineTracker", "Symbolization", "GmonExporters", "GmonMetrics",
                                                 "CGmonEvents", "GmonPipeline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C libraries, through pkg-config-less module maps.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CCapstone", path: "Sources/CCapstone"),
        .systemLibrary(name: "CLibbpf", path: "Sources/CLibbpf"),

        // Reads Go executables: ELF, build info, pclntab, DWARF. No kernel, no root.
        .target(name: "GoBinary", dependencies: ["CZlib"]),
        // Everything read from /proc: executables by fd, load addresses, process state.
        .target(name: "ProcFS"),
        // Chooses uprobe sites by disassembling the runtime's machine code.
        .target(name: "AttachPoints", dependencies: ["GoBinary", "CCapstone"]),

        // The BPF program and the event layout it shares with Swift.
        .target(name: "CGmonEvents"),
        .plugin(name: "EmbedBPF", capability: .buildTool()),
        .target(name: "GmonBPF", dependencies: ["CGmonEvents", "GoroutineTracker"], exclude: ["bpf"], swiftSettings: hotPath, plugins: ["EmbedBPF"]),
        // A thin Swift layer over libbpf: objects, uprobe links, per-CPU ring buffers.
        .target(name: "LibBPF", dependencies: ["CLibbpf"], swiftSettings: hotPath),

        // Pairs creations and exits per (pid, goid) and keeps per-site counts. Pure logic.
        .target(name: "GoroutineTracker", swiftSettings: hotPath),
        // Creation sites from a Go executable's symbol table, per process.
        .target(name: "Symbolization", dependencies: ["GoBinary", "AttachPoints", "GoroutineTracker", "ProcFS"]),
        // Log lines and the shutdown summary.
        .target(name: "GmonExporters", dependencies: ["GoroutineTracker"], swiftSettings: hotPath),

        // Prometheus metrics per creation site, and their two text formats.
        .target(name: "GmonMetrics", dependencies: ["GoroutineTracker", .product(name: "Prometheus", package: "swift-prometheus")]),

        // The per-event path: ring-buffer record → decoder → tracker → exporters.
        .target(name: "GmonPipeline", dependencies: ["GmonBPF", "GoroutineTracker", "GmonMetrics", "GmonExporters"], swiftSettings: hotPath),

        .executableTarget(name: "gmon", dependencies: [
            "GmonMetrics", .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            "GoBinary", "AttachPoints", "GmonBPF", "LibBPF", "ProcFS", "GoroutineTracker", "Symbolization", "GmonExporters", "GmonPipeline",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: hotPath),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "GoBinaryTests", dependencies: ["GoBinary", "AttachPoints", "TestSupport"]),
        .testTarget(name: "GoroutineTrackerTests", dependencies: ["GoroutineTracker", "GmonExporters", "GmonMetrics", "GmonPipeline", "CGmonEvents"]),
        .testTarget(name: "LibBPFTests", dependencies: ["LibBPF"]),
        .testTarget(name: "ProcFSTests", dependencies: ["ProcFS"]),
        .testTarget(name: "SymbolizationTests", dependencies: ["Symbolization"]),
        .testTarget(name: "EndToEndTests", dependencies: ["GoBinary", "TestSupport"]),
    ]
)
