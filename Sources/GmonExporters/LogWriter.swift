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
    }

    /// The site's fields rendered once per site (they repeat on every line of that site).
    private var renderedSites: [Int32: [UInt8]] = [:]

    public func created(_ c: Creation, site: CreationSite, siteIndex: Int32? = nil) {
        guard level <= .info, !broken else { return }
        var fields: [(String, Value)] = [
            ("pid", .int(UInt64(c.pid))), ("goroutine_id", .int(c.goid)),
        ]
        if c.parentGoid != 0 { fields.append(("parent_goroutine_id", .int(c.parentGoid))) }
        if let i = siteIndex, let r = renderedSites[i] {
            fields.append(("", .rendered(r)))
        } else {
            var siteFields: [(String, Value)] = [("function", .string(site.function)), ("created_by", .string(site.createdBy))]
            for (i, f) in site.stack.enumerated() { siteFields.append(("stack.\(i)", .string(f))) }
            let saved = buffer
            buffer = []
            appendFields(siteFields)
            let r = buffer
            buffer = saved
            if let i = siteIndex { renderedSites[i] = r }
            fields.append(("", .rendered(r)))
        }
        line(timeNs: c.timeNs, level: .info, msg: "goroutine is created", fields)
    }

    public func exited(pid: UInt32, goid: UInt64, timeNs: UInt64, lifetimeNs: UInt64?, site: CreationSite?) {
        guard level <= .debug, !broken else { return }
        var fields: [(String, Value)] = [("pid", .int(UInt64(pid))), ("goroutine_id", .int(goid))]
        if let l = lifetimeNs { fields.append(("lifetime_seconds", .seconds(l))) } else { fields.append(("created", .string("before gmon attached"))) }
        if let s = site {
            fields.append(("function", .string(s.function)))
            fields.append(("created_by", .string(s.createdBy)))
        }
        line(timeNs: timeNs, level: .debug, msg: "goroutine is exited", fields)
    }

    public func processExited(pid: UInt32, timeNs: UInt64, liveGoroutines: Int) {
        guard level <= .info, !broken else { return }
        line(timeNs: timeNs, level: .info, msg: "process exited", [("pid", .int(UInt64(pid))), ("live_goroutines", .int(UInt64(liveGoroutines)))])
    }

    public enum Value {
        case int(UInt64), string(String), seconds(UInt64)
        /// Fields already rendered in this writer's format, separators included.
        case rendered([UInt8])
    }

    func line(timeNs: UInt64, level: Level, msg: String, _ fields: [(String, Value)]) {
        let time = timestamp(Int64(bitPattern: timeNs) &+ wallOffsetNs)
        switch format {
        case .logfmt:
            append("time=\(time) level=\(level.name) msg=")
            appendLogfmtValue(msg)
        case .json:
            append("{\"time\":\"\(time)\",\"level\":\"\(level.name)\",\"msg\":")
            appendJSONString(msg)
        }
        appendFields(fields)
        if format == .json { append("}") }
        buffer.append(0x0a)
        if buffer.count >= 1 << 15 { flush() }
    }

    func appendFields(_ fields: [(String, Value)]) {
        for (k, v) in fields {
            if case .rendered(let bytes) = v { buffer.append(contentsOf: bytes); continue }
            switch format {
            case .logfmt: append(" \(k)=")
            case .json: append(","); appendJSONString(k); append(":")
            }
            switch v {
            case .int(let i): append(String(i))
            case .string(let s): format == .json ? appendJSONString(s) : appendLogfmtValue(s)
            case .seconds(let ns): append(Self.seconds(ns))
            case .rendered: break
            }
        }
    }

    @inline(__always) func append(_ s: String) { buffer.append(contentsOf: s.utf8) }

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

    static func seconds(_ ns: UInt64) -> String {
        let s = ns / 1_000_000_000, frac = ns % 1_000_000_000
        let f = String(frac)
        return "\(s)." + String(repeating: "0", count: 9 - f.count) + f
    }

    private var cachedSecond: Int64 = -1
    private var cachedPrefix = ""

    /// RFC 3339 with milliseconds; the date and time up to the second is formatted once per second.
    func timestamp(_ wallNs: Int64) -> String {
        let sec = wallNs / 1_000_000_000
        if sec != cachedSecond {
            cachedSecond = sec
            let full = Self.rfc3339(sec * 1_000_000_000)
            cachedPrefix = String(full.dropLast(4))   // drop "000Z"
        }
        let ms = Int((wallNs % 1_000_000_000) / 1_000_000)
        return cachedPrefix + (ms < 10 ? "00" : ms < 100 ? "0" : "") + String(ms) + "Z"
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
