import Gzip
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Serves /metrics and /healthz with Hummingbird on its own event loop, so
/// scrapes and event processing never wait for each other.
public final class MetricsServer: @unchecked Sendable {
    /// One line for the user: what went wrong and how to fix it.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    let metrics: GoroutineMetrics
    private let attached = NIOLockedValueBox(false)
    private var task: Task<Void, Error>?
    public private(set) var boundAddress = ""

    public init(metrics: GoroutineMetrics) { self.metrics = metrics }

    /// /healthz answers 200 only while the probes are attached.
    public var isAttached: Bool {
        get { attached.withLockedValue { $0 } }
        set { attached.withLockedValue { $0 = newValue } }
    }

    /// Binds and starts serving; throws a one-line error for a busy or bad address.
    public func start(host: String, port: Int) throws {
        let router = Router()
        router.get("/metrics") { [metrics] request, _ -> Response in Self.scrape(metrics, request, head: false) }
        // HEAD: the headers GET would send (its Content-Length too), no body.
        router.head("/metrics") { [metrics] request, _ -> Response in Self.scrape(metrics, request, head: true) }
        router.get("/healthz") { [self] _, _ -> Response in
            isAttached ? Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
                : Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "probes not attached\n")))
        }
        var logger = Logger(label: "gmon.metrics")
        logger.logLevel = .critical
        let ready = DispatchSemaphore(value: 0)
        let outcome = NIOLockedValueBox<Result<String, Error>?>(nil)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "gmon"),
            onServerRunning: { channel in
                // An IPv6 address in brackets, as a URL takes it ([::1]:5500, not ::1:5500).
                let ip = channel.localAddress?.ipAddress ?? host
                let shown = ip.contains(":") ? "[\(ip)]" : ip
                outcome.withLockedValue { $0 = .success("\(shown):\(channel.localAddress?.port ?? port)") }
                ready.signal()
            },
            logger: logger)
        task = Task.detached {
            do { try await app.runService(gracefulShutdownSignals: []) } catch {
                outcome.withLockedValue { if $0 == nil { $0 = .failure(error) } }
                ready.signal()
                throw error
            }
        }
        if ready.wait(timeout: .now() + 10) == .timedOut {
            throw MetricsServer.Failure("the metrics server on \(host):\(port) did not start within 10 s")
        }
        switch outcome.withLockedValue({ $0 }) {
        case .success(let a)?: boundAddress = a
        case .failure(let e)?:
            let text = "\(e)"
            if text.contains("Address already in use") || text.contains("EADDRINUSE") {
                throw MetricsServer.Failure("the metrics address \(host):\(port) is busy: another program listens there; pick another with --metrics-address HOST:PORT")
            }
            throw MetricsServer.Failure("cannot serve metrics on \(host):\(port): \(text)")
        case nil: throw MetricsServer.Failure("the metrics server on \(host):\(port) did not start")
        }
    }

    public func stop() { task?.cancel() }

    static func scrape(_ metrics: GoroutineMetrics, _ request: Request, head: Bool) -> Response {
        let om = Exposition.wantsOpenMetrics(accept: request.headers[.accept])
        var body = metrics.render(openMetrics: om)
        var headers: HTTPFields = [.contentType: om ? Exposition.openMetricsContentType : Exposition.prometheusContentType]
        // Prometheus asks for gzip: a scrape is text that repeats its label names and values on
        // every series, so it compresses many times over. Level 1: a scrape is served on every
        // request, and level 1 already takes most of the repetition out. Should zlib fail, the
        // body goes as it is.
        headers[.vary] = "Accept-Encoding"
        if acceptsGzip(request.headers[.acceptEncoding]), let z = Gzip.compress(body, level: 1) {
            body = z
            headers[.contentEncoding] = "gzip"
        }
        if head {
            headers[.contentLength] = String(body.count)
            return Response(status: .ok, headers: headers, body: ResponseBody())
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Whether an Accept-Encoding header lists gzip (or x-gzip) with a q-value above 0.
    static func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        return header.split(separator: ",").contains { item in
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let name = parts.first, name == "gzip" || name == "x-gzip" else { return false }
            let q = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return q > 0
        }
    }
}

/// "HOST:PORT", "[::1]:PORT", ":PORT" (every IPv4 interface, as Prometheus exporters take it)
/// or "PORT" (loopback) → (host, port).
public func parseListenAddress(_ s: String) throws -> (String, Int) {
    func port(_ p: Substring) throws -> Int {
        guard let v = Int(p), (0...65535).contains(v) else { throw MetricsServer.Failure("metrics port \(p) is not a port number (0–65535)") }
        return v
    }
    if let v = Int(s) { return ("127.0.0.1", try port(Substring(String(v)))) }
    if s.hasPrefix("["), let close = s.firstIndex(of: "]") {
        let host = String(s[s.index(after: s.startIndex)..<close])
        let rest = s[s.index(after: close)...]
        guard rest.hasPrefix(":") else { throw MetricsServer.Failure("metrics address \(s) needs a port: [HOST]:PORT") }
        return (host, try port(rest.dropFirst()))
    }
    let parts = s.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 2 else { throw MetricsServer.Failure("metrics address \(s) is not HOST:PORT (for example 127.0.0.1:5500, or :5500 for every interface)") }
    return (parts[0].isEmpty ? "0.0.0.0" : String(parts[0]), try port(parts[1]))
}
