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
        /// The same without the stack labels: the lifetime histogram's (one per function and
        /// created_by, summed over their stacks: 15 lines a site were most of a scrape).
        let histogramLabels: [UInt8]
        // Event thread only.
        var pendingCreated: Int64 = 0, pendingExited: Int64 = 0, pendingLive: Int64 = 0
        var pendingBuckets: [UInt64]
        var pendingSum: Double = 0
        var dirty = false
        // Under the lock.
        var created: Int64 = 0, exited: Int64 = 0, live: Int64 = 0, oldest: Double = 0
        var buckets: [UInt64]
        var sum: Double = 0

        init(labels: [UInt8], histogramLabels: [UInt8], bucketCount: Int) {
            self.labels = labels
            self.histogramLabels = histogramLabels
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

    func make(_ labels: [(String, String)]) -> Series {
        let text = Exposition.labelText(labels)
        let short = labels.filter { !$0.0.hasPrefix("stack_") }
        let s = Series(labels: text, histogramLabels: short.count == labels.count ? text : Exposition.labelText(short), bucketCount: bounds.count)
        pthread_mutex_lock(&lock)
        all.append(s)
        pthread_mutex_unlock(&lock)
        return s
    }

    /// Takes series out of the exposition (their process, container or executable is gone).
    func remove(_ gone: Set<ObjectIdentifier>) {
        pthread_mutex_lock(&lock)
        all.removeAll { gone.contains(ObjectIdentifier($0)) }
        pthread_mutex_unlock(&lock)
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

    func exitedWithoutLifetime(_ s: Series) { touch(s); s.pendingExited += 1 }

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

    /// The five families in the Prometheus text format, or as OpenMetrics names them (a
    /// counter family without `_total`), each with all its series. Numbers are written as
    /// digits straight into `out`: a scrape of 100,000 series is ~2 million lines.
    func render(into out: inout [UInt8], openMetrics: Bool = false) {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        guard !all.isEmpty else { return }
        out.reserveCapacity(out.count + all.count * (all.first!.labels.count + 64) * (6 + boundTexts.count))
        func head(_ name: String, _ type: String, _ help: String) {
            let family = openMetrics && type == "counter" ? String(name.dropLast(6)) : name
            out += "# HELP \(family) \(help)\n# TYPE \(family) \(type)\n".utf8
        }
        func digits(_ v: UInt64) {
            var buf: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes: room for 20 digits
            withUnsafeMutableBytes(of: &buf) { b in
                var i = b.count, x = v
                repeat { i -= 1; b[i] = UInt8(truncatingIfNeeded: 0x30 &+ x % 10); x /= 10 } while x > 0
                out.append(contentsOf: b[i...])
            }
        }
        func open(_ name: [UInt8], _ s: Series) { out += name; out.append(0x7b); out += s.labels; out.append(0x7d); out.append(0x20) }
        func integer(_ name: [UInt8], _ s: Series, _ v: Int64) {
            open(name, s)
            if v < 0 { out.append(0x2d) }
            digits(v.magnitude); out.append(0x0a)
        }
        func real(_ name: [UInt8], _ s: Series, _ v: Double) { open(name, s); out += "\(v)".utf8; out.append(0x0a) }
        head("gmon_goroutines_created_total", "counter", "Goroutines created, by creation site.")
        let created = Array("gmon_goroutines_created_total".utf8), exited = Array("gmon_goroutines_exited_total".utf8)
        for s in all { integer(created, s, s.created) }
        head("gmon_goroutines_exited_total", "counter", "Goroutines exited, by creation site.")
        for s in all { integer(exited, s, s.exited) }
        head("gmon_goroutines_live", "gauge", "Goroutines alive now, by creation site.")
        let live = Array("gmon_goroutines_live".utf8), oldest = Array("gmon_goroutine_oldest_live_seconds".utf8)
        for s in all { integer(live, s, s.live) }
        head("gmon_goroutine_oldest_live_seconds", "gauge", "Age of the oldest live goroutine, by creation site.")
        for s in all { real(oldest, s, s.oldest) }
        head("gmon_goroutine_lifetime_seconds", "histogram", "Lifetimes of exited goroutines (kernel clock), by function and created_by (summed over their stacks).")
        let bucket = Array("gmon_goroutine_lifetime_seconds_bucket{".utf8)
        let sum = Array("gmon_goroutine_lifetime_seconds_sum".utf8), count = Array("gmon_goroutine_lifetime_seconds_count".utf8)
        // One histogram per label set without the stack labels, in first-seen order.
        var index: [[UInt8]: Int] = [:]
        var histograms: [(labels: [UInt8], buckets: [UInt64], sum: Double)] = []
        for s in all {
            if let i = index[s.histogramLabels] {
                for b in s.buckets.indices { histograms[i].buckets[b] += s.buckets[b] }
                histograms[i].sum += s.sum
            } else {
                index[s.histogramLabels] = histograms.count
                histograms.append((s.histogramLabels, s.buckets, s.sum))
            }
        }
        for h in histograms {
            var cumulative: UInt64 = 0
            for (i, le) in boundTexts.enumerated() {
                cumulative += h.buckets[i]
                out += bucket; out += h.labels; out += ",le=\"".utf8; out += le; out += "\"} ".utf8
                digits(cumulative); out.append(0x0a)
            }
            out += sum; out.append(0x7b); out += h.labels; out += "} ".utf8; out += "\(h.sum)".utf8; out.append(0x0a)
            out += count; out.append(0x7b); out += h.labels; out += "} ".utf8; digits(cumulative); out.append(0x0a)
        }
    }
}
