// libFuzzer entry point for the Go executable reader (built by scripts/fuzz.sh
// with -sanitize=fuzzer,address): any input must end in an error or a result.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    exerciseReader(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
