import Foundation
import Testing
@testable import ProcFS

@Suite struct ProcFSTests {
    /// A bare name is taken in the working directory, never looked up on $PATH.
    @Test func bareNamesAreNeverLookedUpOnPath() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("procfs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let old = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(dir.path)
        defer { FileManager.default.changeCurrentDirectoryPath(old) }
        // "sh" exists on $PATH but not here.
        #expect(throws: OpenedExecutable.Failure.self) { try OpenedExecutable(path: "sh") }
        do { _ = try OpenedExecutable(path: "sh") } catch let f as OpenedExecutable.Failure {
            #expect(f.description.contains("never on $PATH"))
        }
        try Data([0x7f, 0x45]).write(to: dir.appendingPathComponent("sh"))
        let here = try OpenedExecutable(path: "sh")
        #expect(here.displayPath.hasSuffix("/sh") && here.displayPath.hasPrefix("/"))
        #expect(here.identity == FileIdentity(path: dir.appendingPathComponent("sh").path))
        // The kernel path opens the very file.
        #expect(FileIdentity(path: here.kernelPath) == here.identity)
    }

    /// A process's executable through /proc/PID/exe: its own file.
    @Test func executableOfAProcess() throws {
        let me = try OpenedExecutable(pid: getpid())
        #expect(me.identity == FileIdentity(path: "/proc/self/exe"))
        #expect(!ProcFS.processIsGone(getpid()))
        #expect(throws: OpenedExecutable.Failure.self) { try OpenedExecutable(pid: 0x3fff_fff0) }
        #expect(ProcFS.processIsGone(0x3fff_fff0))
    }

    /// The load bias comes from the mapping of the file by device and inode: here, this test
    /// binary's own mapping at offset 0 (its link-time start taken as 0).
    @Test func loadBiasByDeviceAndInode() throws {
        let id = try #require(FileIdentity(path: "/proc/self/exe"))
        let maps = try #require(ProcFS.readSmallFile("/proc/self/maps"))
        let first = try #require(maps.split(separator: "\n").first { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).first == Substring(String(id.inode)) })
        let start = try #require(UInt64(first.split(separator: "-")[0], radix: 16))
        #expect(ProcFS.loadBias(pid: UInt32(getpid()), file: id, firstLoadAddress: 0) == start)
        // Another device with the same inode number is another file.
        let other = FileIdentity(device: id.device ^ 0x100, inode: id.inode)
        #expect(ProcFS.loadBias(pid: UInt32(getpid()), file: other, firstLoadAddress: 0) == nil)
    }
}

@Suite struct ProcessesTests {
    @Test func statOfCommandsWithSpacesAndParentheses() {
        let s = ProcFS.parseStat("42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10")
        var want = ProcFS.Stat(state: "S", parent: 1, startTime: 12345)
        (want.userTicks, want.systemTicks, want.virtualBytes, want.residentPages) = (0, 0, 1000, 10)
        #expect(s == want)
        // utime, stime, vsize and rss (fields 14, 15, 23, 24 of stat(5)).
        let t = ProcFS.parseStat("7 (gmon) R 1 7 7 0 -1 0 0 0 0 0 250 50 0 0 20 0 4 0 99 575029248 15895")
        #expect(t?.userTicks == 250 && t?.systemTicks == 50 && t?.virtualBytes == 575029248 && t?.residentPages == 15895)
        #expect(ProcFS.parseStat("42 (x) S 1") == nil)
        #expect(ProcFS.parseStat("garbage") == nil)
    }

    @Test func ownProcessIsListedAndReadable() throws {
        let me = getpid()
        #expect(ProcFS.processIDs().contains(me))
        let s = try #require(ProcFS.stat(me))
        #expect(s.state == "R" || s.state == "S")
        #expect(s.parent == getppid())
        #expect(ProcFS.namespace(me, "mnt") != nil && ProcFS.namespace(me, "mnt") == ProcFS.namespace(getppid(), "mnt"))
        #expect(ProcFS.namespace(me, "nonsense") == nil)
        // Root in this test run: CAP_BPF and CAP_PERFMON.
        let caps = try #require(ProcFS.effectiveCapabilities())
        #expect(caps & (1 << UInt64(ProcFS.capBPF)) != 0)
    }

    @Test func cgroupLines() {
        let c = ProcFS.parseCgroups("12:pids:/kubepods/pod1/abc\n0::/system.slice/x.scope\nbroken\n")
        #expect(c.map(\.path) == ["/kubepods/pod1/abc", "/system.slice/x.scope"])
        #expect(c.map(\.controllers) == ["pids", ""])
        #expect(ProcFS.cgroups(getpid())?.isEmpty == false)
    }
}
