import GoRuntime
import Foundation
import Testing
import TestSupport
@testable import GoBinary

/// Hostile input: every case must end in a thrown error or a result, never a
/// trap (a trap kills the test process, which fails the run) or a hang.
@Suite struct MalformedInputTests {
    /// Parses and exercises every lookup; returns true when it all succeeded.
    @discardableResult
    static func exercise(_ bytes: [UInt8]) -> Bool {
        do {
            let exe = try GoExecutable(path: "fuzz", bytes: bytes)
            _ = try? exe.runtimeLayout()
            _ = try? AttachPoints.plan(for: exe)
            let n = exe.pclntab.functionCount
            var i = 0
            while i < n {
                if let e = try? exe.pclntab.entry(ofFunction: i) {
                    _ = try? exe.pclntab.frames(at: e)
                    _ = try? exe.pclntab.frames(at: e &+ 5)
                    _ = try? exe.pclntab.topLevelInlinedCalls(ofFunction: i)
                }
                i += Swift.max(1, n / 200)
            }
            return true
        } catch {
            #expect(!"\(error)".isEmpty)
            return false
        }
    }

    static func sample() throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.binary("1.25.5", "stripped"))))
    }

    @Test func truncatedAtManyCutPoints() throws {
        let bytes = try Self.sample()
        var cuts = [0, 1, 3, 4, 16, 63, 64, 65, 200, 4096]
        for k in 1..<120 { cuts.append(bytes.count * k / 120) }
        var failures = 0
        for cut in cuts {
            if !Self.exercise(Array(bytes.prefix(cut))) { failures += 1 }
        }
        // Section headers sit at the end of the file, so every cut must fail cleanly.
        #expect(failures == cuts.count)
    }

    @Test func byteFlipsInHeadersAndPclntab() throws {
        let bytes = try Self.sample()
        let elf = try ELFFile(ByteView(bytes))
        let pcln = try #require(elf.section(named: ".gopclntab"))
        var rng = SystemRandomNumberGenerator()
        let regions: [Range<Int>] = [0..<64, pcln.offset..<(pcln.offset + 128), pcln.offset..<(pcln.offset + pcln.size),
                                     (elf.sections.first!.offset)..<bytes.count]
        var rounds = 0
        for region in regions where !region.isEmpty {
            for _ in 0..<60 {
                var b = bytes
                for _ in 0..<Int.random(in: 1...16, using: &rng) {
                    b[Int.random(in: region, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                Self.exercise(b)
                rounds += 1
            }
        }
        #expect(rounds == 240)
    }

    @Test func zeroLengthAndEmptySections() throws {
        let bytes = try Self.sample()
        let elf = try ELFFile(ByteView(bytes))
        let shoff = Int(try elf.data.u64(40))
        for (i, s) in elf.sections.enumerated() where [".gopclntab", ".go.buildinfo", ".text", ".noptrdata", ".rodata"].contains(s.name) {
            var b = bytes
            let sizeField = shoff + i * 64 + 32
            for k in 0..<8 { b[sizeField + k] = 0 }
            Self.exercise(b)
        }
        #expect(!Self.exercise([]))
        #expect(!Self.exercise(Array("#!/bin/sh\necho hi\n".utf8)))
    }

    @Test func clearErrors() throws {
        func message(_ path: String) -> String {
            do { _ = try GoExecutable(path: path); return "" } catch { return "\(error)" }
        }
        #expect(message("/nonexistent/gmon") .contains("No such file"))
        #expect(message("/tmp").contains("is a directory"))
        #expect(message("/bin/sh").contains("not a Go program"))
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-not-elf")
        try "#!/bin/sh\n".write(to: script, atomically: true, encoding: .utf8)
        #expect(message(script.path).contains("not an ELF file"))
    }
}

/// Inputs that once trapped, kept as regressions.
@Suite struct MalformedInputRegressions {
    /// A pclntab claiming an enormous function count overflowed the size check.
    @Test func hugeFunctionCount() throws {
        var bytes = try MalformedInputTests.sample()
        let elf = try ELFFile(ByteView(bytes))
        let pcln = try #require(elf.section(named: ".gopclntab"))
        for k in 0..<8 { bytes[pcln.offset + 8 + k] = k == 7 ? 0x7f : 0xff }
        #expect(!MalformedInputTests.exercise(bytes))
    }

    /// Program headers whose offset and size add past Int.max.
    @Test func segmentOffsetNearIntMax() throws {
        var bytes = try MalformedInputTests.sample()
        let phoff = Int(try ELFFile(ByteView(bytes)).data.u64(32))
        for k in 0..<8 { bytes[phoff + 8 + k] = k == 7 ? 0x7f : 0xff }   // p_offset of the first header
        MalformedInputTests.exercise(bytes)
    }
}
