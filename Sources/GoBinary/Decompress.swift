import CZlib

/// zlib inflation for compressed DWARF sections, with a size cap so a
/// hostile file cannot make gmon allocate without bound.
enum Decompress {
    static let maxOutput = 1 << 30

    /// SHF_COMPRESSED section: Elf64_Chdr then a zlib stream.
    static func elfCompressed(_ raw: [UInt8]) throws -> [UInt8] {
        let v = ByteView(raw)
        guard try v.u32(0) == 1 else { throw GoBinaryError.malformed("compressed section uses an unknown algorithm") }
        let size = try v.int64(8)
        return try inflate(Array(raw.dropFirst(24)), expected: size)
    }

    /// Legacy `.zdebug_*`: "ZLIB", 8-byte big-endian size, zlib stream.
    static func zdebug(_ raw: [UInt8]) throws -> [UInt8] {
        guard raw.count >= 12, raw[0] == 0x5a, raw[1] == 0x4c, raw[2] == 0x49, raw[3] == 0x42 else {
            throw GoBinaryError.malformed(".zdebug section without ZLIB header")
        }
        var size: UInt64 = 0
        for b in raw[4..<12] { size = size << 8 | UInt64(b) }
        guard let n = Int(exactly: size) else { throw GoBinaryError.malformed("compressed section size") }
        return try inflate(Array(raw.dropFirst(12)), expected: n)
    }

    static func inflate(_ input: [UInt8], expected: Int) throws -> [UInt8] {
        guard expected >= 0, expected <= maxOutput else { throw GoBinaryError.malformed("compressed section claims \(expected) bytes") }
        var out = [UInt8](repeating: 0, count: expected)
        if expected == 0 { return out }
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw GoBinaryError.malformed("zlib initialisation failed")
        }
        defer { inflateEnd(&stream) }
        var input = input
        let rc: Int32 = input.withUnsafeMutableBufferPointer { inBuf in
            out.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = uInt(outBuf.count)
                return CZlib.inflate(&stream, Z_FINISH)
            }
        }
        guard rc == Z_STREAM_END || (rc == Z_BUF_ERROR && stream.avail_out == 0) || (rc == Z_OK && stream.avail_out == 0) else {
            throw GoBinaryError.malformed("compressed section does not inflate (zlib error \(rc))")
        }
        guard Int(stream.total_out) == expected else { throw GoBinaryError.malformed("compressed section is shorter than it claims") }
        return out
    }
}
