// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "gmon",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "gmon", targets: ["gmon"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries, through pkg-config-less module maps.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CCapstone", path: "Sources/CCapstone"),

        // Reads Go executables: ELF, build info, pclntab, DWARF. No kernel, no root.
        .target(name: "GoBinary", dependencies: ["CZlib"]),
        // Chooses uprobe sites by disassembling the runtime's machine code.
        .target(name: "AttachPoints", dependencies: ["GoBinary", "CCapstone"]),

        .executableTarget(name: "gmon", dependencies: [
            "GoBinary", "AttachPoints",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "GoBinaryTests", dependencies: ["GoBinary", "AttachPoints"]),
    ]
)
