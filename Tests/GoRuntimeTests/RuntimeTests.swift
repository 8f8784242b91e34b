import Foundation
import Testing
import TestSupport
import GoBinary
@testable import GoRuntime

/// Per-release knowledge against the releases of the fixture matrix.
@Suite struct RuntimeLayoutTests {
    /// The runtime.g table agrees with the DWARF of every release that has a normal build.
    @Test(arguments: Fixtures.toolchains)
    func runtimeLayoutTableMatchesDWARF(_ t: Fixtures.Toolchain) throws {
        let normal = try GoExecutable(path: Fixtures.binary(t.version, "normal"))
        let fromDWARF = try #require(try RuntimeLayout.fromDWARF(normal.elf))
        let fromTable = try #require(RuntimeLayout.fromTable(release: normal.buildInfo.release))
        #expect(fromDWARF.goid == fromTable.goid && fromDWARF.gopc == fromTable.gopc
                && fromDWARF.startpc == fromTable.startpc && fromDWARF.parentGoid == fromTable.parentGoid
                && fromDWARF.gSize == fromTable.gSize)
        let stripped = try GoExecutable(path: Fixtures.binary(t.version, "stripped"))
        #expect(try stripped.runtimeLayout().source == .table)
        #expect(try normal.runtimeLayout().source == .dwarf)
    }

    /// gmon keys live goroutines by g address / gSizeFloor, which stays unique only if every
    /// runtime.g is at least that large: sizeof(g) as gmon reads it from DWARF (and the table
    /// has it) is checked against readelf's DW_AT_byte_size.
    @Test(arguments: Fixtures.toolchains)
    func runtimeGSizeMatchesReadelf(_ t: Fixtures.Toolchain) throws {
        let path = Fixtures.binary(t.version, "normal")
        let exe = try GoExecutable(path: path)
        let dump = try run("/usr/bin/readelf", ["--debug-dump=info", path])
        guard let r = dump.range(of: "DW_AT_name        : runtime.g\n +<[0-9a-f]+> +DW_AT_byte_size +: [0-9]+", options: .regularExpression),
              let size = Int(dump[r].split(separator: " ").last!) else {
            Issue.record("runtime.g's size not found in \(path)"); return
        }
        let layout = try exe.runtimeLayout()
        #expect(layout.gSize == size && layout.gSizeFloor == size)
        #expect(RuntimeLayout.fromTable(release: exe.buildInfo.release)?.gSize == size)
    }

}

@Suite struct FrameRulesTests {
    @Test func printNamesAsGoTracebacksDo() {
        #expect(FrameRules.printName("iter.Pull[go.shape.int]") == "iter.Pull[...]")
        #expect(FrameRules.printName("iter.Pull2[go.shape.string,go.shape.int].func1") == "iter.Pull2[...].func1")
        #expect(FrameRules.printName("main.main") == "main.main")
    }

    @Test func wrappersAndInstrumentation() {
        #expect(FrameRules.wrapperFuncID(release: (1, 17)) == 22)
        #expect(FrameRules.wrapperFuncID(release: (1, 21)) == 21)
        #expect(FrameRules.wrapperFuncID(release: (1, 22)) == nil)
        #expect(FrameRules.isGoStatementWrapperName("main.main.gowrap1"))
        #expect(!FrameRules.isGoStatementWrapperName("main.main.func1"))
        #expect(FrameRules.isInstrumentationCallee("runtime.morestack_noctxt"))
        #expect(FrameRules.isInstrumentationCallee("runtime.racefuncenter"))
        #expect(!FrameRules.isInstrumentationCallee("main.worker"))
        #expect(FrameRules.withoutMethodValueSuffix("main.(*T).Run-fm") == "main.(*T).Run")
    }

    /// The runtime frames gmon skips exist in every release's binary that creates goroutines there.
    @Test(arguments: Fixtures.toolchains)
    func creationFramesExist(_ t: Fixtures.Toolchain) throws {
        let exe = try GoExecutable(path: Fixtures.binary(t.version, "normal"))
        for f in ["runtime.newproc", "runtime.newproc1", "runtime.newproc.func1", "runtime.systemstack", "runtime.runqput"] {
            #expect(FrameRules.runtimeCreationFrames.contains(f))
            #expect(exe.pclntab.functionIndex(named: f) != nil, "\(t.version) has no \(f)")
        }
    }
}

/// The snapshot's per-release tables against what each release's binaries say.
@Suite struct SnapshotTablesTests {
    /// runtime.g's layout for snapshots: the table row equals the DWARF of every release.
    @Test(arguments: Fixtures.toolchains)
    func goroutineLayoutTableMatchesDWARF(_ t: Fixtures.Toolchain) throws {
        let normal = try GoExecutable(path: Fixtures.binary(t.version, "normal"))
        var fromDWARF = try #require(try GoroutineLayout.fromDWARF(normal.elf))
        let fromTable = try #require(GoroutineLayout.fromTable(release: normal.buildInfo.release))
        #expect(fromDWARF.source == .dwarf)
        fromDWARF.source = .table
        #expect(fromDWARF == fromTable)
        let stripped = try GoExecutable(path: Fixtures.binary(t.version, "stripped"))
        #expect(try stripped.goroutineLayout() == fromTable)
    }

    /// The wait reasons equal runtime.waitReasonStrings of each release's binary, index by index.
    @Test(arguments: Fixtures.toolchains)
    func waitReasonsMatchTheBinary(_ t: Fixtures.Toolchain) throws {
        let path = Fixtures.binary(t.version, "normal")
        let exe = try GoExecutable(path: path)
        let nm = try run(t.go, ["tool", "nm", "-size", path])
        let line = try #require(nm.split(separator: "\n").first { $0.hasSuffix(" runtime.waitReasonStrings") })
        let f = line.split(separator: " ", omittingEmptySubsequences: true)
        let (address, size) = (UInt64(f[0], radix: 16)!, Int(f[1])!)
        var fromBinary: [String] = []
        for i in 0..<(size / 16) {
            let p = try exe.elf.pointer(at: address + UInt64(16 * i))
            let n = Int(try exe.elf.pointer(at: address + UInt64(16 * i + 8)))
            let off = try #require(n == 0 ? 0 : exe.elf.fileOffset(ofAddress: p))
            fromBinary.append(n == 0 ? "" : String(decoding: try exe.elf.data.slice(off, n), as: UTF8.self))
        }
        #expect(WaitReasons.table(release: exe.buildInfo.release) == fromBinary)
    }

    /// Stripped, runtime.allgs is found among the globals runtime.allgadd addresses.
    @Test(arguments: Fixtures.toolchains)
    func allgsIsAmongTheCandidatesOfAStrippedBuild(_ t: Fixtures.Toolchain) throws {
        let normal = try GoExecutable(path: Fixtures.binary(t.version, "normal"))
        let symbol = try normal.allGoroutinesLocation()
        #expect(symbol.fromSymbols && symbol.candidates.count == 1)
        let stripped = try GoExecutable(path: Fixtures.binary(t.version, "stripped"))
        let found = try stripped.allGoroutinesLocation()
        #expect(!found.fromSymbols && !found.candidates.isEmpty && found.candidates.count <= 8)
        // Normal and stripped builds differ in layout: check the method on the normal build's code.
        let f = try normal.functionEntry("runtime.allgadd")
        let globals = try AttachPoints.globalsReferenced(code: Array(try normal.code(from: f.entry, to: f.end)), address: f.entry)
        #expect(globals.contains(symbol.candidates[0]), "\(t.version): allgadd does not address runtime.allgs")
    }
}
