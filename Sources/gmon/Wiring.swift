import Foundation
import ProcFS
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT, SIGTERM and SIGHUP request a stop (the attach and the monitor poll it);
/// SIGUSR1 asks for the summary so far, on stderr, without stopping (as many daemons do).
func installSignalHandlers() {
    signal(SIGPIPE, SIG_IGN)
    var set = sigset_t()
    sigemptyset(&set)
    for s in [SIGINT, SIGTERM, SIGHUP] {
        signal(s) { _ in stopToken.request() }
        sigaddset(&set, s)
    }
    signal(SIGUSR1) { _ in summaryToken.request() }
    sigaddset(&set, SIGUSR1)
    // A parent may have started gmon with these blocked (masks are inherited).
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
}

func checkPrivileges() throws {
    if geteuid() == 0 { return }
    let caps = ProcFS.effectiveCapabilities() ?? 0
    if caps & (1 << UInt64(ProcFS.capPerfmon)) == 0 || caps & (1 << UInt64(ProcFS.capBPF)) == 0 {
        throw CLIError("gmon needs root, or the capabilities CAP_BPF and CAP_PERFMON, to load BPF programs and attach uprobes: run it with sudo")
    }
}

/// The executable to watch, opened once: --path as given (never looked up on $PATH), or
/// the file --pid runs, through /proc/PID/exe (its own file, whatever its mount namespace).
/// Both given: they must be the same file.
func openExecutable(pid: Int32?, path: String?) throws -> OpenedExecutable {
    do {
        guard let p = pid else { return try OpenedExecutable(path: path!) }
        guard !ProcFS.processIsGone(p) else { throw CLIError("no process with pid \(p): is it still running?") }
        let running = try OpenedExecutable(pid: p)
        if let path {
            let given = try OpenedExecutable(path: path)
            guard given.identity == running.identity else {
                throw CLIError("process \(p) runs \(running.displayPath), not \(given.displayPath); drop --path or pass the right --pid")
            }
        }
        return running
    } catch let f as OpenedExecutable.Failure {
        throw CLIError(f.description)
    }
}

/// gmon's own CPU time and peak memory, for the closing lines.
func ownCost() -> String {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let cpu = { (t: timeval) in Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return "gmon: own cost: user \(cpu(usage.ru_utime)) s, system \(cpu(usage.ru_stime)) s, peak RSS \(usage.ru_maxrss / 1024) MB"
}
