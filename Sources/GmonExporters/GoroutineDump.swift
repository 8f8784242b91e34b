import Foundation
import GmonModel

/// A snapshot's goroutines as text and JSON: grouped by identical stacks (what an on-call
/// engineer reads first, like Go's debug=1 goroutine profile), one by one (like debug=2),
/// or as JSON with a documented schema (README).
public enum GoroutineDump {
    /// Go's dump header: `goroutine 20 [chan receive, 5 minutes, locked to thread]:`.
    static func header(_ g: Goroutine) -> String {
        var s = "goroutine \(g.goid) [\(g.status)"
        if let w = g.waitSeconds, w >= 60 { s += ", \(Int(w / 60)) minutes" }
        if g.lockedToThread { s += ", locked to thread" }
        return s + "]:"
    }

    static func frameLines(_ f: Frame) -> String { "\(f.function)(...)\n\t\(f.file):\(f.line)\n" }

    static func createdByLines(_ g: Goroutine) -> String {
        guard let c = g.createdBy else { return "" }
        let parent = g.parentGoid.map { " in goroutine \($0)" } ?? ""
        return c.file.isEmpty ? "created by \(c.function)\(parent)\n" : "created by \(c.function)\(parent)\n\t\(c.file):\(c.line)\n"
    }

    /// One entry per goroutine, as Go's debug=2 dump writes them.
    public static func each(_ gs: [Goroutine]) -> String {
        var out = ""
        for g in gs {
            out += header(g) + "\n"
            if let n = g.stackNote { out += "\t(stack not read: \(n))\n" }
            for f in g.stack { out += frameLines(f) }
            out += createdByLines(g) + "\n"
        }
        return out
    }

    /// Goroutines with the same status, stack and creator as one group, largest first.
    public static func grouped(_ gs: [Goroutine]) -> String {
        struct Key: Hashable { let status: String; let stack: [Frame]; let note: String?; let createdBy: Frame?; let locked: Bool }
        var groups: [Key: [Goroutine]] = [:]
        var order: [Key] = []
        for g in gs {
            let k = Key(status: g.status, stack: g.stack, note: g.stackNote, createdBy: g.createdBy, locked: g.lockedToThread)
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(g)
        }
        let sorted = order.enumerated().sorted { a, b in
            let (ca, cb) = (groups[a.element]!.count, groups[b.element]!.count)
            return ca != cb ? ca > cb : a.offset < b.offset
        }.map(\.element)
        var out = ""
        for k in sorted {
            let members = groups[k]!
            let waits = members.compactMap(\.waitSeconds)
            var head = "\(members.count) goroutine\(members.count == 1 ? "" : "s") [\(k.status)"
            if let lo = waits.min(), let hi = waits.max() {
                head += lo == hi || members.count == 1 ? ", waiting \(duration(lo))" : ", waiting \(duration(lo)) to \(duration(hi))"
                if waits.count < members.count { head += " (\(waits.count) of them known)" }
            }
            if k.locked { head += ", locked to thread" }
            let ids = members.prefix(8).map { String($0.goid) }.joined(separator: " ")
            out += head + "]: goroutine\(members.count == 1 ? "" : "s") \(ids)\(members.count > 8 ? " …" : "")\n"
            if let n = k.note { out += "\t(stack not read: \(n))\n" }
            for f in k.stack { out += frameLines(f) }
            if let c = k.createdBy {
                let parents = Set(members.compactMap(\.parentGoid))
                let p = parents.count == 1 ? " in goroutine \(parents.first!)" : ""
                out += c.file.isEmpty ? "created by \(c.function)\(p)\n" : "created by \(c.function)\(p)\n\t\(c.file):\(c.line)\n"
            }
            out += "\n"
        }
        return out
    }

    static func duration(_ s: Double) -> String {
        if s < 60 { return String(format: "%.1fs", s) }
        if s < 3600 { return "\(Int(s / 60))m\(Int(s) % 60)s" }
        return "\(Int(s / 3600))h\(Int(s / 60) % 60)m"
    }

    // MARK: JSON

    /// The JSON schema in the README (stacks innermost first), written as it goes: a million
    /// goroutines are ~150 MB of JSON, never held whole.
    public static func json(pid: Int32, goVersion: String, dead: Int, unreadable: Int,
                            forEach: ((Goroutine) -> Void) -> Void, write: @escaping (String) -> Void) {
        let q = LogWriter.Renderer.jsonString
        func frame(_ f: Frame, inlined: Bool) -> String {
            "{\"file\":\(q(f.file)),\"function\":\(q(f.function))\(inlined ? ",\"inlined\":\(f.inlined)" : ""),\"line\":\(f.line)}"
        }
        // Stacks are shared by many goroutines: rendered once each.
        var rendered: [[Frame]: String] = [:]
        write("{\"deadGs\":\(dead),\"goVersion\":\(q(goVersion)),\"goroutines\":[")
        var first = true
        forEach { g in
            var o = first ? "{" : ",{"
            first = false
            if let c = g.createdBy { o += "\"createdBy\":\(frame(c, inlined: false))," }
            o += "\"function\":\(q(g.function)),\"goid\":\(g.goid),\"lockedToThread\":\(g.lockedToThread),"
            if let p = g.parentGoid { o += "\"parentGoid\":\(p)," }
            let stack: String
            if let r = rendered[g.stack] { stack = r } else {
                stack = "[" + g.stack.map { frame($0, inlined: true) }.joined(separator: ",") + "]"
                if rendered.count < 100_000 { rendered[g.stack] = stack }
            }
            o += "\"stack\":\(stack),"
            if let n = g.stackNote { o += "\"stackNote\":\(q(n))," }
            o += "\"state\":\(q(g.state.rawValue)),\"status\":\(q(g.status)),\"system\":\(g.isSystem)"
            if let w = g.waitSeconds { o += ",\"waitSeconds\":\(w)" }
            write(o + "}")
        }
        write("],\"pid\":\(pid),\"unreadableGs\":\(unreadable)}\n")
    }
}
