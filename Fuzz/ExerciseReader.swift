// Shared by both fuzz entry points.

/// What gmon does with an executable: load it, read the runtime layout, symbolize, look up by name.
func exerciseReader(_ bytes: [UInt8]) {
    guard let exe = try? GoExecutable(path: "fuzz", bytes: bytes) else { return }
    _ = try? exe.runtimeLayout()
    let n = exe.pclntab.functionCount
    var i = 0
    while i < n {
        if let e = try? exe.pclntab.entry(ofFunction: i) {
            _ = try? exe.pclntab.frames(at: e &+ 3)
            _ = try? exe.pclntab.topLevelInlinedCalls(ofFunction: i)
        }
        i += Swift.max(1, n / 64)
    }
    _ = exe.pclntab.functionIndex(named: "runtime.newproc1")
}
