import Foundation
import GmonModel
import GoBinary
import GoRuntime
import ProcFS
import Testing
import TestSupport
@testable import GoroutineSnapshot

/// The blocked fixture (testdata/fixtures/blocked): goroutines blocked in every common way.
/// It prints "ready PID", then on each line from stdin: its own goroutine dump and "end";
/// "pool ended"; exit.
final class BlockedProgram {
    let process = Process()
    let stdin = Pipe(), stdout = Pipe()
    private var buffered = Data()

    init(_ path: String, _ args: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        _ = try readUntil("ready ")
    }

    var pid: Int32 { process.processIdentifier }

    /// Output up to and including the line starting with `marker`.
    func readUntil(_ marker: String, timeout: TimeInterval = 30) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let text = String(decoding: buffered, as: UTF8.self)
            if let r = text.range(of: "\n" + marker) ?? (text.hasPrefix(marker) ? text.range(of: marker) : nil),
               let end = text[r.upperBound...].firstIndex(of: "\n") {
                let out = String(text[..<end])
                buffered = Data(text[text.index(after: end)...].utf8)
                return out
            }
            guard Date() < deadline, process.isRunning || !stdout.fileHandleForReading.availableData.isEmpty else {
                throw TestFailure("the blocked fixture said no \(marker.debugDescription) (output so far: \(text.suffix(500)))")
            }
            let d = stdout.fileHandleForReading.availableData
            if d.isEmpty { usleep(10_000) } else { buffered.append(d) }
        }
    }

    func line() { stdin.fileHandleForWriting.write("\n".data(using: .utf8)!) }

    /// Its own goroutine dump (debug=2).
    func dump() throws -> String {
        line()
        return try readUntil("end")
    }

    func finish() {
        line()
        line()
        process.waitUntilExit()
    }

    deinit { if process.isRunning { process.terminate() } }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// One goroutine of Go's debug=2 dump.
struct DumpedGoroutine {
    var status: String
    var locked: Bool
    var frames: [String]   // "function file:line"
    var createdBy: String?   // "function in goroutine N file:line"
}

/// Parses Go's debug=2 goroutine dump: "goroutine N [status, …]:", frame pairs, "created by".
func parseDump(_ text: String) -> [UInt64: DumpedGoroutine] {
    var out: [UInt64: DumpedGoroutine] = [:]
    var current: (UInt64, DumpedGoroutine)?
    var pendingFunction: String?
    var pendingCreated: String?
    for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
        let line = String(raw)
        if line.hasPrefix("goroutine "), line.hasSuffix("]:"), let open = line.firstIndex(of: "[") {
            if let c = current { out[c.0] = c.1 }
            let id = UInt64(line.dropFirst(10).prefix { $0.isNumber }) ?? 0
            let inside = line[line.index(after: open)..<line.index(line.endIndex, offsetBy: -2)]
            let parts = inside.components(separatedBy: ", ")
            current = (id, DumpedGoroutine(status: parts[0], locked: parts.contains("locked to thread"), frames: [], createdBy: nil))
            continue
        }
        guard current != nil else { continue }
        if line.hasPrefix("\t") {
            // "\tfile:line +0x1d"
            let fileLine = line.dropFirst().split(separator: " ").first.map(String.init) ?? ""
            if let f = pendingFunction { current!.1.frames.append("\(f) \(fileLine)"); pendingFunction = nil }
            if let c = pendingCreated { current!.1.createdBy = "\(c) \(fileLine)"; pendingCreated = nil }
        } else if line.hasPrefix("created by ") {
            pendingCreated = String(line.dropFirst(11))
        } else if let paren = line.lastIndex(of: "("), !line.isEmpty, !line.hasPrefix("...") {
            pendingFunction = String(line[..<paren])
        }
    }
    if let c = current { out[c.0] = c.1 }
    return out
}

extension Goroutine {
    var frameTexts: [String] { stack.map { "\($0.function) \($0.file):\($0.line)" } }
    var createdByText: String? {
        createdBy.map { "\($0.function)\(parentGoid.map { " in goroutine \($0)" } ?? "") \($0.file):\($0.line)" }
    }
}

@Suite(.serialized) struct SnapshotTests {
    static let modes = ["normal", "stripped", "pie"]
    static var cases: [String] { Fixtures.toolchains.flatMap { t in modes.map { "\(t.version) \($0)" } } }

    static func reader(_ pid: Int32) throws -> GoroutineReader {
        let file = try OpenedExecutable(pid: pid)
        return try GoroutineReader(pid: pid, exe: try GoExecutable(path: file.kernelPath), file: file.identity)
    }

