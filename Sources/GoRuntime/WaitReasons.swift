/// Go's own words for why a goroutine waits (runtime.waitReasonStrings), indexed by
/// g.waitreason, per minor release. Read from the runtime.waitReasonStrings symbol of real
/// binaries built by each toolchain of the test matrix (the tests re-check every table
/// against the binary); 1.17, 1.18 and 1.20, which have no toolchain here, read from their
/// runtime2.go: 1.17 and 1.18 have 1.19's reasons, 1.20 has 1.21's. Reasons are only ever
/// appended within a minor release (1.23.4 added index 37), inserted between releases
/// (1.20, 1.24, 1.25), and 1.26 renumbered them all: hence a table per release.
public enum WaitReasons {
    public static func table(release: (major: Int, minor: Int)?) -> [String]? {
        guard let r = release, r.major == 1 else { return nil }
        switch r.minor {
        case 17, 18, 19: return table0
        case 20, 21: return table1
        case 22: return table2
        case 23: return table3
        case 24: return table4
        case 25: return table5
        case 26, 27: return table6
        default: return nil
        }
    }

    /// Go 1.17, 1.18, 1.19.
    static let table0: [String] = [
        "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)", "dumping heap",
        "garbage collection", "garbage collection scan", "panicwait", "select", "select (no cases)", "GC assist wait",
        "GC sweep wait", "GC scavenge wait", "chan receive", "chan send", "finalizer wait", "force gc (idle)", "semacquire",
        "sleep", "sync.Cond.Wait", "timer goroutine (idle)", "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)",
        "preempted", "debug call",
    ]

    /// Go 1.20, 1.21.
    static let table1: [String] = [
        "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)", "dumping heap",
        "garbage collection", "garbage collection scan", "panicwait", "select", "select (no cases)", "GC assist wait",
        "GC sweep wait", "GC scavenge wait", "chan receive", "chan send", "finalizer wait", "force gc (idle)", "semacquire",
        "sleep", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "trace reader (blocked)",
        "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted", "debug call", "GC mark termination",
        "stopping the world",
    ]

    /// Go 1.22.
    static let table2: [String] = [
        "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)", "dumping heap",
        "garbage collection", "garbage collection scan", "panicwait", "select", "select (no cases)", "GC assist wait",
        "GC sweep wait", "GC scavenge wait", "chan receive", "chan send", "finalizer wait", "force gc (idle)", "semacquire",
        "sleep", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "trace reader (blocked)",
        "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted", "debug call", "GC mark termination",
        "stopping the world", "flushing proc caches", "trace goroutine status", "trace proc status", "page trace flush",
        "coroutine",
    ]

    /// Go 1.23.
    static let table3: [String] = [
        "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)", "dumping heap",
        "garbage collection", "garbage collection scan", "panicwait", "select", "select (no cases)", "GC assist wait",
        "GC sweep wait", "GC scavenge wait", "chan receive", "chan send", "finalizer wait", "force gc (idle)", "semacquire",
        "sleep", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "trace reader (blocked)",
        "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted", "debug call", "GC mark termination",
        "stopping the world", "flushing proc caches", "trace goroutine status", "trace proc status", "page trace flush",
        "coroutine", "GC weak to strong wait",
    ]

    /// Go 1.24.
    static let table4: [String] = [
        "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)", "dumping heap",
        "garbage collection", "garbage collection scan", "panicwait", "select", "select (no cases)", "GC assist wait",
        "GC sweep wait", "GC scavenge wait", "chan receive", "chan send", "finalizer wait", "force gc (idle)", "semacquire",
        "sleep", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "sync.WaitGroup.Wait",
        "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted", "debug call",
        "GC mark termination", "stopping the world", "flushing proc caches", "trace goroutine status", "trace proc status",
        "page trace flush", "coroutine", "GC weak to strong wait", "synctest.Run", "synctest.Wait", "chan receive (synctest)",
        "chan send (synctest)", "select (synctest)",
    ]

    /// Go 1.25.
    static let table5: [String] = [
        "", "GC assist marking", "IO wait", "chan receive (nil chan)", "chan send (nil chan)", "dumping heap",
        "garbage collection", "garbage collection scan", "panicwait", "select", "select (no cases)", "GC assist wait",
        "GC sweep wait", "GC scavenge wait", "chan receive", "chan send", "finalizer wait", "force gc (idle)",
        "GOMAXPROCS updater (idle)", "semacquire", "sleep", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock",
        "sync.RWMutex.Lock", "sync.WaitGroup.Wait", "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)",
        "GC worker (active)", "preempted", "debug call", "GC mark termination", "stopping the world", "flushing proc caches",
        "trace goroutine status", "trace proc status", "page trace flush", "coroutine", "GC weak to strong wait", "synctest.Run",
        "synctest.Wait", "chan receive (durable)", "chan send (durable)", "select (durable)", "sync.WaitGroup.Wait (durable)",
        "cleanup wait",
    ]

    /// Go 1.26, 1.27.
    static let table6: [String] = [
        "", "GC assist marking", "IO wait", "dumping heap", "garbage collection", "garbage collection scan", "panicwait",
        "GC assist wait", "GC sweep wait", "GC scavenge wait", "finalizer wait", "force gc (idle)", "GOMAXPROCS updater (idle)",
        "semacquire", "sleep", "chan receive (nil chan)", "chan send (nil chan)", "select (no cases)", "select", "chan receive",
        "chan send", "sync.Cond.Wait", "sync.Mutex.Lock", "sync.RWMutex.RLock", "sync.RWMutex.Lock", "sync.WaitGroup.Wait",
        "trace reader (blocked)", "wait for GC cycle", "GC worker (idle)", "GC worker (active)", "preempted", "debug call",
        "GC mark termination", "stopping the world", "flushing proc caches", "trace goroutine status", "trace proc status",
        "page trace flush", "coroutine", "GC weak to strong wait", "synctest.Run", "synctest.Wait", "chan receive (durable)",
        "chan send (durable)", "select (durable)", "sync.WaitGroup.Wait (durable)", "cleanup wait",
    ]
}
