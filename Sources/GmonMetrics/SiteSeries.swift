#if canImport(Glibc)
import Glibc
#endif

/// The per-creation-site series (created, exited, live, lifetime histogram, oldest age),
/// kept and rendered by gmon itself. swift-prometheus copied its whole dictionary of series
/// for every new series, so adding n series cost O(n²) (with --max-sites 100000, 11,753
/// events took 23 s of CPU and scrapes froze); here a new series is an append.
///
/// The event thread adds to a series' pending counts without a lock; `publish()` moves them
/// into the published values under the lock that a scrape's `render` takes.
final class SiteSeries: @unchecked Sendable {
    final class Series {
        /// `exe="…",function="…",…` without braces, escaped once.
        let labels: [UInt8]
        // Event thread only.
        var pendingCreated: Int64 = 0, pendingExited: Int64 = 0, pendingLive: Int64 = 0
        var pendingBuckets: [UInt64]
        var pendingSum: Double = 0
        var dirty = false
        // Under the lock.
        var created: Int64 = 0, exited: Int64 = 0, live: Int64 = 0, oldest: Double = 0
        var buckets: [UInt64]
        var sum: Double = 0

        init(labels: [UInt8], bucketCount: Int) {
            self.labels = labels
            pendingBuckets = [UInt64](repeating: 0, count: bucketCount + 1)   // the last: +Inf only
            buckets = pendingBuckets
        }
    }

    let bounds: [Double]
    private let boundTexts: [[UInt8]]
    private var lock = pthread_mutex_t()
    /// In creation order, which is the order of the exposition.
    private var all: [Series] = []
    private var dirty: [Series] = []

    init(bounds: [Double]) {
        self.bounds = bounds
        boundTexts = bounds.map { Array("\($0)".utf8) } + [Array("+Inf".utf8)]
        pthread_mutex_init(&lock, nil)
    }

    var count: Int { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return all.count }

    func make(_ labels: [(String, String)]) -> Series {
        var text: [UInt8] = []
        for (i, (k, v)) in labels.enumerated() {
            if i > 0 { text.append(0x2c) }
            text += k.utf8
            text += "=\"".utf8
            for b in v.utf8 {
                switch b {
                case 0x5c: text += "\\\\".utf8
                case 0x22: text += "\\\"".utf8
                case 0x0a: text += "\\n".utf8
                default: text.append(b)
                }
            }
            text.append(0x22)
        }
        let s = Series(labels: text, bucketCount: bounds.count)
        pthread_mutex_lock(&lock)
        all.append(s)
        pthread_mutex_unlock(&lock)
        return s
    }

    @inline(__always) private func touch(_ s: Series) {
        if !s.dirty { s.dirty = true; dirty.append(s) }
    }

    func created(_ s: Series) { touch(s); s.pendingCreated += 1 }

    func exited(_ s: Series, lifetimeSeconds v: Double) {
        touch(s)
        s.pendingExited += 1
        var i = 0
        while i < bounds.count && v > bounds[i] { i += 1 }
        s.pendingBuckets[i] += 1
        s.pendingSum += v
    }

    /// Goroutines of the series that ended without an exit (their process ended, or their exit was lost).
    func closed(_ s: Series, _ n: Int64) { touch(s); s.pendingLive -= n }

    func publish() {
        guard !dirty.isEmpty else { return }
        pthread_mutex_lock(&lock)
        for s in dirty {
            s.created += s.pendingCreated
            s.exited += s.pendingExited
            s.live += s.pendingCreated - s.pendingExited + s.pendingLive
            for i in s.pendingBuckets.indices where s.pendingBuckets[i] != 0 { s.buckets[i] += s.pendingBuckets[i]; s.pendingBuckets[i] = 0 }
            s.sum += s.pendingSum
            s.pendingCreated = 0; s.pendingExited = 0; s.pendingLive = 0; s.pendingSum = 0
            s.dirty = false
        }
        pthread_mutex_unlock(&lock)
        dirty.removeAll(keepingCapacity: true)
    }

    func setOldest(_ values: [(Series, Double)]) {
        pthread_mutex_lock(&lock)
        for (s, v) in values { s.oldest = v }
        pthread_mutex_unlock(&lock)
    }

    /// The five families in the Prometheus text format, each with all its series.
    func render(into out: inout [UInt8]) {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        guard !all.isEmpty else { return }
        func head(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n".utf8
        }
        func sample(_ name: String, _ s: Series, _ value: String) {
            out += name.utf8; out.append(0x7b); out += s.labels; out.append(0x7d); out.append(0x20); out += value.utf8; out.append(0x0a)
        }
        head("gmon_goroutines_created_total", "counter", "Goroutines created, by creation site.")
        for s in all { sample("gmon_goroutines_created_total", s, String(s.created)) }
        head("gmon_goroutines_exited_total", "counter", "Goroutines exited, by creation site.")
        for s in all { sample("gmon_goroutines_exited_total", s, String(s.exited)) }
        head("gmon_goroutines_live", "gauge", "Goroutines alive now, by creation site.")
        for s in all { sample("gmon_goroutines_live", s, String(s.live)) }
        head("gmon_goroutine_oldest_live_seconds", "gauge", "Age of the oldest live goroutine, by creation site.")
        for s in all { sample("gmon_goroutine_oldest_live_seconds", s, "\(s.oldest)") }
        let h = "gmon_goroutine_lifetime_seconds"
        head(h, "histogram", "Lifetimes of exited goroutines (kernel clock), by creation site.")
        for s in all {
            var cumulative: UInt64 = 0
            for (i, le) in boundTexts.enumerated() {
                cumulative += s.buckets[i]
                out += "\(h)_bucket{".utf8; out += s.labels; out += ",le=\"".utf8; out += le; out += "\"} ".utf8
                out += String(cumulative).utf8; out.append(0x0a)
            }
            sample(h + "_sum", s, "\(s.sum)")
            sample(h + "_count", s, String(cumulative))
        }
    }
}
