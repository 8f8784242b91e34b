import CGmonEvents
import Foundation
import GmonModel
import GmonProbeFloors
import GoBinary
import GoRuntime
import LibBPF
import ProcFS
import Testing
import TestSupport
@testable import GmonProbes

/// The typed skeletons name exactly what the compiled objects hold.
@Suite struct SkeletonTests {
    @Test func gmonObjectHasTheSkeletonsProgramsAndMaps() throws {
        let o = try GmonProbesObject()
        #expect(Set(o.object.programNames) == Set(GmonProbesObject.Program.allCases.map(\.rawValue)))
        #expect(Set(o.object.mapNames) == Set(GmonProbesObject.Map.allCases.map(\.rawValue)))
    }

    @Test func floorsObjectHasTheSkeletonsProgramsAndMaps() throws {
        let o = try FloorsObject()
        #expect(Set(o.object.programNames) == Set(FloorsObject.Program.allCases.map(\.rawValue)))
        #expect(Set(o.object.mapNames) == Set(FloorsObject.Map.allCases.map(\.rawValue)))
        // The benchmarks' programs are not in gmon's object.
        #expect(!(try GmonProbesObject()).object.programNames.contains { $0.contains("count") || $0.contains("deliver") })
    }

    /// .rodata is the settings struct, byte for byte: a size mismatch is refused.
    @Test func settingsMustMatchTheObjectsLayout() throws {
        let o = try GmonProbesObject()
        try o.setSettings(EventDecoder.settings(collectStack: true, ringBufferBytes: 1 << 20))
        #expect(throws: BPFError.self) { try o.object.setInitialValue(map: ".rodata", UnsafeRawBufferPointer(start: nil, count: 0)) }
    }
}

@Suite struct DecoderTests {
    @Test func executableConfigIsOneWindow() throws {
        let c = try EventDecoder.executableConfig(goid: 152, gopc: 280, startpc: 296, parentGoid: 272)
        #expect(c.g_offset == 152 && c.g_len == 152 && c.goid_at == 0 && c.gopc_at == 128 && c.startpc_at == 144 && c.parent_goid_at == 120)
        #expect(c.has_parent_goid == 1)
        let old = try EventDecoder.executableConfig(goid: 152, gopc: 296, startpc: 312, parentGoid: nil)
        #expect(old.has_parent_goid == 0 && old.parent_goid_at == 0)
        #expect(throws: EventDecoder.LayoutNotReadable.self) { try EventDecoder.executableConfig(goid: 8, gopc: 400, startpc: 16, parentGoid: nil) }
        #expect(throws: EventDecoder.LayoutNotReadable.self) { try EventDecoder.executableConfig(goid: 4, gopc: 16, startpc: 24, parentGoid: nil) }
    }

    @Test func creationsCarryTheirExecutable() {
        var e = gmon_create_event()
        e.h.type = UInt32(GMON_EVENT_CREATE.rawValue)
        e.h.tgid = 42
        e.h.exe = 3
        e.h.goid = 9
        e.stack_len = 2
        e.stack.0 = 0x10
        e.stack.1 = 0x20
        let event = withUnsafeBytes(of: &e) { EventDecoder().decode(UnsafeRawBufferPointer(rebasing: $0[0..<(MemoryLayout<gmon_create_event>.offset(of: \.stack)! + 16)])) }
        guard case .create(let c)? = event else { Issue.record("not a creation: \(String(describing: event))"); return }
        #expect(c.executable == ExecutableID(3) && c.pid == 42 && c.goid == 9 && c.stack == [0x10, 0x20])
        // Too short for its type: nil (counted by the caller), never a read past the end.
        #expect(withUnsafeBytes(of: &e) { EventDecoder().decode(UnsafeRawBufferPointer(rebasing: $0[0..<20])) } == nil)
    }
}

/// One loaded program serving two executables of different Go releases (different
/// runtime.g layouts): each one's events carry its number and read its own layout.
@Suite(.serialized) struct ProbeSessionTests {
    @Test func oneObjectServesTwoExecutables() throws {
        let stop = StopToken()
        let session = try ProbeSession(options: .init(collectStacks: true, exitGoid: true, ringBufferBytes: 1 << 20), stop: stop)
        defer { session.detach() }
        var numbers: [UInt32: String] = [:]
        for v in ["1.19", "1.25.5"] {
            let path = Fixtures.binary(v, "normal")
            let exe = try GoExecutable(path: path)
            let n = try session.attach(file: path, layout: try exe.runtimeLayout(), plan: try AttachPoints.plan(for: exe), pid: nil)
            numbers[n] = v
        }
        #expect(numbers.count == 2)
        var pids: [Int32: String] = [:]
        for v in ["1.19", "1.25.5"] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Fixtures.binary(v, "normal"))
            p.arguments = ["-a", "50", "-b", "0", "-c", "0"]
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            pids[p.processIdentifier] = v
        }
        var creations: [String: Int] = [:], exits: [String: Int] = [:]
        var wrong: [String] = []
        session.rings.drain(before: .max) { raw in
            switch EventDecoder().decode(raw) {
            case .create(let c)? where pids[Int32(c.pid)] != nil:
                let v = pids[Int32(c.pid)]!
                if numbers[c.executable.rawValue] != v { wrong.append("creation in \(v) tagged \(c.executable)") }
                // goid read through this executable's layout: goroutine ids are small positive numbers.
                if c.goid == 0 || c.goid > 1_000_000 || c.startPC == 0 || c.goPC == 0 { wrong.append("\(v): garbage fields \(c)") }
                creations[v, default: 0] += 1
            case .exit(let pid, _, let goid, _, _)? where pids[Int32(pid)] != nil:
                let v = pids[Int32(pid)]!
                if goid == 0 || goid > 1_000_000 { wrong.append("\(v): exit goid \(goid)") }
                exits[v, default: 0] += 1
            default: break
            }
        }
        #expect(wrong.count == 0, "\(wrong.prefix(3))")
        for v in ["1.19", "1.25.5"] {
            #expect(creations[v, default: 0] >= 50, "\(v): \(creations[v, default: 0]) creations")
            #expect(exits[v, default: 0] >= 50, "\(v): \(exits[v, default: 0]) exits")
        }
        #expect(session.counters()(GMON_FAILED_READ) == 0)
    }

    /// A stop requested before the uprobes go on: nothing attached, Interrupted.
    @Test func aStopDuringAttachLeavesNothingAttached() throws {
        let stop = StopToken()
        let session = try ProbeSession(options: .init(collectStacks: false, exitGoid: false, ringBufferBytes: 1 << 20), stop: stop)
        defer { session.detach() }
        let path = Fixtures.binary("1.25.5", "normal")
        let exe = try GoExecutable(path: path)
        stop.request()
        #expect(throws: ProbeSession.Interrupted.self) {
            _ = try session.attach(file: path, layout: try exe.runtimeLayout(), plan: try AttachPoints.plan(for: exe), pid: nil, pauseBeforeUprobesMs: 50)
        }
    }
}
