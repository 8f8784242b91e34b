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
        // make bench's floors (count-only and delivery-floor probes), out of gmon's own object.
        .executable(name: "gmon-floors", targets: ["gmon-floors"]),
        // For the benchmark package in Benchmarks/.
        .library(name: "GmonLibraries", targets: ["GmonModel", "GoBinary", "GoRuntime", "GoroutineTracker", "Symbolization", "GmonExporters",
                                                 "GmonMetrics", "CGmonEvents", "GmonProbes", "Monitor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // C libraries, through pkg-config-less module maps.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CCapstone", path: "Sources/CCapstone"),
        .systemLibrary(name: "CLibbpf", path: "Sources/CLibbpf"),

        // Events, creation sites (with their executable) and frames: the values every module passes on.
        .target(name: "GmonModel"),
        // Reads executable files: ELF, DWARF, Go build info, pclntab. No kernel, no root.
        .target(name: "GoBinary", dependencies: ["GmonModel", "CZlib"]),
        // All per-Go-release knowledge: runtime struct layouts (DWARF, then a table), moduledata,
        // probe sites and their fallbacks, wrapper and runtime-frame rules.
        .target(name: "GoRuntime", dependencies: ["GoBinary", "CCapstone"]),
        // Everything read from /proc: executables by fd, load addresses, process state, cgroups, namespaces.
        .target(name: "CProcFS"),
        .target(name: "ProcFS", dependencies: ["CProcFS"]),

        // A thin Swift layer over libbpf: objects, uprobe links, per-CPU ring buffers.
        .target(name: "LibBPF", dependencies: ["CLibbpf"], swiftSettings: hotPath),
        // The contract with the BPF program: event layout, counters, configuration (C header).
        .target(name: "CGmonEvents"),
        .plugin(name: "EmbedBPF", capability: .buildTool()),
        // gmon's BPF program, its typed skeleton, the decoder of its records, and the session
        // that loads it once and attaches it to any number of executables.
        .target(name: "GmonProbes", dependencies: ["CGmonEvents", "GmonModel", "GoRuntime", "LibBPF", "ProcFS"], exclude: ["bpf"],
                swiftSettings: hotPath, plugins: ["EmbedBPF"]),
        // make bench's floor programs, in an object of their own.
        .target(name: "GmonProbeFloors", dependencies: ["CGmonEvents", "LibBPF"], exclude: ["bpf"], plugins: ["EmbedBPF"]),

        // Pairs creations and exits per (pid, runtime.g address) and keeps per-site counts. Pure logic.
        .target(name: "GoroutineTracker", dependencies: ["GmonModel"], swiftSettings: hotPath),
        // Creation sites from Go executables' symbol tables, per process.
        .target(name: "Symbolization", dependencies: ["GmonModel", "GoBinary", "GoRuntime", "ProcFS"]),
        // Log lines and the shutdown summary.
        .target(name: "GmonExporters", dependencies: ["GmonModel", "GoroutineTracker"], swiftSettings: hotPath),
        // gzip in memory (pprof files, scrapes).
        .target(name: "Gzip", dependencies: ["CZlib"]),
        // Prometheus metrics per creation site, their two text formats, and the HTTP server.
        .target(name: "GmonMetrics", dependencies: [
            "GmonModel", "GoroutineTracker", "ProcFS", "Gzip", .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Hummingbird", package: "hummingbird"), .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
        ]),
        // Every goroutine of a running process, read from its memory: status, wait reason, stack.
        // Who a process belongs to (container, pod, unit) and which programs --all watches.
        .target(name: "Discovery", dependencies: ["ProcFS"]),
        .target(name: "GoroutineSnapshot", dependencies: ["GmonModel", "GoBinary", "GoRuntime", "ProcFS", "Symbolization"],
                swiftSettings: hotPath),
        // Goroutine profiles in pprof's format: types generated once from proto/profile.proto, committed.
        .target(name: "PprofExport", dependencies: ["GmonModel", "Gzip", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                exclude: ["proto"]),
        // The event loop: rings → decoder → tracker → exporters, ticks, the order of stopping.
        .target(name: "Monitor", dependencies: ["GmonProbes", "GmonModel", "GoroutineTracker", "GmonMetrics", "GmonExporters", "LibBPF", "ProcFS", "CProcFS",
                                                "CGmonEvents", "GoroutineSnapshot", "Symbolization", "GoRuntime", "GoBinary", "Discovery"], swiftSettings: hotPath),

        // The command line: parses arguments and wires the modules together.
        .executableTarget(name: "gmon", dependencies: [
            "GmonModel", "GoBinary", "GoRuntime", "ProcFS", "LibBPF", "GmonProbes", "GoroutineTracker", "Symbolization",
            "GmonExporters", "GmonMetrics", "Monitor", "Discovery", "GoroutineSnapshot", "PprofExport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: hotPath),
        .executableTarget(name: "gmon-floors", dependencies: ["GmonProbeFloors", "GmonProbes", "GoBinary", "GoRuntime", "LibBPF", "ProcFS", "CGmonEvents"]),

        // One test target per module; EndToEndTests runs the gmon command.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "GmonModelTests", dependencies: ["GmonModel"]),
        .testTarget(name: "GoBinaryTests", dependencies: ["GoBinary", "GoRuntime", "GmonModel", "TestSupport"]),
        .testTarget(name: "GoRuntimeTests", dependencies: ["GoRuntime", "GoBinary", "TestSupport"]),
        .testTarget(name: "ProcFSTests", dependencies: ["ProcFS"]),
        .testTarget(name: "LibBPFTests", dependencies: ["LibBPF"]),
        .testTarget(name: "GmonProbesTests", dependencies: ["GmonProbes", "GmonProbeFloors", "GmonModel", "CGmonEvents", "LibBPF"]),
        .testTarget(name: "GoroutineTrackerTests", dependencies: ["GoroutineTracker", "GmonModel"]),
        .testTarget(name: "SymbolizationTests", dependencies: ["Symbolization", "GmonModel", "GoRuntime", "TestSupport"]),
        .testTarget(name: "GmonExportersTests", dependencies: ["GmonExporters", "GoroutineTracker", "GmonModel"]),
        .testTarget(name: "GmonMetricsTests", dependencies: ["GmonMetrics", "GoroutineTracker", "GmonModel"]),
        .testTarget(name: "GzipTests", dependencies: ["Gzip", "TestSupport"]),
        .testTarget(name: "DiscoveryTests", dependencies: ["Discovery", "ProcFS"]),
        .testTarget(name: "GoroutineSnapshotTests", dependencies: ["GoroutineSnapshot", "GmonModel", "GoRuntime", "GoBinary", "ProcFS", "TestSupport"]),
        .testTarget(name: "PprofExportTests", dependencies: ["PprofExport", "GmonModel", "TestSupport"]),
        .testTarget(name: "MonitorTests", dependencies: ["Monitor", "GoroutineTracker", "GmonExporters", "GmonMetrics", "GmonModel", "CGmonEvents"]),
        .testTarget(name: "EndToEndTests", dependencies: ["GoBinary", "TestSupport"]),
    ]
)
