import Foundation
import LibBPF

/// The benchmarks' floor programs (bpf/floors.bpf.c), out of gmon's own object: a uprobe
/// that only counts, and one that hands an empty record per hit to user space.
public final class FloorsObject {
    public static let image: [UInt8] = Array(Data(base64Encoded: embeddedBPFObjectBase64)!)

    public enum Program: String, CaseIterable, Sendable {
        case countCreate = "floors_count_create"
        case countExit = "floors_count_exit"
        case deliver = "floors_deliver"
    }

    public enum Map: String, CaseIterable, Sendable {
        case rings = "floors_rings"
        case creations = "floors_creations"
        case exits = "floors_exits"
        case ringFull = "floors_ring_full"
        case events = "floors_events"
    }

    public let object: BPFObject

    public init() throws { object = try BPFObject(image: Self.image, name: "floors") }

    public func program(_ p: Program) throws -> BPFProgram { try object.program(p.rawValue) }
    public func map(_ m: Map) throws -> BPFMap { try object.map(m.rawValue) }

    /// A per-CPU count, summed.
    public func count(_ m: Map) -> UInt64 { (try? map(m).perCPUSum(index: 0)) ?? 0 }
}
