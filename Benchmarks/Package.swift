// swift-tools-version:6.3
// Micro-benchmarks (`make bench`): a package of its own so that gmon's normal
// build and `make test` do not build the benchmark framework.
import PackageDescription
import Foundation

// SwiftPM names a path dependency after its folder: the clone's name, whatever it is.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "gmon-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "GmonBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "GmonLibraries", package: root),
            ],
            path: "Benchmarks/GmonBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
