import Foundation
import Testing
import TestSupport

/// The metrics endpoint's HTTP manners, by real requests to a running gmon: HEAD as GET
/// without the body, gzip when the scraper asks for it (Prometheus does).
extension EndToEnd {
    @Suite struct MetricsHTTPTests {
        /// One raw HTTP/1.1 request (Python's socket, so nothing between the test and the bytes gmon sends):
        /// the status line and headers, and the bytes after the blank line until gmon closes.
        static func request(_ method: String, _ address: String, headers: [String] = []) throws -> (head: [String], body: Data) {
            let script = """
            import socket, sys
            host, port = sys.argv[1].rsplit(":", 1)
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(("%s /metrics HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n" % (sys.argv[2], sys.argv[1])
                       + "".join(h + "\\r\\n" for h in sys.argv[3:]) + "\\r\\n").encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk: break
                data += chunk
            sys.stdout.buffer.write(data)
            """
            // The body may be gzip: the raw bytes, never a decoded string.
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            p.arguments = ["-c", script, address, method] + headers
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw E2EError("the request to \(address) failed") }
            return try split(data)
        }

        static func split(_ data: Data) throws -> (head: [String], body: Data) {
            guard let r = data.range(of: Data("\r\n\r\n".utf8)) else { throw E2EError("no HTTP header in \(data.count) bytes") }
            let head = String(decoding: data[..<r.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
            return (head, Data(data[r.upperBound...]))
        }

        static func header(_ head: [String], _ name: String) -> String? {
            head.dropFirst().first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
                .map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
        }

        /// The series by name and labels, sorted (values move between two scrapes, and the
        /// families' order is not fixed from one scrape to the next).
        static func series(_ text: String) -> [String] {
            text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { String($0[..<($0.lastIndex(of: " ") ?? $0.endIndex)]) }.sorted()
        }

        @Test func headAndGzip() throws {
            let fixture = try GoroutinesCommandTests.blocked("1.25.5", "normal")
            let gmon = try GmonProcess(["--pid", String(fixture.process.processIdentifier)])
            try gmon.waitUntilAttached()
            let address = try MetricsTests.metricsURL(gmon)
            // The series of the goroutines that already existed appear with the first drains
            // after attach: wait until two scrapes a second apart list the same series.
            var previous: [String] = []
            for _ in 0..<20 {
                let now = Self.series(String(decoding: try Self.request("GET", address).body, as: UTF8.self))
                if now == previous { break }
                previous = now
                usleep(1_000_000)
            }

            let get = try Self.request("GET", address)
            #expect(get.head.first == "HTTP/1.1 200 OK", "\(get.head)")
            #expect(Self.header(get.head, "Content-Encoding") == nil, "no gzip unless asked: \(get.head)")
            let plain = String(decoding: get.body, as: UTF8.self)
            #expect(plain.contains("gmon_goroutines_created_total{"), "\(plain.prefix(500))")

            // HEAD: what GET answers, without the body.
            let head = try Self.request("HEAD", address)
            #expect(head.head.first == "HTTP/1.1 200 OK", "\(head.head)")
            #expect(Self.header(head.head, "Content-Type") == "text/plain; version=0.0.4; charset=utf-8", "\(head.head)")
            let length = Int(Self.header(head.head, "Content-Length") ?? "") ?? 0
            #expect(abs(length - get.body.count) < get.body.count / 10, "HEAD says \(length) bytes, GET sent \(get.body.count)")
            #expect(head.body.isEmpty, "HEAD answered with a body of \(head.body.count) bytes")

            // gzip as Prometheus asks for it; the body gunzips to the same exposition.
            let gz = try Self.request("GET", address, headers: ["Accept-Encoding: gzip"])
            #expect(gz.head.first == "HTTP/1.1 200 OK", "\(gz.head)")
            #expect(Self.header(gz.head, "Content-Encoding") == "gzip", "\(gz.head)")
            #expect(Int(Self.header(gz.head, "Content-Length") ?? "") == gz.body.count, "\(gz.head)")
            let unzipped = String(decoding: try gunzip(gz.body), as: UTF8.self)
            let (a, b) = (Set(Self.series(unzipped)), Set(Self.series(plain)))
            #expect(a == b && !a.isEmpty, "the gzipped exposition differs: only gzipped \(a.subtracting(b)), only plain \(b.subtracting(a))")
            #expect(gz.body.count * 5 < get.body.count, "gzip: \(gz.body.count) of \(get.body.count) bytes")
            // A scraper that refuses gzip gets plain text; OpenMetrics is gzipped too.
            let refused = try Self.request("GET", address, headers: ["Accept-Encoding: gzip;q=0, identity"])
            #expect(Self.header(refused.head, "Content-Encoding") == nil, "\(refused.head)")
            let om = try Self.request("GET", address, headers: ["Accept: application/openmetrics-text; version=1.0.0", "Accept-Encoding: deflate, gzip"])
            #expect(Self.header(om.head, "Content-Encoding") == "gzip", "\(om.head)")
            #expect(String(decoding: try gunzip(om.body), as: UTF8.self).hasSuffix("# EOF\n"))
            #expect(try gmon.stop() == 0)
        }
    }
}
