import ProcFS

/// gmon's own cost as every exporter serves it (the Prometheus client libraries' process
/// collector): CPU, memory, start time, file descriptors. Read at scrape time.
enum ProcessMetrics {
    static func render(into out: inout [UInt8], openMetrics: Bool) {
        guard let u = ProcFS.ownUsage() else { return }
        var text = ""
        func family(_ name: String, _ type: String, _ help: String, _ value: String) {
            // OpenMetrics names a counter family without `_total`; the sample keeps it.
            let familyName = openMetrics && type == "counter" && name.hasSuffix("_total") ? String(name.dropLast(6)) : name
            text += "# HELP \(familyName) \(help)\n# TYPE \(familyName) \(type)\n\(name) \(value)\n"
        }
        family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", "\(u.cpuSeconds)")
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", "\(u.residentBytes)")
        family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", "\(u.virtualBytes)")
        family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", "\(u.startTimeSeconds)")
        family("process_open_fds", "gauge", "Number of open file descriptors.", "\(u.openFDs)")
        family("process_max_fds", "gauge", "Maximum number of open file descriptors.", "\(u.maxFDs)")
        out += text.utf8
    }
}
