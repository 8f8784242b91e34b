import Foundation
import GmonExporters
import GoroutineTracker
import Testing

@Suite struct LogWriterTests {
    /// Writes through a real pipe and returns what came out.
    func output(_ format: LogWriter.Format, _ body: (LogWriter) -> Void) -> String {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        let w = LogWriter(fd: fds[1], format: format, level: .debug)
        body(w)
        w.flush()
        close(fds[1])
        let data = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true).readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self)
    }

    let creation = Creation(pid: 7, goid: 22, g: 0xc000_0010_00, parentGoid: 1, timeNs: 5, startPC: 0, goPC: 0, stack: [])
    let site = CreationSite(function: "main.worker", createdBy: "main.main (main.go:14)", stack: ["main.main (main.go:14)", "a \"b\"\\c"])

    @Test func logfmtMatchesTheEarlierToolsLines() {
        let line = output(.logfmt) { $0.created(creation, site: site) }
        #expect(line.hasPrefix("time="))
        #expect(line.contains(" level=INFO msg=\"goroutine is created\" pid=7 goroutine_id=22 parent_goroutine_id=1 function=main.worker created_by=\"main.main (main.go:14)\" stack.0=\"main.main (main.go:14)\" stack.1=\"a \\\"b\\\"\\\\c\"\n"))
    }

    @Test func jsonLinesParse() throws {
        let text = output(.json) {
            $0.created(creation, site: site)
            $0.exited(pid: 7, goid: 22, timeNs: 1_500_000_005, lifetimeNs: 1_500_000_000, site: site)
        }
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2)
        let created = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(created["stack.1"] as? String == "a \"b\"\\c")
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
        w.flush()
        close(fds[1])
        #expect(FileHandle(fileDescriptor: fds[0], closeOnDealloc: true).readDataToEndOfFile().isEmpty)
    }
}
