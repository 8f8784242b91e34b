import GmonModel
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
    /// The lines not yet written: raw memory appended to by memcpy. As an [UInt8], its
    /// uniqueness and capacity checks and the retains of the arrays appended were most of
    /// a line's cost (make bench: 270 ns a line, two mallocs).
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity = 1 << 17
    /// Where the next byte lands in the file, to write whole pages while lines pile up: a
    /// write that ends inside a page cost ext4 1.7 times as much per byte (measured:
    /// 130 vs 78 ns per 300 bytes in 32 KiB writes). nil when fd is not a file.
    private var filePosition: Int64?
    private var count = 0
    /// CLOCK_REALTIME − CLOCK_MONOTONIC, to print kernel timestamps as wall time.
    let wallOffsetNs: Int64
    /// Set when writing failed (a closed pipe, a full disk); gmon then stops writing.
    public private(set) var broken = false
    /// errno of the failed write (0: none; -1: gmon stopped waiting for a slow reader).
    public private(set) var writeError: Int32 = 0
    /// Pipes, terminals and sockets are written by a thread of their own, so a reader that
    /// does not read never stalls the event loop; nil for a regular file or /dev/null (no reader).
    private let output: AsyncOutput?
    /// Lines in the buffer, counted so that a dropped chunk's lines are counted.
    private var bufferedLines = 0
    /// Lines not written: a slow reader's queue was full, or writing failed.
    public private(set) var droppedLines: UInt64 = 0
    /// At most this many bytes of lines wait for a slow reader before lines are dropped.
    public static let maxPendingBytes = 16 << 20

    /// Bytes rendered once and copied into lines; never freed before the writer.
    typealias Bytes = UnsafeBufferPointer<UInt8>

    /// At most this many stack frames a line (nil: every frame the probe collected).
    let stackDepth: Int?

    public init(fd: Int32, format: Format, level: Level, stackDepth: Int? = nil, maxPendingBytes: Int = LogWriter.maxPendingBytes) {
        self.fd = fd; self.format = format; self.level = level; self.stackDepth = stackDepth
        var rt = timespec(), mono = timespec()
        clock_gettime(CLOCK_REALTIME, &rt)
        clock_gettime(CLOCK_MONOTONIC, &mono)
        wallOffsetNs = (Int64(rt.tv_sec) - Int64(mono.tv_sec)) * 1_000_000_000 + Int64(rt.tv_nsec) - Int64(mono.tv_nsec)
        buffer = .allocate(capacity: capacity)
        let position = lseek(fd, 0, SEEK_CUR)
        var st = stat()
        if position >= 0, fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG {
            // O_APPEND (a shell's >>): every write goes to the end.
            filePosition = fcntl(fd, F_GETFL) & O_APPEND != 0 ? Int64(st.st_size) : Int64(position)
        }
        // /dev/null and its kin (the mem driver, major 1) have no reader to wait for either.
        let memDevice = fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFCHR && (st.st_rdev >> 8) & 0xfff == 1
        output = filePosition == nil && !memDevice && level <= .info ? AsyncOutput(fd: fd, maxPendingBytes: maxPendingBytes) : nil
        let r = Renderer(format: format)
        // Everything kept here is freed with the writer.
        var constants: [Bytes] = []
        func constant(_ a: [UInt8]) -> Bytes { let b = Self.keep(a); constants.append(b); return b }
        timeKey = constant(Array((format == .json ? "{\"time\":\"" : "time=").utf8))
        heads = Heads(created: constant(r.head(.info, "goroutine is created")),
                      exited: constant(r.head(.debug, "goroutine is exited")),
                      processExited: constant(r.head(.info, "process exited")),
                      processExeced: constant(r.head(.info, "process ran exec")))
        keys = Keys(pid: constant(r.key("pid")), goroutineID: constant(r.key("goroutine_id")),
                    parentGoroutineID: constant(r.key("parent_goroutine_id")),
                    lifetime: constant(r.key("lifetime_seconds")), liveGoroutines: constant(r.key("live_goroutines")))
        kept = constants
    }

    deinit {
        output?.finish(within: 0)   // ends the writer thread
        buffer.deallocate()
        for b in kept { b.deallocate() }
    }

    private var kept: [Bytes] = []
    private static func keep(_ a: [UInt8]) -> Bytes {
        let p = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(a.count, 1))
        _ = p.initialize(from: a)
        return Bytes(start: p.baseAddress, count: a.count)
    }
    private func keep(_ a: [UInt8]) -> Bytes {
        let b = Self.keep(a)
        kept.append(b)
        return b
    }

    /// The site's fields rendered once per site (they repeat on every line of that site):
    /// everything but the time and the ids is bytes copied from here.
    /// Indexed by site index (count 0: not rendered yet); an Array, not a Dictionary, so a
    /// line costs no hashing.
    private var renderedSites: [Bytes] = []
    /// With --all: who a site's process is (exe, container_id, pod, namespace, unit), by the
    /// executable number the site carries; written on its lines before the site's fields.
    public var origin: ((ExecutableID) -> [(String, String)])?

    /// The site's fields: who its process is (the known ones), function and created_by.
    private func siteFields(_ site: CreationSite) -> [(String, String)] {
        (origin?(site.executable) ?? []).filter { !$0.1.isEmpty } + [("function", site.function), ("created_by", site.createdBy.description)]
    }
    private var renderedExitSites: [Bytes] = []

    /// Site numbers freed (Tracker.retire): what was rendered for them goes.
    public func forget(sites freed: [Int32]) {
        var gone = Set<UnsafePointer<UInt8>>()
        for i in freed.map(Int.init) {
            for t in [\LogWriter.renderedSites, \LogWriter.renderedExitSites] where i < self[keyPath: t].count {
                if let p = self[keyPath: t][i].baseAddress {
                    gone.insert(p)
                    UnsafeMutableRawPointer(mutating: p).deallocate()
                }
                self[keyPath: t][i] = Bytes(start: nil, count: 0)
            }
        }
        // One pass over what is kept (a search of it per freed site was quadratic: thousands
        // of sites retired at once, on the event thread).
        if !gone.isEmpty { kept.removeAll { $0.baseAddress.map(gone.contains) == true } }
    }

    private func cached(_ table: [Bytes], _ i: Int32?) -> Bool {
        guard let i, Int(i) < table.count, table[Int(i)].count > 0 else { return false }
        put(table[Int(i)])
        return true
    }

    private func remember(_ r: [UInt8], _ i: Int32?, in table: inout [Bytes]) {
        guard let i, i >= 0, !r.isEmpty else { put(r); return }
        if table.count <= Int(i) { table.append(contentsOf: repeatElement(Bytes(start: nil, count: 0), count: Int(i) + 1 - table.count)) }
        table[Int(i)] = keep(r)
        put(table[Int(i)])
    }

    public func created(_ c: Creation, site: @autoclosure () -> CreationSite, siteIndex: Int32? = nil) {
        guard level <= .info, !broken else { return }
        head(timeNs: c.timeNs, heads.created)
        field(keys.pid, UInt64(c.pid))
        field(keys.goroutineID, c.goid)
        if c.parentGoid != 0 { field(keys.parentGoroutineID, c.parentGoid) }
        if !cached(renderedSites, siteIndex) {
            let site = site()
            let stack = stackDepth.map { Array(site.stack.prefix($0)) } ?? site.stack
            var r = Renderer(format: format)
            if format == .json {
                // An array of frames, as jq and log pipelines expect; logfmt keeps the earlier tool's stack.N.
                r.out = r.fields(siteFields(site))
                r.frames(stack)
            } else {
                r.out = r.fields(siteFields(site) + stack.enumerated().map { ("stack.\($0.offset)", $0.element.description) })
            }
            remember(r.out, siteIndex, in: &renderedSites)
        }
        endLine()
    }

    /// `creationLost`: with no lifetime, the creation was lost (ring full), not before gmon attached.
    public func exited(pid: UInt32, goid: UInt64, timeNs: UInt64, lifetimeNs: UInt64?, site: @autoclosure () -> CreationSite?, siteIndex: Int32? = nil,
                       creationLost: Bool = false) {
        guard level <= .debug, !broken else { return }
        head(timeNs: timeNs, heads.exited)
        field(keys.pid, UInt64(pid))
        field(keys.goroutineID, goid)
        if let l = lifetimeNs {
            put(keys.lifetime)
            putSeconds(l)
        } else {
            put(Renderer(format: format).fields([("created", creationLost ? "lost (ring buffer full)" : "before gmon attached")]))
        }
        if !cached(renderedExitSites, siteIndex), let s = site() {
            remember(Renderer(format: format).fields(siteFields(s)), siteIndex, in: &renderedExitSites)
        }
        endLine()
    }

    /// `exec`: the process replaced its image; its goroutines ended with the old one.
    public func processExited(pid: UInt32, timeNs: UInt64, liveGoroutines: Int, exec: Bool = false) {
        guard level <= .info, !broken else { return }
        head(timeNs: timeNs, exec ? heads.processExeced : heads.processExited)
        field(keys.pid, UInt64(pid))
        field(keys.liveGoroutines, UInt64(liveGoroutines))
        endLine()
    }

    /// Constant parts of lines in this writer's format, rendered once.
    struct Heads { var created: Bytes, exited: Bytes, processExited: Bytes, processExeced: Bytes }
    struct Keys { var pid: Bytes, goroutineID: Bytes, parentGoroutineID: Bytes, lifetime: Bytes, liveGoroutines: Bytes }
    private var heads: Heads
    private var keys: Keys
    private let timeKey: Bytes

    /// Renders the parts of lines that are made once (per writer, per site) or rarely:
    /// strings with quoting and escaping, into an Array.
    struct Renderer {
        let format: Format
        var out: [UInt8] = []

        init(format: Format) { self.format = format }

        /// A JSON string literal, escaped as log lines escape it.
        static func jsonString(_ s: String) -> String {
            var r = Renderer(format: .json)
            r.quoted(s, json: true)
            return String(decoding: r.out, as: UTF8.self)
        }

        /// What follows the timestamp: ` level=INFO msg="…"` or `","level":"INFO","msg":"…"`.
        func head(_ level: Level, _ msg: String) -> [UInt8] {
            var r = self
            switch format {
            case .logfmt: r.append(" level=\(level.name) msg="); r.logfmtValue(msg)
            case .json: r.append("\",\"level\":\"\(level.name)\",\"msg\":"); r.quoted(msg, json: true)
            }
            return r.out
        }

        /// ` key=` or `,"key":`.
        func key(_ key: String) -> [UInt8] { var r = self; r.appendKey(key); return r.out }

        func fields(_ fields: [(String, String)]) -> [UInt8] {
            var r = self
            for (k, v) in fields {
                r.appendKey(k)
                format == .json ? r.quoted(v, json: true) : r.logfmtValue(v)
            }
            return r.out
        }

        /// `,"stack":[{"function":…,"file":…,"line":…},…]` (the file's full path; "" and 0 when unknown).
        mutating func frames(_ stack: [Frame]) {
            appendKey("stack")
            append("[")
            for (i, f) in stack.enumerated() {
                append(i == 0 ? "{\"function\":" : ",{\"function\":")
                quoted(f.function, json: true)
                append(",\"file\":")
                quoted(f.file, json: true)
                append(",\"line\":\(f.line)}")
            }
            append("]")
        }

        mutating func appendKey(_ key: String) {
            switch format {
            case .logfmt: append(" \(key)=")
            case .json: append(","); quoted(key, json: true); append(":")
            }
        }

        mutating func append(_ s: String) { out.append(contentsOf: s.utf8) }

        mutating func logfmtValue(_ s: String) {
            let needsQuotes = s.isEmpty || s.utf8.contains { $0 <= 0x20 || $0 == 0x3d || $0 == 0x22 || $0 == 0x5c }
            if needsQuotes { quoted(s, json: false) } else { append(s) }
        }

        /// A double-quoted string; JSON also escapes the other control characters.
        mutating func quoted(_ s: String, json: Bool) {
            out.append(0x22)
            for b in s.utf8 {
                switch b {
                case 0x22: append("\\\"")
                case 0x5c: append("\\\\")
                case 0x0a: append("\\n")
                case ..<0x20 where json: append("\\u00" + (b < 0x10 ? "0" : "") + String(b, radix: 16))
                default: out.append(b)
                }
            }
            out.append(0x22)
        }
    }

    /// Room for `n` more bytes (a line longer than the buffer grows it).
    @inline(__always) private func reserve(_ n: Int) {
        if count + n > capacity { grow(count + n) }
    }

    private func grow(_ needed: Int) {
        var c = capacity
        while c < needed { c *= 2 }
        let b = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        b.update(from: buffer, count: count)
        buffer.deallocate()
        buffer = b
        capacity = c
    }

    @inline(__always) private func put(_ b: Bytes) {
        reserve(b.count)
        if let p = b.baseAddress { (buffer + count).update(from: p, count: b.count) }
        count += b.count
    }

    private func put(_ a: [UInt8]) { a.withUnsafeBufferPointer { put($0) } }

    @inline(__always) private func put(_ byte: UInt8) {
        reserve(1)
        buffer[count] = byte
        count += 1
    }

    func head(timeNs: UInt64, _ head: Bytes) {
        put(timeKey)
        putTimestamp(Int64(bitPattern: timeNs) &+ wallOffsetNs)
        put(head)
    }

    @inline(__always) func field(_ key: Bytes, _ value: UInt64) {
        put(key)
        putDecimal(value)
    }

    func endLine() {
        if format == .json { put(0x7d) }
        put(0x0a)
        bufferedLines += 1
        if count >= 1 << 16 { flush(wholePages: true) }
    }

    /// Decimal digits straight into the buffer (no String per number).
    @inline(__always) func putDecimal(_ v: UInt64) {
        reserve(20)
        var digits = 1, x = v
        while x >= 10 { x /= 10; digits += 1 }
        x = v
        var i = count + digits
        repeat { i -= 1; buffer[i] = UInt8(truncatingIfNeeded: 0x30 &+ x % 10); x /= 10 } while x > 0
        count += digits
    }

    /// Seconds with nanoseconds: "1.500000000".
    func putSeconds(_ ns: UInt64) {
        putDecimal(ns / 1_000_000_000)
        put(0x2e)
        var frac = ns % 1_000_000_000, div: UInt64 = 100_000_000
        while div > 0 { put(UInt8(truncatingIfNeeded: 0x30 &+ frac / div)); frac %= div; div /= 10 }
    }

    /// Writes what is buffered; a closed reader (EPIPE) marks the writer broken.
    /// `wholePages`: only up to the last page boundary of the file; the rest stays for later.
    public func flush() { flush(wholePages: false) }

    func flush(wholePages: Bool) {
        if let output {
            if count > 0 && !broken { output.enqueue(UnsafeBufferPointer(start: buffer, count: count), lines: bufferedLines) }
            count = 0
            bufferedLines = 0
            let (dropped, failure) = output.state()
            droppedLines = dropped
            if let failure, !broken { broken = true; writeError = failure }
            return
        }
        var end = count
        if wholePages, let p = filePosition {
            let aligned = Int((p + Int64(count)) & ~4095 - p)
            if aligned > 0 { end = aligned }
        }
        var off = 0
        while off < end && !broken {
            let n = write(fd, buffer + off, end - off)
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                broken = true
                writeError = errno
            } else {
                off += n
            }
        }
        if let p = filePosition { filePosition = p + Int64(off) }
        if broken || off >= count {
            if broken { droppedLines += UInt64(bufferedLines) }
            count = 0
            bufferedLines = 0
        } else {
            memmove(buffer, buffer + off, count - off)
            count -= off
            bufferedLines = (0..<count).reduce(0) { $0 + (buffer[$1] == 0x0a ? 1 : 0) }
        }
    }

    /// At shutdown: waits at most `seconds` for a slow reader to take the lines still queued;
    /// the rest are counted as dropped.
    public func finish(within seconds: Double) {
        flush()
        guard let output else { return }
        output.finish(within: seconds)
        let (dropped, failure) = output.state()
        droppedLines = dropped
        // -1: gmon stopped waiting for a slow reader, which is no write error.
        if let failure, failure > 0, !broken { broken = true; writeError = failure }
    }

    private var cachedSecond: Int64 = -1
    private var cachedPrefix: [UInt8] = []

    /// RFC 3339 with milliseconds; the date and time up to the second is formatted once per second.
    func putTimestamp(_ wallNs: Int64) {
        let sec = wallNs / 1_000_000_000
        if sec != cachedSecond {
            cachedSecond = sec
            cachedPrefix = Array(Self.rfc3339(sec * 1_000_000_000).utf8.dropLast(4))   // drop "000Z"
        }
        put(cachedPrefix)
        let ms = UInt64((wallNs % 1_000_000_000) / 1_000_000)
        reserve(4)
        buffer[count] = UInt8(truncatingIfNeeded: 0x30 &+ ms / 100)
        buffer[count + 1] = UInt8(truncatingIfNeeded: 0x30 &+ ms / 10 % 10)
        buffer[count + 2] = UInt8(truncatingIfNeeded: 0x30 &+ ms % 10)
        buffer[count + 3] = 0x5a   // Z
        count += 4
    }

    /// One of gmon's own messages (stderr) as a JSON object shaped like the log lines.
    public static func jsonMessage(_ level: Level, _ msg: String, time: Int64? = nil) -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let now = time ?? Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
        return "{\"time\":\"\(rfc3339(now))\",\"level\":\"\(level.name)\",\"msg\":\(Renderer.jsonString(msg))}"
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
