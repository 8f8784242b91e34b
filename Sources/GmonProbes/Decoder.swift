import CGmonEvents
import GmonModel

/// Ring buffer records → events, using the layout in gmon_events.h.
public final class EventDecoder {
    /// Reused for each creation's stack: once the tracker has let go of the previous
    /// event it is uniquely referenced again, so decoding allocates nothing.
    private var scratch: [UInt64] = []

    public init() { scratch.reserveCapacity(Int(GMON_MAX_STACK)) }

    // Offsets into the records, as instance constants: static ones cost a swift_once
    // call per access on the per-event path (perf: 3.6% of it).
    let stackOffset = MemoryLayout<gmon_create_event>.offset(of: \gmon_create_event.stack)!
    let headerSize = MemoryLayout<gmon_event_header>.size
    let stackLenOffset = MemoryLayout<gmon_create_event>.offset(of: \gmon_create_event.stack_len)!
    let parentGoidOffset = MemoryLayout<gmon_create_event>.offset(of: \gmon_create_event.parent_goid)!
    let startPCOffset = MemoryLayout<gmon_create_event>.offset(of: \gmon_create_event.startpc)!
    let goPCOffset = MemoryLayout<gmon_create_event>.offset(of: \gmon_create_event.gopc)!
    let probeIPOffset = MemoryLayout<gmon_create_event>.offset(of: \gmon_create_event.probe_ip)!
    let gOffset = MemoryLayout<gmon_create_event>.offset(of: \gmon_create_event.g)!
    let exitSize = MemoryLayout<gmon_exit_event>.size

    /// The pid of a process that ran exec (reported with --all only); nil for other records.
    @inline(__always)
    public func programStarted(_ raw: UnsafeRawBufferPointer) -> UInt32? {
        guard raw.count >= headerSize, raw.loadUnaligned(as: UInt32.self) == UInt32(GMON_EVENT_PROGRAM_STARTED.rawValue) else { return nil }
        return raw.loadUnaligned(as: gmon_event_header.self).tgid
    }

    /// nil for a record too short for its type (never produced by gmon's program; counted by the caller).
    public func decode(_ raw: UnsafeRawBufferPointer) -> Event? {
        guard raw.count >= headerSize else { return nil }
        let h = raw.loadUnaligned(as: gmon_event_header.self)
        switch h.type {
        case UInt32(GMON_EVENT_CREATE.rawValue):
            guard raw.count >= stackOffset else { return nil }
            // Fields one by one: a whole gmon_create_event on the stack is 600 zeroed bytes per event.
            func u64(_ offset: Int) -> UInt64 { raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }
            let stackLen = raw.loadUnaligned(fromByteOffset: stackLenOffset, as: UInt32.self)
            var n = min(Int(stackLen), (raw.count - stackOffset) / 8, Int(GMON_MAX_STACK))
            while n > 0 && raw.loadUnaligned(fromByteOffset: stackOffset + 8 * (n - 1), as: UInt64.self) == 0 { n -= 1 }
            scratch.removeAll(keepingCapacity: true)
            for i in 0..<n { scratch.append(raw.loadUnaligned(fromByteOffset: stackOffset + 8 * i, as: UInt64.self)) }
            return .create(Creation(pid: h.tgid, goid: h.goid, g: u64(gOffset), parentGoid: u64(parentGoidOffset), timeNs: h.ktime_ns,
                                    startPC: u64(startPCOffset), goPC: u64(goPCOffset), stack: scratch,
                                    probeIP: u64(probeIPOffset), executable: ExecutableID(h.exe)))
        case UInt32(GMON_EVENT_EXIT.rawValue):
            guard raw.count >= exitSize else { return nil }
            let g = raw.loadUnaligned(fromByteOffset: headerSize, as: UInt64.self)
            return .exit(pid: h.tgid, g: g, goid: h.goid, timeNs: h.ktime_ns, creationLost: h.flags & UInt32(GMON_FLAG_CREATION_LOST) != 0)
        case UInt32(GMON_EVENT_PROCESS_EXIT.rawValue):
            return .processExit(pid: h.tgid, timeNs: h.ktime_ns)
        case UInt32(GMON_EVENT_PROCESS_EXEC.rawValue):
            return .processExec(pid: h.tgid, timeNs: h.ktime_ns)
        default:
            return nil
        }
    }

    /// The offsets of runtime.g fields cannot be read as one window (see gmon_events.h).
    public struct LayoutNotReadable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Where an executable's runtime.g keeps the fields the probes read, as one window.
    public static func executableConfig(goid: Int, gopc: Int, startpc: Int, parentGoid: Int?) throws -> gmon_exe_config {
        let fields = [goid, gopc, startpc] + (parentGoid.map { [$0] } ?? [])
        let low = fields.min()!, span = fields.max()! + 8 - low
        guard fields.allSatisfy({ $0 >= 0 && $0 % 8 == 0 }), span <= Int(GMON_G_WINDOW) else {
            throw LayoutNotReadable(description: "runtime.g offsets goid=\(goid) gopc=\(gopc) startpc=\(startpc)\(parentGoid.map { " parentGoid=\($0)" } ?? ""): each must be a multiple of 8 and all must lie within \(GMON_G_WINDOW) bytes; check the offset overrides")
        }
        var c = gmon_exe_config()
        c.g_offset = UInt64(low)
        c.g_len = UInt32(span)
        c.goid_at = UInt32(goid - low)
        c.gopc_at = UInt32(gopc - low)
        c.startpc_at = UInt32(startpc - low)
        c.parent_goid_at = UInt32((parentGoid ?? low) - low)
        c.has_parent_goid = parentGoid == nil ? 0 : 1
        return c
    }

    /// The program's settings (its .rodata).
    public static func settings(collectStack: Bool, exitGoid: Bool = false, ringBufferBytes: UInt32, reportExecs: Bool = false,
                                holdScratchMicroseconds: UInt32 = 0, scratchSlots: UInt32 = 0) -> gmon_settings {
        var s = gmon_settings()
        s.hold_scratch_us = holdScratchMicroseconds
        s.scratch_slots = scratchSlots
        s.report_execs = reportExecs ? 1 : 0
        s.collect_stack = collectStack ? 1 : 0
        s.exit_goid = exitGoid ? 1 : 0
        s.wakeup_bytes = UInt64(ringBufferBytes / 4)
        return s
    }
}
