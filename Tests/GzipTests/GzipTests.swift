import Foundation
import Gzip
import TestSupport
import Testing

@Suite struct GzipTests {
    /// What gmon compresses, gunzip reads back (at the scrape's level 1 and pprof's default).
    @Test(arguments: [Int32(1), Int32(-1)])
    func gunzipReadsItBack(level: Int32) throws {
        let text = Array((0..<5_000).map { "gmon_goroutines_live{function=\"main.f\($0 % 37)\"} \($0)\n" }.joined().utf8)
        let z = try #require(Gzip.compress(text, level: level))
        #expect(z.count < text.count / 5 && z.prefix(2) == [0x1f, 0x8b])
        #expect(Array(try gunzip(Data(z))) == text)
    }
}
