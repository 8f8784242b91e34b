import GoroutineTracker
#if canImport(Glibc)
import Glibc
#endif

/// One line per goroutine event, in logfmt (compatible with the earlier gmon's
/// lines) or JSON. Written straight to a file descriptor through a buffer:
/// this is the per-event hot path, so no logging framework sits in it.
public final class LogWriter {
    public enum Format: String, Sendable, CaseIterable { case logfmt, json }
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case debug = 0, info, warn, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        public var name: String { ["DEBUG", "INFO", "WARN", "ERROR"][rawValue] }
        public init?(name: String) {
            guard let l = Level.allCases.first(where: { $0.name == name.uppercased() || (name.lowercased() == "warning" && $0 == .warn) }) else { return nil }
            self = l
        }
    }

    let fd: Int32
    let format: Format
    public let level: Level
    private var buffer: [UInt8] = []
    /// CLOCK_REALTIME − CLOCK_MONOTONIC, to print kernel timestamps as wall time.
    let wallOffsetNs: Int64
    /// Set when the reader went away (closed pipe); gmon then stops writing.
    public private(set) var broken = false

    public init(fd: Int32, format: Format, level: Level) {
        self.fd = fd; self.format = format; self.level = level
        var rt = timespec(), mono = timespec()
        clock_gettime(CLOCK_REALTIME, &rt)
        clock_gettime(CLOCK_MONOTONIC, &mono)
        wallOffsetNs = (Int64(rt.tv_sec) - Int64(mono.tv_sec)) * 1_000_000_000 + Int64(rt.tv_nsec) - Int64(mono.tv_nsec)
        buffer.reserveCapacity(1 << 16)
        // Empty first: rendering goes through this writer's own methods.
        heads = Heads(created: [], exited: [], processExited: [])
        keys = Keys(pid: [], goroutineID: [], parentGoroutineID: [], lifetime: [], liveGoroutines: [])
        heads = Heads(created: renderedHead(.info, "goroutine is created"),
                      exited: renderedHead(.debug, "goroutine is exited"),
                      processExited: renderedHead(.info, "process exited"))
        keys = Keys(pid: renderedKey("pid"), goroutineID: renderedKey("goroutine_id"),
                    parentGoroutineID: renderedKey("parent_goroutine_id"),
                    lifetime: renderedKey("lifetime_seconds"), liveGoroutines: renderedKey("live_goroutines"))
    }

    /// The site's fields rendered once per site (they repeat on every line of that site):
    /// everything but the time and the ids is bytes copied from here.
    /// Indexed by site index (empty: not rendered yet); an Array, not a Dictionary, so a
    /// line costs no hashing.
    private var renderedSites: [[UInt8]] = []
    private var renderedExitSites: [[UInt8]] = []

    private func cached(_ table: [[UInt8]], _ i: Int32?) -> Bool {
        guard let i, Int(i) < table.count, !table[Int(i)].isEmpty else { return false }
        buffer.append(contentsOf: table[Int(i)])
        return true
    }

    private func remember(_ r: [UInt8], _ i: Int32?, in table: inout [[UInt8]]) {
        guard let i, i >= 0 else { return }
        if table.count <= Int(i) { table.append(contentsOf: repeatElement([], count: Int(i) + 1 - table.count)) }
        table[Int(i)] = r
    }

    public func created(_ c: Creation, site: @autoclosure () -> CreationSite, siteIndex: Int32? = nil) {
        guard level <= .info, !broken else { return }
        head(timeNs: c.timeNs, heads.created)
        field(keys.pid, UInt64(c.pid))
        field(keys.goroutineID, c.goid)
        if c.parentGoid != 0 { field(keys.parentGoroutineID, c.parentGoid) }
        if !cached(renderedSites, siteIndex) {
            let site = site()
            var siteFields = [("function", site.function), ("created_by", site.createdBy)]
            for (i, f) in site.stack.enumerated() { siteFields.append(("stack.\(i)", f)) }
            let r = rendered(siteFields)
            remember(r, siteIndex, in: &renderedSites)
            buffer.append(contentsOf: r)
        }
        endLine()
    }

    public func exited(pid: UInt32, goid: UInt64, timeNs: UInt64, lifetimeNs: UInt64?, site: @autoclosure () -> CreationSite?, siteIndex: Int32? = nil) {
        guard level <= .debug, !broken else { return }
        head(timeNs: timeNs, heads.exited)
        field(keys.pid, UInt64(pid))
        field(keys.goroutineID, goid)
        if let l = lifetimeNs {
            buffer.append(contentsOf: keys.lifetime)
            appendSeconds(l)
        } else {
            appendFields([("created", "before gmon attached")])
        }
        if !cached(renderedExitSites, siteIndex), let s = site() {
            let r = rendered([("function", s.function), ("created_by", s.createdBy)])
            remember(r, siteIndex, in: &renderedExitSites)
            buffer.append(contentsOf: r)
        }
        endLine()
    }

    public func processExited(pid: UInt32, timeNs: UInt64, liveGoroutines: Int) {
        guard level <= .info, !broken else { return }
        head(timeNs: timeNs, heads.processExited)
        field(keys.pid, UInt64(pid))
        field(keys.liveGoroutines, UInt64(liveGoroutines))
        endLine()
    }

    /// Constant parts of lines in this writer's format, rendered once.
    struct Heads { var created: [UInt8], exited: [UInt8], processExited: [UInt8] }
    struct Keys { var pid: [UInt8], goroutineID: [UInt8], parentGoroutineID: [UInt8], lifetime: [UInt8], liveGoroutines: [UInt8] }
    // Rendered in init (stored, not lazy: a lazy getter per field read cost retains).
    private var heads: Heads
    private var keys: Keys

    /// What follows the timestamp: ` level=INFO msg="…"` or `","level":"INFO","msg":"…"`.
    func renderedHead(_ level: Level, _ msg: String) -> [UInt8] {
        rendering {
            switch format {
            case .logfmt: append(" level=\(level.name) msg="); appendLogfmtValue(msg)
            case .json: append("\",\"level\":\"\(level.name)\",\"msg\":"); appendJSONString(msg)
            }
        }
    }

    /// ` key=` or `,"key":`.
    func renderedKey(_ key: String) -> [UInt8] { rendering { appendKey(key) } }

    func rendered(_ fields: [(String, String)]) -> [UInt8] { rendering { appendFields(fields) } }

    /// What `body` appends, taken out of the line buffer.
    private func rendering(_ body: () -> Void) -> [UInt8] {
        let saved = buffer
        buffer = []
        body()
        let r = buffer
        buffer = saved
        return r
    }

    func head(timeNs: UInt64, _ head: [UInt8]) {
        buffer.append(contentsOf: format == .json ? Self.jsonTimeKey : Self.logfmtTimeKey)
        appendTimestamp(Int64(bitPattern: timeNs) &+ wallOffsetNs)
        buffer.append(contentsOf: head)
    }
    static let logfmtTimeKey = Array("time=".utf8)
    static let jsonTimeKey = Array("{\"time\":\"".utf8)

    @inline(__always) func field(_ key: [UInt8], _ value: UInt64) {
        buffer.append(contentsOf: key)
        appendDecimal(value)
    }

    func endLine() {
        if format == .json { buffer.append(0x7d) }
        buffer.append(0x0a)
        if buffer.count >= 1 << 15 { flush() }
    }

    func appendKey(_ key: String) {
        switch format {
        case .logfmt: append(" \(key)=")
        case .json: append(","); appendJSONString(key); append(":")
        }
    }

    /// String fields (the per-site ones, rendered once per site).
    func appendFields(_ fields: [(String, String)]) {
        for (k, v) in fields {
            appendKey(k)
            format == .json ? appendJSONString(v) : appendLogfmtValue(v)
        }
    }

    @inline(__always) func append(_ s: String) { buffer.append(contentsOf: s.utf8) }

    /// Decimal digits straight into the buffer (no String per number).
    @inline(__always) func appendDecimal(_ v: UInt64) {
        let start = buffer.count
        var x = v
        repeat { buffer.append(UInt8(truncatingIfNeeded: 0x30 &+ x % 10)); x /= 10 } while x > 0
        buffer[start...].reverse()
    }

    /// Seconds with nanoseconds: "1.500000000".
    func appendSeconds(_ ns: UInt64) {
        appendDecimal(ns / 1_000_000_000)
        buffer.append(0x2e)
        var frac = ns % 1_000_000_000, div: UInt64 = 100_000_000
        while div > 0 { buffer.append(UInt8(truncatingIfNeeded: 0x30 &+ frac / div)); frac %= div; div /= 10 }
    }

    func appendLogfmtValue(_ s: String) {
        let needsQuotes = s.isEmpty || s.utf8.contains { $0 <= 0x20 || $0 == 0x3d || $0 == 0x22 || $0 == 0x5c }
        if needsQuotes { appendQuoted(s, json: false) } else { append(s) }
    }

    func appendJSONString(_ s: String) { appendQuoted(s, json: true) }

    /// A double-quoted string; JSON also escapes the other control characters.
    func appendQuoted(_ s: String, json: Bool) {
        buffer.append(0x22)
        for b in s.utf8 {
            switch b {
            case 0x22: append("\\\"")
            case 0x5c: append("\\\\")
            case 0x0a: append("\\n")
            case ..<0x20 where json: append("\\u00" + (b < 0x10 ? "0" : "") + String(b, radix: 16))
            default: buffer.append(b)
            }
        }
        buffer.append(0x22)
    }

    /// Writes what is buffered; a closed reader (EPIPE) marks the writer broken.
    public func flush() {
        var off = 0
        while off < buffer.count && !broken {
            let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                broken = true
            } else {
                off += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    private var cachedSecond: Int64 = -1
    private var cachedPrefix: [UInt8] = []

    /// RFC 3339 with milliseconds; the date and time up to the second is formatted once per second.
    func appendTimestamp(_ wallNs: Int64) {
        let sec = wallNs / 1_000_000_000
        if sec != cachedSecond {
            cachedSecond = sec
            cachedPrefix = Array(Self.rfc3339(sec * 1_000_000_000).utf8.dropLast(4))   // drop "000Z"
        }
        buffer.append(contentsOf: cachedPrefix)
        let ms = UInt64((wallNs % 1_000_000_000) / 1_000_000)
        buffer.append(UInt8(truncatingIfNeeded: 0x30 &+ ms / 100))
        buffer.append(UInt8(truncatingIfNeeded: 0x30 &+ ms / 10 % 10))
        buffer.append(UInt8(truncatingIfNeeded: 0x30 &+ ms % 10))
        buffer.append(0x5a)   // Z
    }

    static func rfc3339(_ wallNs: Int64) -> String {
        var t = time_t(wallNs / 1_000_000_000)
        var tm = tm()
        gmtime_r(&t, &tm)
        let ms = Int((wallNs % 1_000_000_000) / 1_000_000)
        func p(_ v: Int32, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return "\(p(tm.tm_year + 1900, 4))-\(p(tm.tm_mon + 1, 2))-\(p(tm.tm_mday, 2))T\(p(tm.tm_hour, 2)):\(p(tm.tm_min, 2)):\(p(tm.tm_sec, 2)).\(p(Int32(ms), 3))Z"
    }
}
