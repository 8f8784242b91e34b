import GoRuntime
import Foundation
import Testing
import TestSupport
@testable import GoBinary

/// Every binary of the fixture matrix against the Go toolchain that built it.
@Suite struct MatrixTests {
    @Test func matrixIsComplete() throws {
        let versions = Fixtures.toolchains.map(\.version)
        #expect(versions == ["1.19", "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3"],
                "fixtures missing: run scripts/build-fixtures.sh (make test does)")
        for (t, mode) in Fixtures.matrix {
            #expect(FileManager.default.fileExists(atPath: Fixtures.binary(t.version, mode)), "missing \(t) \(mode)")
        }
    }

    @Test(arguments: Fixtures.matrix.map { MatrixCase($0.0, $0.1) })
    func versionModeAndKind(_ c: MatrixCase) throws {
        let exe = try GoExecutable(path: c.path)
        let reported = try run(c.toolchain.go, ["version", c.path])
        #expect(reported.hasSuffix(": \(exe.goVersion)\n"), "go version says \(reported)")
        #expect(exe.buildInfo.mainModule == "example.com/goroutines")
        #expect(exe.isPIE == (c.mode == "pie" || c.mode == "static-pie"))
        #expect(exe.isStripped == (c.mode != "normal"))
    }

    /// Uprobe sites: function entries agree with `go tool nm` (symbols) or
    /// `go tool addr2line` (stripped), and file offsets with readelf's program headers.
    @Test(arguments: Fixtures.matrix.map { MatrixCase($0.0, $0.1) })
    func uprobeOffsets(_ c: MatrixCase) throws {
        let exe = try GoExecutable(path: c.path)
        let names = ["runtime.newproc1", "runtime.goexit1", "runtime.newproc.func1", "runtime.runqput", "runtime.mcall"]
        var entries: [String: UInt64] = [:]
        for n in names { entries[n] = try exe.functionEntry(n).entry }
        if c.mode == "normal" {
            let nm = try run(c.toolchain.go, ["tool", "nm", c.path])
            for line in nm.split(separator: "\n") {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count == 3, f[1] == "T", let n = entries[String(f[2])] else { continue }
                #expect(UInt64(f[0], radix: 16) == n, "\(f[2]): nm \(f[0]) vs gmon \(String(n, radix: 16))")
            }
        } else if c.mode == "static-pie" {
            // No table addr2line can read: each runtime call site we rely on must call the entry we computed.
            for (caller, callee) in [("runtime.newproc.func1", "runtime.runqput"), ("runtime.goexit1", "runtime.mcall")] {
                let f = try exe.functionEntry(caller)
                let calls = try AttachPoints.directCalls(code: Array(try exe.code(from: f.entry, to: f.end)), address: f.entry)
                #expect(calls.contains { $0.target == entries[callee] })
            }
        } else {
            let input = entries.values.flatMap { [String($0, radix: 16), String($0 - 1, radix: 16)] }
            let out = try addr2line(c, input.map { UInt64($0, radix: 16)! })
            for (name, e) in entries {
                #expect(out[e]?.function == name, "addr2line at entry of \(name): \(String(describing: out[e]))")
                #expect(out[e - 1]?.function != name)
            }
        }
        // File offsets from readelf's PT_LOAD headers.
        let segs = try loadSegments(c.path)
        let plan = try AttachPoints.plan(for: exe)
        #expect(plan.creation.kind == .callInstruction && plan.exit.kind == .callInstruction)
        for p in [plan.creation, plan.exit] {
            let s = try #require(segs.first { p.address >= $0.vaddr && p.address < $0.vaddr + $0.filesz })
            #expect(p.fileOffset == p.address - s.vaddr + s.offset)
            // The byte there is a CALL rel32 (0xe8).
            #expect(exe.elf.data.bytes[Int(p.fileOffset)] == 0xe8)
        }
    }

    /// Every function entry and a few thousand PCs inside functions against `go tool addr2line`.
    @Test(arguments: Fixtures.matrix.map { MatrixCase($0.0, $0.1) })
    func symbolizationMatchesAddr2line(_ c: MatrixCase) throws {
        let exe = try GoExecutable(path: c.path)
        let funcs = try exe.pclntab.allFunctions()
        #expect(funcs.count == exe.pclntab.functionCount && funcs.count > 1000)
        if exe.elf.section(named: ".gopclntab") == nil && exe.elf.section(named: ".data.rel.ro.gopclntab") == nil {
            // Externally linked: addr2line cannot find the table at all. Compare each
            // function's entry file:line with addr2line on the same toolchain's normal build.
            let normalCase = MatrixCase(c.toolchain, "normal")
            let normal = try GoExecutable(path: normalCase.path)
            let normalFuncs = Dictionary(try normal.pclntab.allFunctions().map { ($0.name, $0.entry) }, uniquingKeysWith: { a, _ in a })
            let truth = try addr2line(normalCase, Array(normalFuncs.values))
            var compared = 0, mismatches: [String] = []
            for f in funcs {
                guard let e = normalFuncs[f.name], let t = truth[e], let ours = try exe.pclntab.physicalFrame(at: f.entry) else { continue }
                compared += 1
                if "\(ours.function) \(ours.file):\(ours.line)" != "\(t.function) \(t.fileLine)" { mismatches.append("\(f.name): \(ours) vs \(t)") }
            }
            // Builds differ (cgo changes some runtime code), so only the program's own
            // functions must agree exactly; the rest nearly all.
            #expect(compared > 1500)
            #expect(!mismatches.contains { $0.hasPrefix("main.") }, "\(mismatches.prefix(5))")
            #expect(mismatches.count * 20 < compared, "\(mismatches.count) of \(compared): \(mismatches.prefix(5))")
            return
        }
        let (mismatches, compared) = try compareWithAddr2line(exe.pclntab, go: c.toolchain.go, path: try addr2linePath(c))
        #expect(compared > funcs.count)
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(compared) differ, e.g. \(mismatches.prefix(5))")
    }

    /// Inlined frames against what the Go runtime itself reports (runtime.CallersFrames).
    @Test(arguments: Fixtures.matrix.map { MatrixCase($0.0, $0.1) })
    func inlinedFramesMatchGoRuntime(_ c: MatrixCase) throws {
        let exe = try GoExecutable(path: c.path)
        let out = try run(c.path, ["-frames"])
        var pcs: [UInt64] = [], goFrames: [String] = [], runtimeMain: UInt64 = 0
        for line in out.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.first == "pc" { pcs.append(UInt64(f[1].dropFirst(2), radix: 16)!) }
            if f.first == "frame" { goFrames.append("\(f[2]) \(f[3])") }
            if f.first == "entry" { runtimeMain = UInt64(f[2].dropFirst(2), radix: 16)! }
        }
        let bias = runtimeMain &- (try exe.functionEntry("main.main").entry)
        // runtime.Callers adds one fake PC per inlined frame; the expansion of
        // such a PC is a suffix of the one before it, and CallersFrames skips it.
        var ours: [String] = [], previous: [String] = []
        for pc in pcs {
            let expansion = try exe.pclntab.frames(at: pc &- bias &- 1).map { "\($0.function) \($0.file):\($0.line)" }
            if !expansion.isEmpty && expansion.count < previous.count && Array(previous.suffix(expansion.count)) == expansion { continue }
            ours += expansion
            previous = expansion
        }
        #expect(goFrames.count >= 6)
        #expect(ours == goFrames)
        #expect(ours.contains { $0.hasPrefix("main.middle ") }, "the fixture's inlined chain is missing")
    }

    // MARK: helpers

    /// The file addr2line reads for a matrix binary. Go 1.19 PIEs name the table
    /// `.data.rel.ro.gopclntab`, which addr2line does not look for: it reads a copy
    /// with the section renamed (objcopy), same bytes otherwise.
    func addr2linePath(_ c: MatrixCase) throws -> String {
        let exe = try GoExecutable(path: c.path)
        guard exe.elf.section(named: ".gopclntab") == nil && exe.elf.section(named: ".data.rel.ro.gopclntab") != nil else { return c.path }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-\(c.toolchain.version)-\(c.mode)-renamed").path
        _ = try run("/usr/bin/objcopy", ["--rename-section", ".data.rel.ro.gopclntab=.gopclntab", c.path, path])
        return path
    }

    func addr2line(_ c: MatrixCase, _ pcs: [UInt64]) throws -> [UInt64: (function: String, fileLine: String)] {
        try goAddr2line(go: c.toolchain.go, path: try addr2linePath(c), pcs)
    }

    func loadSegments(_ path: String) throws -> [(offset: UInt64, vaddr: UInt64, filesz: UInt64)] {
        let out = try run("/usr/bin/readelf", ["-lW", path])
        return out.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.first == "LOAD", f.count >= 5 else { return nil }
            func h(_ s: Substring) -> UInt64 { UInt64(s.dropFirst(2), radix: 16)! }
            return (h(f[1]), h(f[2]), h(f[4]))
        }
    }
}

