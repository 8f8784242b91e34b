import Gzip
import Foundation
import GmonModel
import SwiftProtobuf

/// A snapshot as a goroutine profile in pprof's format (gzipped protobuf), which
/// `go tool pprof -top` and `-traces` read: one sample per goroutine (value 1, unit count),
/// its stack as locations of functions and lines, its status and id as labels.
public enum GoroutineProfile {
    public static func encode(_ goroutines: [Goroutine], executable: String, timeNanos: Int64) throws -> [UInt8] {
        var p = Perftools_Profiles_Profile()
        var strings: [String: Int64] = ["": 0]
        var table: [String] = [""]
        func s(_ text: String) -> Int64 {
            if let i = strings[text] { return i }
            let i = Int64(table.count)
            table.append(text)
            strings[text] = i
            return i
        }
        var unit = Perftools_Profiles_ValueType()
        unit.type = s("goroutine")
        unit.unit = s("count")
        p.sampleType = [unit]
        p.periodType = unit
        p.period = 1
        p.timeNanos = timeNanos
        var mapping = Perftools_Profiles_Mapping()
        mapping.id = 1
        mapping.filename = s(executable)
        mapping.hasFunctions_p = true
        mapping.hasFilenames_p = true
        mapping.hasLineNumbers_p = true
        mapping.hasInlineFrames_p = true
        p.mapping = [mapping]

        struct FunctionKey: Hashable { let name: String; let file: String }
        var functions: [FunctionKey: UInt64] = [:]
        var locations: [Frame: UInt64] = [:]
        func location(_ f: Frame) -> UInt64 {
            if let id = locations[f] { return id }
            let fk = FunctionKey(name: f.function, file: f.file)
            let fid: UInt64
            if let id = functions[fk] {
                fid = id
            } else {
                fid = UInt64(p.function.count + 1)
                var fn = Perftools_Profiles_Function()
                fn.id = fid
                fn.name = s(f.function)
                fn.systemName = fn.name
                fn.filename = s(f.file)
                p.function.append(fn)
                functions[fk] = fid
            }
            let id = UInt64(p.location.count + 1)
            var loc = Perftools_Profiles_Location()
            loc.id = id
            loc.mappingID = 1
            var line = Perftools_Profiles_Line()
            line.functionID = fid
            line.line = Int64(f.line)
            loc.line = [line]
            p.location.append(loc)
            locations[f] = id
            return id
        }
        let statusKey = s("status"), goidKey = s("goid")
        for g in goroutines {
            var sample = Perftools_Profiles_Sample()
            sample.value = [1]
            // A goroutine with no stack read (running now) still counts, under its function.
            let frames = g.stack.isEmpty ? [Frame(function: g.function, file: "", line: 0, inlined: false)] : g.stack
            sample.locationID = frames.map(location)
            var status = Perftools_Profiles_Label()
            status.key = statusKey
            status.str = s(g.status)
            var goid = Perftools_Profiles_Label()
            goid.key = goidKey
            goid.num = Int64(g.goid)
            sample.label = [status, goid]
            p.sample.append(sample)
        }
        p.stringTable = table
        // pprof's files are gzipped.
        guard let z = Gzip.compress(Array(try p.serializedData())) else { throw CocoaError(.coderInvalidValue) }
        return z
    }
}