    /// gmon's snapshot against the program's own dump, goroutine by goroutine: status, locked
    /// to thread, every frame (function, file, line) and the creator. Left out: goroutine 1,
    /// which writes the dump (running then), and the busy loop (running or runnable, its
    /// frames move).
    @Test(arguments: cases)
    func snapshotEqualsTheProgramsOwnDump(_ c: String) throws {
        let (version, mode) = (String(c.split(separator: " ")[0]), String(c.split(separator: " ")[1]))
        let program = try BlockedProgram(Fixtures.binary(version, mode, program: "blocked"))
        defer { program.finish() }
        let snap = try Self.reader(program.pid).snapshot()
        let dump = parseDump(try program.dump())
        let ours = Dictionary(snap.goroutines.filter { !$0.isSystem }.map { ($0.goid, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(Set(ours.keys) == Set(dump.keys), "goroutines only gmon saw: \(Set(ours.keys).subtracting(dump.keys).sorted()); only the dump: \(Set(dump.keys).subtracting(ours.keys).sorted())")
        #expect(dump.count >= 16, "the fixture has 16 goroutines: \(dump.count)")
        var compared = 0
        for (goid, d) in dump where goid != 1 {
            guard let g = ours[goid] else { continue }
            if d.frames.contains(where: { $0.hasPrefix("main.busy ") }) {
                #expect(["running", "runnable", "preempted"].contains(g.status))
                continue
            }
            compared += 1
            #expect(g.status == d.status, "goroutine \(goid): gmon [\(g.status)], dump [\(d.status)]")
            #expect(g.lockedToThread == d.locked, "goroutine \(goid): locked to thread")
            #expect(g.frameTexts == d.frames, "goroutine \(goid) [\(d.status)]: gmon \(g.frameTexts) \(g.stackNote ?? "") dump \(d.frames)")
            #expect(g.createdByText == d.createdBy, "goroutine \(goid): created by gmon \(g.createdByText ?? "-") dump \(d.createdBy ?? "-")")
        }
        #expect(compared >= 14)
        #expect(snap.unreadable == 0)
        let statuses = Set(ours.values.map(\.status))
        for s in ["chan receive", "chan send", "select", "sleep", "IO wait", "syscall", "chan receive (nil chan)", "select (no cases)"] {
            #expect(statuses.contains(s), "no goroutine [\(s)] in \(statuses.sorted())")
        }
    }

    /// A snapshot read by two threads (as one of 50,000 g's or more is) equals the program's
    /// own dump too: each thread's stacks, creators, functions and statuses are merged and its
    /// goroutines renumbered. A pool of 300 goroutines at one site puts goroutines of every
    /// kind in both halves.
    @Test func snapshotReadByTwoThreadsEqualsTheDump() throws {
        let version = Fixtures.toolchains.last!.version
        let program = try BlockedProgram(Fixtures.binary(version, "pie", program: "blocked"), ["-pool", "300"])
        defer { program.finish() }
        let reader = try Self.reader(program.pid)
        let snap = try reader.snapshot(threads: 2)
        let dump = parseDump(try program.dump())
        let ours = Dictionary(snap.goroutines.filter { !$0.isSystem }.map { ($0.goid, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(Set(ours.keys) == Set(dump.keys), "only gmon: \(Set(ours.keys).subtracting(dump.keys).sorted()); only the dump: \(Set(dump.keys).subtracting(ours.keys).sorted())")
        #expect(dump.count >= 316, "the fixture has 316 goroutines: \(dump.count)")
        var compared = 0
        for (goid, d) in dump where goid != 1 {
            guard let g = ours[goid], !d.frames.contains(where: { $0.hasPrefix("main.busy ") }) else { continue }
            compared += 1
            #expect(g.status == d.status && g.frameTexts == d.frames && g.createdByText == d.createdBy && g.lockedToThread == d.locked,
                    "goroutine \(goid): gmon [\(g.status)] \(g.frameTexts) \(g.createdByText ?? "-"), dump [\(d.status)] \(d.frames) \(d.createdBy ?? "-")")
        }
        #expect(compared >= 314)
        #expect(snap.unreadable == 0)
        // One thread reads the same, goroutine by goroutine (in the same order: by g address).
        let one = try reader.snapshot(threads: 1)
        func texts(_ s: GoroutineReader.Snapshot) -> [String] {
            // System goroutines, the busy loops and goroutine 1 (which wrote the dump) change
            // between two reads: left out.
            s.goroutines.filter { !$0.isSystem && $0.goid != 1 && !$0.function.hasPrefix("main.busy") }.map { "\($0.goid) \($0.status) \($0.function) \($0.frameTexts) \($0.createdByText ?? "-") \($0.isSystem)" }
        }
        #expect(texts(one) == texts(snap))
    }
}
