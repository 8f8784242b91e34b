import Foundation
import GmonExporters
import GmonModel
import GoroutineTracker
import Testing

@Suite struct LogWriterTests {
    /// Writes through a real pipe and returns what came out.
    func output(_ format: LogWriter.Format, stackDepth: Int? = nil, _ body: (LogWriter) -> Void) -> String {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        let w = LogWriter(fd: fds[1], format: format, level: .debug, stackDepth: stackDepth)
        body(w)
        w.finish(within: 10)   // a pipe is written by the writer's own thread
        close(fds[1])
        let data = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true).readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self)
    }

    /// A reader that does not read: lines pile up to the bound, then are dropped and counted;
    /// the writer never waits. Once the reader reads, lines read + dropped = lines written.
    @Test func aReaderThatDoesNotReadNeverStallsTheWriter() {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        defer { close(fds[0]) }
        let w = LogWriter(fd: fds[1], format: .logfmt, level: .info, maxPendingBytes: 64 << 10)
        let total = 20_000
        for i in 0..<total {
            w.created(creation, site: site, siteIndex: 0)
            if i % 100 == 99 { w.flush() }   // as gmon does after each drain
        }
        w.flush()
        #expect(w.droppedLines > 0, "nothing was dropped although nobody read")
        let reader = FileHandle(fileDescriptor: fds[0], closeOnDealloc: false)
        nonisolated(unsafe) var read = Data()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async { read = reader.readDataToEndOfFile(); done.signal() }
        w.finish(within: 10)
        close(fds[1])
        done.wait()
        let lines = read.reduce(0) { $0 + ($1 == 0x0a ? 1 : 0) }
        #expect(UInt64(lines) + w.droppedLines == UInt64(total), "read \(lines) + dropped \(w.droppedLines) != \(total)")
        #expect(!w.broken)
    }

    /// A closed reader: the error is kept (gmon reports it and exits non-zero), every line counted as dropped.
    @Test func aClosedReaderIsAnError() {
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        close(fds[0])
        defer { close(fds[1]) }
        let w = LogWriter(fd: fds[1], format: .logfmt, level: .info)
        for _ in 0..<10 { w.created(creation, site: site, siteIndex: 0) }
        w.finish(within: 10)
        #expect(w.broken)
        #expect(w.writeError == EPIPE)
        #expect(w.droppedLines == 10)
    }

    let creation = Creation(pid: 7, goid: 22, g: 0xc000_0010_00, parentGoid: 1, timeNs: 5, startPC: 0, goPC: 0, stack: [])
    static let mainGo14 = Frame(function: "main.main", file: "/home/u/src/main.go", line: 14, inlined: false)
    let site = CreationSite(function: "main.worker", createdBy: Self.mainGo14, stack: [Self.mainGo14, .note("a \"b\"\\c")])

    @Test func logfmtMatchesTheEarlierToolsLines() {
        let line = output(.logfmt) { $0.created(creation, site: site) }
        #expect(line.hasPrefix("time="))
        #expect(line.contains(" level=INFO msg=\"goroutine is created\" pid=7 goroutine_id=22 parent_goroutine_id=1 function=main.worker created_by=\"main.main (main.go:14)\" stack.0=\"main.main (main.go:14)\" stack.1=\"a \\\"b\\\"\\\\c\"\n"))
    }

    /// A site number freed (its executable gone, Tracker.retire) and reused by another site:
    /// the new site's fields are rendered, not the freed one's kept rendering; the other
    /// sites' renderings stay.
    @Test func aFreedSiteNumberRendersItsNewSite() {
        let other = CreationSite(function: "main.other", createdBy: .note("main.elsewhere"), stack: [])
        let lines = output(.logfmt) { w in
            w.created(creation, site: site, siteIndex: 0)
            w.created(creation, site: other, siteIndex: 1)
            w.forget(sites: [0])
            w.created(creation, site: other, siteIndex: 0)
            w.created(creation, site: site, siteIndex: 1)
        }.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[2].contains("function=main.other"), "the freed number still renders its old site: \(lines[2])")
        #expect(lines[3].contains("function=main.other"), "a kept rendering went with the freed one: \(lines[3])")
    }

    /// --stack-depth N: at most N frames a line, in both formats; 0 leaves the stack out.
    @Test func stackDepthBoundsTheFrames() throws {
        let deep = CreationSite(function: "main.worker", createdBy: Self.mainGo14, stack: (0..<10).map { Frame(function: "f\($0)", file: "a.go", line: $0, inlined: false) })
        let logfmt = output(.logfmt, stackDepth: 3) { $0.created(creation, site: deep) }
        #expect(logfmt.contains(" stack.2=\"f2 (a.go:2)\"\n") && !logfmt.contains("stack.3="), "\(logfmt)")
        let json = output(.json, stackDepth: 3) { $0.created(creation, site: deep) }
        let line = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect((line["stack"] as? [[String: Any]])?.map { $0["function"] as? String } == ["f0", "f1", "f2"], "\(json)")
        let none = output(.logfmt, stackDepth: 0) { $0.created(creation, site: deep) }
        #expect(!none.contains("stack."), "\(none)")
        let all = output(.logfmt) { $0.created(creation, site: deep) }
        #expect(all.contains("stack.9="), "\(all)")
    }

    @Test func jsonLinesParse() throws {
        let text = output(.json) {
            $0.created(creation, site: site)
            $0.exited(pid: 7, goid: 22, timeNs: 1_500_000_005, lifetimeNs: 1_500_000_000, site: site)
        }
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2)
        let created = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        // The stack is an array of frames (jq: .stack[0].function), no flat stack.N keys.
        let stack = try #require(created["stack"] as? [[String: Any]], "\(lines[0])")
        #expect(stack.count == 2)
        #expect(stack[0]["function"] as? String == "main.main" && stack[0]["file"] as? String == "/home/u/src/main.go" && stack[0]["line"] as? Int == 14)
        #expect(stack[1]["function"] as? String == "a \"b\"\\c" && stack[1]["file"] as? String == "" && stack[1]["line"] as? Int == 0)
        #expect(!created.keys.contains { $0.hasPrefix("stack.") })
        #expect(created["goroutine_id"] as? Int == 22)
        let exited = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
        #expect(exited["lifetime_seconds"] as? Double == 1.5)
        #expect(exited["level"] as? String == "DEBUG")
    }

    @Test func levelFiltersExits() {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        let w = LogWriter(fd: fds[1], format: .logfmt, level: .info)
        w.exited(pid: 1, goid: 1, timeNs: 1, lifetimeNs: 1, site: nil)
        w.finish(within: 10)
        close(fds[1])
        #expect(FileHandle(fileDescriptor: fds[0], closeOnDealloc: true).readDataToEndOfFile().isEmpty)
    }
    /// Output through a temporary file: lines larger than a pipe's buffer.
    func fileOutput(_ body: (LogWriter) -> Void) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-log-\(UUID().uuidString)").path
        let fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0o600)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        let w = LogWriter(fd: fd, format: .logfmt, level: .debug)
        body(w)
        w.flush()
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    /// Lines from a site's cached rendering equal the first; numbers at their extremes; a
    /// line larger than the writer's buffer (64 KiB) comes out whole, and so do the
    /// thousands of lines around it that cross flushes.
    @Test func cachedSitesExtremeNumbersAndLongLines() throws {
        let longFrame = String(repeating: "pkg.F", count: 2_000) + " (x.go:1)"
        let big = CreationSite(function: "main.big", createdBy: .note("main.main (main.go:1)"), stack: Array(repeating: .note(longFrame), count: 12))
        var c = creation
        let text = try fileOutput { w in
            for i in 0..<5_000 {
                c.goid = i == 0 ? 0 : (i == 1 ? UInt64.max : UInt64(i))
                w.created(c, site: site, siteIndex: 0)
                if i == 2_500 { w.created(c, site: big, siteIndex: 1) }
            }
            w.exited(pid: 7, goid: 9, timeNs: 10, lifetimeNs: nil, site: nil)
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 5_003)   // 5,000 + the big one + the exit + "" after the last newline
        let tail = " level=INFO msg=\"goroutine is created\" pid=7 goroutine_id=%@ parent_goroutine_id=1 function=main.worker created_by=\"main.main (main.go:14)\" stack.0=\"main.main (main.go:14)\" stack.1=\"a \\\"b\\\"\\\\c\""
        #expect(lines[0].hasSuffix(tail.replacingOccurrences(of: "%@", with: "0")))
        #expect(lines[1].hasSuffix(tail.replacingOccurrences(of: "%@", with: "18446744073709551615")))
        #expect(lines[4_999].hasSuffix(tail.replacingOccurrences(of: "%@", with: "4998")))
        let bigLine = lines[2_501]
        #expect(bigLine.utf8.count > 120_000)
        #expect(bigLine.hasSuffix("stack.11=\"\(longFrame)\""))
        #expect(lines[2_502].hasSuffix(tail.replacingOccurrences(of: "%@", with: "2501")))
        #expect(lines[5_001].hasSuffix("goroutine_id=9 created=\"before gmon attached\""))
        #expect(lines.dropLast().allSatisfy { $0.hasPrefix("time=") })
    }
}
