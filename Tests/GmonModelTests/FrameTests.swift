import GmonModel
import Testing

@Suite struct FrameTests {
    @Test func framesPrintAsGoTracebacksNameThem() {
        #expect(Frame(function: "main.worker", file: "/home/u/src/app/main.go", line: 14, inlined: false).description == "main.worker (main.go:14)")
        #expect(Frame(function: "main.f", file: "main.go", line: 3, inlined: true).description == "main.f (main.go:3)")
        #expect(Frame.unknown(pc: 0x4a2b).description == "0x4a2b")
        #expect(Frame.note("(stack not kept)").description == "(stack not kept)")
    }

    /// Same names in two executables are two sites.
    @Test func sitesDifferByExecutable() {
        let f = Frame(function: "main.main", file: "main.go", line: 1, inlined: false)
        let a = CreationSite(executable: .init(0), function: "main.worker", createdBy: f, stack: [f])
        var b = a
        b.executable = .init(1)
        #expect(a != b && Set([a, b]).count == 2)
    }
}
