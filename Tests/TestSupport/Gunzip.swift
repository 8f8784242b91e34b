import Foundation

/// gzip's own reading of gmon's gzip output (an independent decoder).
public func gunzip(_ data: Data) throws -> Data {
    struct NotGzip: Error, CustomStringConvertible { let description: String }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/gzip")
    p.arguments = ["-dc"]
    let inp = Pipe(), out = Pipe()
    p.standardInput = inp
    p.standardOutput = out
    try p.run()
    // Written from another thread: a large body would fill the pipe while gzip's output waits.
    DispatchQueue.global().async { inp.fileHandleForWriting.write(data); try? inp.fileHandleForWriting.close() }
    let d = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw NotGzip(description: "the gzip body did not gunzip (\(data.count) bytes)") }
    return d
}
