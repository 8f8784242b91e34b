// Shared by both fuzz entry points.

/// What gmon does with an executable, part by part (so that a release gmon refuses,
/// such as Go 1.16, still has its tables read): ELF, build info, pclntab, DWARF
/// runtime layout, symbolization, lookup by name.
func exerciseReader(_ bytes: [UInt8]) {
    guard let elf = try? ELFFile(ByteView(bytes)) else { return }
    let info = try? BuildInfo(elf: elf)
    if DWARFStructReader.hasDWARF(elf) {
        _ = try? RuntimeLayout.fromDWARF(elf)
        _ = try? GoroutineLayout.fromDWARF(elf)
    }
    let release = info?.release
    guard let tab = try? PCLNTab(elf: elf, moduleData: { address in
        ModuleData.find(elf: elf, pclntabAddress: address, goRelease: release).map { ($0.text, $0.gofunc) }
    }) else { return }
    let n = tab.functionCount
    var i = 0
    while i < n {
        if let e = try? tab.entry(ofFunction: i) {
            _ = try? tab.frames(at: e &+ 3)
            _ = try? tab.topLevelInlinedCalls(ofFunction: i)
        }
        i += Swift.max(1, n / 64)
    }
    _ = tab.functionIndex(named: "runtime.newproc1")
    _ = RuntimeLayout.fromTable(release: info?.release)
}
