#if canImport(Glibc)
import Glibc
#endif

/// Live goroutines per creation site and status, from the last periodic snapshot of the
/// watched processes' memory: what the standing leak view reads ("1,000 goroutines of this
/// site blocked in chan receive for 10 minutes"). Replaced whole by each snapshot.
public final class GoroutineStates: @unchecked Sendable {
    public struct Row: Sendable {
        public var labels: [(String, String)]
        public var count: Int
        /// The longest any of them has waited in this status, as far as known (0: unknown).
        public var longestWaitSeconds: Double
        public init(labels: [(String, String)], count: Int, longestWaitSeconds: Double) {
            self.labels = labels; self.count = count; self.longestWaitSeconds = longestWaitSeconds
        }
    }

    private var lock = pthread_mutex_t()
    private var rows: [Row] = []
    private var takenAt: Double = 0, duration: Double = 0
    private var failures: Int64 = 0
    public let enabled: Bool

    public init(enabled: Bool) {
        self.enabled = enabled
        pthread_mutex_init(&lock, nil)
    }

    public func replace(_ rows: [Row], takenAtUnixSeconds: Double, durationSeconds: Double) {
        pthread_mutex_lock(&lock)
        self.rows = rows
        takenAt = takenAtUnixSeconds
        duration = durationSeconds
        pthread_mutex_unlock(&lock)
    }

    /// A process that could not be read (it ended, or its memory is not readable).
    public func failed() {
        pthread_mutex_lock(&lock)
        failures += 1
        pthread_mutex_unlock(&lock)
    }

    func render(into out: inout [UInt8], openMetrics: Bool) {
        guard enabled else { return }
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        func labelText(_ l: [(String, String)]) -> String { String(decoding: Exposition.labelText(l), as: UTF8.self) }
        var text = ""
        text += "# HELP gmon_goroutines_by_status Live goroutines by creation site and status (wait reason in Go's words), from the last snapshot of memory.\n"
        text += "# TYPE gmon_goroutines_by_status gauge\n"
        for r in rows { text += "gmon_goroutines_by_status{\(labelText(r.labels))} \(r.count)\n" }
        text += "# HELP gmon_goroutine_longest_wait_seconds How long the longest-waiting goroutine of a site and status has been in it (seen by successive snapshots, or known to Go's runtime).\n"
        text += "# TYPE gmon_goroutine_longest_wait_seconds gauge\n"
        for r in rows { text += "gmon_goroutine_longest_wait_seconds{\(labelText(r.labels))} \(r.longestWaitSeconds)\n" }
        text += "# HELP gmon_snapshot_timestamp_seconds When the last snapshot of the goroutines in memory was taken.\n"
        text += "# TYPE gmon_snapshot_timestamp_seconds gauge\ngmon_snapshot_timestamp_seconds \(takenAt)\n"
        text += "# HELP gmon_snapshot_duration_seconds How long the last snapshot took.\n"
        text += "# TYPE gmon_snapshot_duration_seconds gauge\ngmon_snapshot_duration_seconds \(duration)\n"
        let failuresName = openMetrics ? "gmon_snapshot_failures" : "gmon_snapshot_failures_total"
        text += "# HELP \(failuresName) Processes a snapshot could not read.\n# TYPE \(failuresName) counter\ngmon_snapshot_failures_total \(failures)\n"
        out += text.utf8
    }
}
