import Foundation
import TestSupport

/// A running gmon, started from the build directory, with stdout/stderr in files.
final class GmonProcess {
    let process = Process()
    let stdoutURL: URL
    let stderrURL: URL

    static var executable: String {
        let debug = repositoryRoot.appendingPathComponent(".build/debug/gmon").path
        return ProcessInfo.processInfo.environment["GMON_EXECUTABLE"] ?? debug
    }

    /// `directory`, `environment`: the working directory and environment gmon starts with (the test's by default);
    /// `stdoutTo`: where its stdout goes instead of a file (a pipe nobody reads, /dev/full).
    /// The shipped binary (`make dist`, which `make test` runs first): for what is measured
    /// of gmon itself (memory), not of a debug build.
    static func distExecutable() throws -> String {
        let path = repositoryRoot.appendingPathComponent("dist/gmon").path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw E2EError("\(path) is missing: `make dist` builds it (`make test` does first)") }
        return path
    }

    init(_ args: [String], directory: String? = nil, environment: [String: String]? = nil, stdoutTo: Any? = nil, executable: String? = nil) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        stdoutURL = dir.appendingPathComponent("stdout")
        stderrURL = dir.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable ?? Self.executable)
        // Each test's gmon serves metrics on a port of its own unless the test picks one.
        process.arguments = args.contains { $0.hasPrefix("--metrics") || $0 == "--no-metrics" } ? args : args + ["--metrics-address", "127.0.0.1:0"]
        process.standardOutput = try stdoutTo ?? FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        process.standardInput = FileHandle.nullDevice
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if let environment { process.environment = environment }
        try process.run()
    }

    /// A failed test must not leave a gmon attached for the next one.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    /// stderr as text: with --log-format json each of gmon's lines there is an object whose msg is
    /// the line text mode prints, so the tests read either format alike.
    var stderr: String {
        rawStderr.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            guard line.hasPrefix("{"), let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let msg = o["msg"] as? String else { return String(line) }
            return msg
        }.joined(separator: "\n")
    }
    var rawStderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// Waits until gmon says its probes are attached; fails with gmon's own words otherwise.
    func waitUntilAttached(timeout: TimeInterval = 20) throws {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if stderr.contains("gmon: watching") { return }
            if !process.isRunning { throw E2EError("gmon exited \(process.terminationStatus) before attaching: \(stderr)") }
            usleep(20_000)
        }
        throw E2EError("gmon did not attach within \(timeout) s: \(stderr)")
    }

    /// Waits until stderr says `text` `count` times; fails with gmon's words otherwise.
    func waitForStderr(_ text: String, count: Int = 1, timeout: TimeInterval = 60) throws {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if stderr.components(separatedBy: text).count - 1 >= count { return }
            if !process.isRunning { throw E2EError("gmon exited \(process.terminationStatus): \(stderr)") }
            usleep(50_000)
        }
        throw E2EError("gmon did not say \(text.debugDescription) (\(count)x) within \(timeout) s: \(stderr.suffix(3000))")
    }

    /// Waits until stdout contains `text` (e.g. a process-exit line).
    func waitForOutput(_ text: String, timeout: TimeInterval = 20) throws {
        try waitForOutput(oneOf: [text], timeout: timeout)
    }

    func waitForOutput(oneOf texts: [String], timeout: TimeInterval = 20) throws {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            let out = stdout
            if texts.contains(where: { out.contains($0) }) { return }
            usleep(20_000)
        }
        throw E2EError("gmon did not print \(texts.joined(separator: " or ")) within \(timeout) s")
    }

    func stop(_ signal: Int32 = SIGINT, timeout: TimeInterval = 20) throws -> Int32 {
        kill(process.processIdentifier, signal)
        let end = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < end { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw E2EError("gmon did not stop on signal \(signal)")
        }
        return process.terminationStatus
    }

    /// JSON log lines on stdout.
    var events: [[String: Any]] {
        stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

/// Created and exited per site from one scrape, summed by the values of `keys` (labels of
/// gmon_goroutines_created_total and _exited_total), with the labels of the first series.
func siteCounts(by keys: [String], _ text: String) -> [String: (created: Int, exited: Int, labels: String)] {
    var out: [String: (Int, Int, String)] = [:]
    for line in text.split(separator: "\n") {
        for (family, isCreated) in [("gmon_goroutines_created_total{", true), ("gmon_goroutines_exited_total{", false)] where line.hasPrefix(family) {
            let labels = String(line.dropFirst(family.count).prefix { $0 != "}" })
            func label(_ k: String) -> String {
                guard let r = labels.range(of: "\(k)=\"") else { return "" }
                return String(labels[r.upperBound...].prefix { $0 != "\"" })
            }
            let key = keys.map(label).joined(separator: " ")
            let n = Int(Double(line.split(separator: " ").last ?? "0") ?? 0)
            var v = out[key] ?? (0, 0, labels)
            if isCreated { v.0 += n } else { v.1 += n }
            out[key] = v
        }
    }
    return out
}

struct E2EError: Error, CustomStringConvertible {
    let description: String
    init(_ s: String) { description = s }
}

/// A fixture process with its stdout captured.
final class FixtureProcess {
    let process = Process()
    let out = Pipe()
    let inp = Pipe()

    init(_ path: String, _ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        signal(SIGPIPE, SIG_IGN)   // a fixture that exits early must not kill the test run
        process.standardError = FileHandle.nullDevice
        process.standardOutput = out
        process.standardInput = inp
        try process.run()
    }

    /// Reads stdout until it has a line equal to `line`.
    func waitForLine(_ line: String) -> String {
        var text = ""
        while !text.split(separator: "\n").contains(Substring(line)) {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        return text
    }

    /// Reads stdout until it has a line starting with `prefix`.
    func waitForLine(prefix: String) -> String {
        var text = ""
        while !text.split(separator: "\n").contains(where: { $0.hasPrefix(prefix) }) || !text.hasSuffix("\n") {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        return text
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    func send(_ line: String) { inp.fileHandleForWriting.write(Data((line + "\n").utf8)) }

    /// Waits for exit and returns all remaining output.
    func finish() -> (status: Int32, output: String) {
        let rest = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: rest, as: UTF8.self))
    }
}

/// The fixture's own ground truth: "truth site=A function=… created_by=… created=N exited=M".
struct Truth {
    let site: String, function: String, createdBy: String, created: Int, exited: Int

    static func parse(_ output: String) -> [Truth] {
        output.split(separator: "\n").filter { $0.hasPrefix("truth ") }.map { line in
            var kv: [String: String] = [:]
            for f in line.split(separator: " ").dropFirst() {
                let p = f.split(separator: "=", maxSplits: 1).map(String.init)
                if p.count == 2 { kv[p[0]] = p[1] }
            }
            return Truth(site: kv["site"] ?? "", function: kv["function"] ?? "", createdBy: kv["created_by"] ?? "",
                         created: Int(kv["created"] ?? "") ?? -1, exited: Int(kv["exited"] ?? "") ?? -1)
        }
    }
}

/// BPF programs and links gmon left in the kernel, by bpftool. The kernel frees
/// a dead process's links shortly after it exits: wait up to 3 s for that.
func gmonObjectsInKernel(settle: Bool = true) throws -> String {
    var left = try gmonObjectsInKernelNow()
    let end = Date().addingTimeInterval(settle ? 3 : 0)
    while !left.isEmpty && Date() < end {
        usleep(50_000)
        left = try gmonObjectsInKernelNow()
    }
    return left
}

func gmonObjectsInKernelNow() throws -> String {
    let progs = try run("/usr/sbin/bpftool", ["prog", "show"])
    let links = try run("/usr/sbin/bpftool", ["link", "show"])
    return (progs + links).split(separator: "\n").filter { $0.contains("gmon_") }.joined(separator: "\n")
}
