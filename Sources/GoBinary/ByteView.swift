// Bounds-checked little-endian reads over an untrusted file image.
// Every read that could leave the buffer throws instead of trapping: the
// reader runs as root on binaries anyone could have written.

public struct ByteView: Sendable {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var count: Int { bytes.count }

    /// True when `[offset, offset+length)` lies inside the buffer; never overflows.
    @inline(__always)
    public func contains(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= bytes.count && length <= bytes.count - offset
    }

    @inline(__always)
    func check(_ offset: Int, _ length: Int, _ what: StaticString) throws {
        guard contains(offset, length) else { throw GoBinaryError.outOfBounds(String(describing: what), offset: offset, length: length) }
    }

    @inline(__always)
    public func u8(_ offset: Int) throws -> UInt8 {
        try check(offset, 1, "u8")
        return bytes[offset]
    }

    @inline(__always)
    public func u16(_ offset: Int) throws -> UInt16 {
        try check(offset, 2, "u16")
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt16.self) }.littleEndian
    }

    @inline(__always)
    public func u32(_ offset: Int) throws -> UInt32 {
        try check(offset, 4, "u32")
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }.littleEndian
    }

    @inline(__always)
    public func u64(_ offset: Int) throws -> UInt64 {
        try check(offset, 8, "u64")
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }.littleEndian
    }

    @inline(__always)
    public func i32(_ offset: Int) throws -> Int32 { Int32(bitPattern: try u32(offset)) }

    /// Reads an unsigned value that must fit in Int (file offsets, sizes).
    public func int64(_ offset: Int) throws -> Int {
        let v = try u64(offset)
        guard let i = Int(exactly: v), i >= 0 else { throw GoBinaryError.malformed("value \(v) at offset \(offset) is out of range") }
        return i
    }

    public func slice(_ offset: Int, _ length: Int) throws -> ArraySlice<UInt8> {
        try check(offset, length, "slice")
        return bytes[offset..<(offset + length)]
    }

    /// NUL-terminated string starting at `offset`, at most `limit` bytes long.
    public func cString(_ offset: Int, limit: Int = 1 << 16) throws -> String {
        try check(offset, 0, "string")
        let end = Swift.min(bytes.count, offset &+ Swift.min(limit, bytes.count))
        var i = offset
        while i < end && bytes[i] != 0 { i += 1 }
        guard i < end else { throw GoBinaryError.malformed("unterminated string at offset \(offset)") }
        return String(decoding: bytes[offset..<i], as: UTF8.self)
    }

    /// Unsigned LEB128 / Go uvarint; returns the value and the offset after it.
    @inline(__always)
    public func uvarint(_ offset: Int) throws -> (UInt64, Int) {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var i = offset
        while true {
            let b = try u8(i)
            i += 1
            if shift < 64 { result |= UInt64(b & 0x7f) << shift }
            if b & 0x80 == 0 { return (result, i) }
            shift += 7
            if shift > 70 { throw GoBinaryError.malformed("varint too long at offset \(offset)") }
        }
    }

    /// Signed LEB128 (DWARF).
    public func sleb(_ offset: Int) throws -> (Int64, Int) {
        var result: Int64 = 0
        var shift: Int64 = 0
        var i = offset
        var b: UInt8
        repeat {
            b = try u8(i)
            i += 1
            if shift < 64 { result |= Int64(b & 0x7f) << shift }
            shift += 7
            if shift > 70 { throw GoBinaryError.malformed("sleb128 too long at offset \(offset)") }
        } while b & 0x80 != 0
        if shift < 64 && (b & 0x40) != 0 { result |= Int64(bitPattern: UInt64.max << UInt64(shift)) }
        return (result, i)
    }

    /// Position of `needle` in `[from, to)`, or nil.
    public func firstIndex(of needle: [UInt8], from: Int, to: Int, alignment: Int = 1) -> Int? {
        guard let first = needle.first, from >= 0 else { return nil }
        let limit = Swift.min(to, bytes.count) - needle.count
        var i = from
        if alignment > 1 { i = (i + alignment - 1) / alignment * alignment }
        return bytes.withUnsafeBufferPointer { buf -> Int? in
            while i <= limit {
                if buf[i] == first {
                    var ok = true
                    for j in 1..<needle.count where buf[i + j] != needle[j] { ok = false; break }
                    if ok { return i }
                }
                i += alignment
            }
            return nil
        }
    }
}