/// `go tool addr2line` answers, with its "no line" (":-N") written as gmon writes it ("?:0").
func goAddr2line(go: String, path: String, _ pcs: [UInt64]) throws -> [UInt64: (function: String, fileLine: String)] {
    let query = pcs.map { "0x" + String($0, radix: 16) }.joined(separator: "\n") + "\n"
    let out = try run(go, ["tool", "addr2line", path], stdin: query)
    let lines = out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    var result: [UInt64: (String, String)] = [:]
    for (i, pc) in pcs.enumerated() where 2 * i + 1 < lines.count {
        let fl = lines[2 * i + 1]
        result[pc] = (lines[2 * i], fl.hasPrefix(":-") ? "?:0" : fl)
    }
    return result
}

/// Every function entry and one PC inside every other function, as gmon symbolizes them,
/// against addr2line; returns the mismatches and how many PCs were compared.
func compareWithAddr2line(_ tab: PCLNTab, go: String, path: String) throws -> (mismatches: [String], compared: Int) {
    let funcs = try tab.allFunctions()
    var pcs: [UInt64] = []
    for (i, f) in funcs.enumerated() {
        pcs.append(f.entry)
        if i % 2 == 0 && f.end - f.entry > 8 { pcs.append(f.entry + (f.end - f.entry) * UInt64(i % 7 + 1) / 9) }
    }
    let truth = try goAddr2line(go: go, path: path, pcs)
    var mismatches: [String] = []
    for pc in pcs {
        let ours = try tab.physicalFrame(at: pc)
        guard let t = truth[pc] else { mismatches.append("no addr2line answer for \(pc)"); continue }
        let oursText = ours.map { "\($0.function) \($0.file):\($0.line)" } ?? "? ?:0"
        let theirs = "\(t.function) \(t.fileLine)"
        if oursText != theirs { mismatches.append("0x\(String(pc, radix: 16)): gmon \(oursText) addr2line \(theirs)") }
    }
    return (mismatches, pcs.count)
}
