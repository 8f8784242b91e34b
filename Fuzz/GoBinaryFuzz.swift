// libFuzzer entry point for the Go executable reader (built by scripts/fuzz.sh
// with -sanitize=fuzzer,address): any input must end in an error or a result.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let exe = try? GoExecutable(path: "fuzz", bytes: bytes) else { return 0 }
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
    return 0
}
