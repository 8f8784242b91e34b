import Testing
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

    /// Generic functions as Go's tracebacks print them.
    @Test func typeArgumentsPrintAsEllipsis() {
        #expect(GoSiteResolver.printName("iter.Pull[go.shape.int]") == "iter.Pull[...]")
        #expect(GoSiteResolver.printName("iter.Pull2[go.shape.string,go.shape.int].func1") == "iter.Pull2[...].func1")
        #expect(GoSiteResolver.printName("main.main") == "main.main")
    }
}
