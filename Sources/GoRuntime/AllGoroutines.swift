import GoBinary

/// Where the runtime lists every goroutine: runtime.allgs, a slice of *g (array, length,
/// capacity), the same in every release from 1.17 to 1.27. With a symbol table, its address;
/// stripped, the globals runtime.allgadd addresses (it appends to allgs), of which the
/// snapshot keeps the one that holds a plausible slice whose first g is goroutine 1.
public struct AllGoroutinesLocation: Sendable, Equatable {
    /// Link-time addresses to try, in order.
    public var candidates: [UInt64]
    public var fromSymbols: Bool
}

extension GoExecutable {
    public func allGoroutinesLocation() throws -> AllGoroutinesLocation {
        if let a = try elf.symbolValues(["runtime.allgs"])["runtime.allgs"], a != 0 {
            return AllGoroutinesLocation(candidates: [a], fromSymbols: true)
        }
        let f = try functionEntry("runtime.allgadd")
        let globals = try AttachPoints.globalsReferenced(code: Array(try code(from: f.entry, to: f.end)), address: f.entry)
        // Data, not code: the runtime's globals live in writable segments.
        let writable = elf.segments.filter { $0.type == ELFSegment.typeLoad && $0.flags & 2 != 0 }
        var seen = Set<UInt64>(), out: [UInt64] = []
        for g in globals where g % 8 == 0 && writable.contains(where: { g >= $0.virtualAddress && g < $0.virtualAddress + $0.memorySize }) {
            if seen.insert(g).inserted { out.append(g) }
        }
        guard !out.isEmpty else { throw GoBinaryError.malformed("runtime.allgadd addresses no global: cannot find the list of goroutines") }
        return AllGoroutinesLocation(candidates: out, fromSymbols: false)
    }
}
