#if canImport(Glibc)
import Glibc
#endif

/// A request to stop, settable from a signal handler (one word written, nothing allocated)
/// and polled by whoever runs long: the attach, the monitor's loop.
public final class StopToken: @unchecked Sendable {
    private let flag: UnsafeMutablePointer<sig_atomic_t>

    public init() {
        flag = .allocate(capacity: 1)
        flag.initialize(to: 0)
    }

    deinit { flag.deallocate() }

    public func request() { flag.pointee = 1 }
    public var isRequested: Bool { flag.pointee != 0 }
    /// True once per request (SIGUSR1's summary: each signal asks for one).
    public func take() -> Bool {
        guard flag.pointee != 0 else { return false }
        flag.pointee = 0
        return true
    }
}
