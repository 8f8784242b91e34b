import GmonModel
import GoBinary
import GoRuntime
import Testing
import TestSupport
@testable import Symbolization

@Suite struct SymbolizationTests {
    /// With several creation probes, the one that fired is the one at the IP's offset in its
    /// page (a load bias is whole pages); when two sites share that offset, nothing is guessed.
    @Test func biasFromWhicheverCreationProbeFired() {
        let sites: [UInt64] = [0x47_2391, 0x40_e971, 0x41_5abc]
        let bias: UInt64 = 0x5555_5550_0000
        #expect(GoSiteResolver.bias(probeIP: 0x40_e971 + bias, sites: sites) == bias)
        #expect(GoSiteResolver.bias(probeIP: 0x41_5abc + bias, sites: sites) == bias)
        #expect(GoSiteResolver.bias(probeIP: 0x41_5abd + bias, sites: sites) == nil)
        #expect(GoSiteResolver.bias(probeIP: 0x40_e971 + bias, sites: [0x40_e971, 0x44_4971]) == nil)
        #expect(GoSiteResolver.bias(probeIP: 0x40_e971, sites: sites) == 0)
    }
}

/// The resolver on real binaries of the matrix, fed creations made from their own symbol
/// tables: the PCs the probes would report for a goroutine created in main.main.
@Suite struct GoSiteResolverTests {
    struct Made {
        let exe: GoExecutable
        let plan: AttachPlan
        let creation: Creation
        let caller: String
    }

    /// A creation as the probe at CALL runqput reports it: the probe's IP, a return address in
    /// runtime.systemstack, then return addresses of a call in `caller`; gopc after that call.
    static func make(_ version: String, _ mode: String, start: String, caller: String = "main.main",
                     bias: UInt64 = 0, executable: ExecutableID = .init(0)) throws -> Made {
        let exe = try GoExecutable(path: Fixtures.binary(version, mode))
        let plan = try AttachPoints.plan(for: exe)
        let system = try exe.functionEntry("runtime.systemstack")
        let c = try exe.functionEntry(caller)
        // A go statement: a call of runtime.newproc.
        let newproc = try exe.functionEntry("runtime.newproc").entry
        let call = try #require(try AttachPoints.directCalls(code: Array(try exe.code(from: c.entry, to: c.end)), address: c.entry)
            .first { $0.target == newproc })
        let ret = call.address + 5
        let startPC = try exe.functionEntry(start).entry
        let creation = Creation(pid: 1, goid: 7, g: 0x1000, parentGoid: 1, timeNs: 1, startPC: startPC + bias, goPC: ret + bias,
                                stack: [plan.creation.address + bias, system.entry + 8 + bias, ret + bias],
                                probeIP: plan.creation.address + bias, executable: executable)
        return Made(exe: exe, plan: plan, creation: creation, caller: caller)
    }

    static func resolver(_ m: Made, executable: ExecutableID = .init(0)) -> GoSiteResolver {
        GoSiteResolver(exe: m.exe, executable: executable, creationProbeAddresses: [m.plan.creation.address])
    }

    @Test(arguments: ["1.19", "1.21.13", "1.25.5", "1.27.3"])
    func runtimeFramesAreLeftOutAndFramesAreStructured(_ version: String) throws {
        let m = try Self.make(version, "normal", start: "main.main")
        let site = Self.resolver(m).site(for: m.creation)
        #expect(site.function == "main.main")
        let first = try #require(site.stack.first)
        #expect(!first.function.hasPrefix("runtime."), "runtime frames left in: \(site.stack)")
        #expect(site.stack.last?.function == "main.main")
        #expect(site.createdBy.file.hasSuffix("main.go") && site.createdBy.line > 0, "\(site.createdBy)")
        #expect(site.stack.allSatisfy { !$0.file.isEmpty && $0.line > 0 })
    }

    /// `go f(x)` starts in a compiler wrapper (named *.gowrapN from 1.22, marked by funcID
    /// before): the site's function is f, on every release.
    @Test(arguments: ["1.19", "1.21.13", "1.25.5", "1.27.3"])
    func goStatementWrappersResolveToTheWrappedFunction(_ version: String) throws {
        let exe = try GoExecutable(path: Fixtures.binary(version, "normal"))
        let wrapperID = FrameRules.wrapperFuncID(release: exe.buildInfo.release)
        let wrappers = try exe.pclntab.allFunctions().enumerated().filter { i, f in
            f.name.hasPrefix("main.") && (FrameRules.isGoStatementWrapperName(f.name)
                                         || wrapperID != nil && (try? exe.pclntab.funcID(ofFunction: i)) == wrapperID)
        }
        try #require(!wrappers.isEmpty, "the fixture has go f(x) statements: no wrapper found in \(version)")
        let r = GoSiteResolver(exe: exe)
        for (_, w) in wrappers {
            let name = r.entryFunction(w.entry)
            #expect(name != w.name && !name.contains("gowrap") && !name.hasPrefix("runtime."), "\(w.name) → \(name)")
        }
    }

    /// A PIE at any load address gives the same site as at its link address.
    @Test func pieSitesDoNotDependOnTheLoadAddress() throws {
        let at0 = try Self.make("1.25.5", "pie", start: "main.main")
        let moved = try Self.make("1.25.5", "pie", start: "main.main", bias: 0x5555_0000_0000)
        #expect(Self.resolver(at0).site(for: at0.creation) == Self.resolver(moved).site(for: moved.creation))
        #expect(Self.resolver(moved).bias(pid: 1, probeIP: moved.creation.probeIP) == 0x5555_0000_0000)
    }

    /// PCs outside the symbol table are shown as addresses, never dropped or guessed.
    @Test func unknownAddressesStayAddresses() throws {
        let m = try Self.make("1.25.5", "normal", start: "main.main")
        var c = m.creation
        c.startPC = 0x10
        c.goPC = 0x20
        c.stack = [0x30]
        let site = Self.resolver(m).site(for: c)
        #expect(site.function == "0x10")
        #expect(site.createdBy == .unknown(pc: 0x20) && site.createdBy.description == "0x20")
        #expect(site.stack == [.unknown(pc: 0x30)])
    }

    /// Two executables' sites stay apart, each resolved with its own symbol table.
    @Test func sitesOfTwoExecutablesAreKeptApart() throws {
        let a = try Self.make("1.21.13", "normal", start: "main.main", executable: .init(0))
        let b = try Self.make("1.25.5", "normal", start: "main.main", executable: .init(1))
        let all = SiteResolvers()
        all.add(Self.resolver(a, executable: .init(0)))
        all.add(Self.resolver(b, executable: .init(1)))
        let sa = all.site(for: a.creation), sb = all.site(for: b.creation)
        #expect(sa.executable == .init(0) && sb.executable == .init(1))
        #expect(sa.function == "main.main" && sb.function == "main.main")
        #expect(sa != sb)
        // Each executable's PCs mean nothing in the other's table: resolved by its own.
        #expect(sa == Self.resolver(a, executable: .init(0)).site(for: a.creation))
        var stray = a.creation
        stray.executable = .init(9)
        #expect(all.site(for: stray).function.hasPrefix("0x"))
    }
}
