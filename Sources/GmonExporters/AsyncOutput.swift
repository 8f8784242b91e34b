#if canImport(Glibc)
import Glibc
#endif

/// Writes log bytes to a pipe, terminal or socket on a thread of its own, so the event loop
/// never waits for the reader: a reader that stops reading would otherwise stall event
/// processing, metrics and signal handling with it. What does not fit in `maxPendingBytes`
/// is dropped and counted (whole lines), like events lost to a full ring.
final class AsyncOutput: @unchecked Sendable {
    private let fd: Int32
    private let maxPendingBytes: Int
    private var lock = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var idle = pthread_cond_t()
    /// Chunks of whole lines waiting for the writer thread, oldest first.
    private var chunks: [(bytes: [UInt8], lines: Int)] = []
    private var head = 0
    private var pendingBytes = 0
    private var writing = false
    private var thread = pthread_t()
    /// Lines the reader never got: the queue was full, or writing failed.
    private(set) var droppedLines: UInt64 = 0
    /// errno of the write that failed; writing stops then.
    private(set) var failure: Int32?

    init(fd: Int32, maxPendingBytes: Int) {
        self.fd = fd
        self.maxPendingBytes = maxPendingBytes
        pthread_mutex_init(&lock, nil)
        pthread_cond_init(&wake, nil)
        pthread_cond_init(&idle, nil)
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { arg in
            let me = Unmanaged<AsyncOutput>.fromOpaque(arg!).takeRetainedValue()
            me.run()
            return nil
        }, box.toOpaque())
        if rc != 0 { box.release(); failure = rc }
        else { pthread_detach(thread) }
    }

    /// Hands a chunk of whole lines to the writer; false when it was dropped (counted).
    @discardableResult
    func enqueue(_ bytes: UnsafeBufferPointer<UInt8>, lines: Int) -> Bool {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        if failure != nil || pendingBytes + bytes.count > maxPendingBytes {
            droppedLines += UInt64(lines)
            return false
        }
        chunks.append((Array(bytes), lines))
        pendingBytes += bytes.count
        pthread_cond_signal(&wake)
        return true
    }

    /// (dropped lines, failure) read together.
    func state() -> (dropped: UInt64, failure: Int32?) {
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        return (droppedLines, failure)
    }

    /// The file descriptor must stay open until this returns: the writer thread writes to it.
    /// Waits at most `seconds` for the queue to be written; what is left then counts as dropped.
    func finish(within seconds: Double) {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let ns = Int(seconds * 1e9) + deadline.tv_nsec
        deadline.tv_sec += ns / 1_000_000_000
        deadline.tv_nsec = ns % 1_000_000_000
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        while (head < chunks.count || writing) && failure == nil {
            if pthread_cond_timedwait(&idle, &lock, &deadline) == ETIMEDOUT { break }
        }
        // The reader did not take them in time: gmon stops anyway (the writer thread may stay
        // blocked in write() until the process exits).
        for c in chunks[head...] { droppedLines += UInt64(c.lines) }
        chunks.removeAll()
        head = 0
        pendingBytes = 0
        if failure == nil { failure = -1 }   // nothing more is written
        pthread_cond_broadcast(&wake)        // the writer thread ends
    }

    private func run() {
        while true {
            pthread_mutex_lock(&lock)
            while head >= chunks.count && failure == nil { pthread_cond_wait(&wake, &lock) }
            if failure != nil { pthread_mutex_unlock(&lock); return }
            let chunk = chunks[head]
            head += 1
            if head > 64 && head * 2 > chunks.count { chunks.removeFirst(head); head = 0 }
            writing = true
            pthread_mutex_unlock(&lock)

            let error = writeAll(chunk.bytes)

            pthread_mutex_lock(&lock)
            writing = false
            pendingBytes -= chunk.bytes.count
            if let error, failure == nil {
                failure = error
                droppedLines += UInt64(chunk.lines)
                for c in chunks[head...] { droppedLines += UInt64(c.lines) }
                chunks.removeAll(); head = 0; pendingBytes = 0
            }
            if head >= chunks.count { pthread_cond_broadcast(&idle) }
            pthread_mutex_unlock(&lock)
        }
    }

    /// nil when all was written, else the errno. A non-blocking fd is waited on with poll, not spun on.
    private func writeAll(_ bytes: [UInt8]) -> Int32? {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, bytes.count - off) }
            if n >= 0 { off += n; continue }
            switch errno {
            case EINTR: continue
            case EAGAIN:
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 100)
            default: return errno
            }
        }
        return nil
    }
}
