/// Why a file could not be read as a Go executable. Descriptions are one
/// sentence a user can act on.
public enum GoBinaryError: Error, Equatable, CustomStringConvertible, Sendable {
    case cannotOpen(path: String, reason: String)
    case isDirectory(path: String)
    case notELF
    case unsupportedELF(String)
    case notGo(String)
    case outOfBounds(String, offset: Int, length: Int)
    case malformed(String)
    case unsupportedGoVersion(String)
    case unknownRuntimeLayout(goVersion: String)
    case missingFunction(String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): return "cannot open \(path): \(reason)"
        case .isDirectory(let path): return "\(path) is a directory; pass the path of a Go executable"
        case .notELF: return "not an ELF file; gmon watches Linux Go executables"
        case .unsupportedELF(let why): return "unsupported ELF file: \(why)"
        case .notGo(let why): return "not a Go program: \(why)"
        case .outOfBounds(let what, let offset, let length):
            return "truncated or corrupted file: \(what) read of \(length) bytes at offset \(offset) lies outside the file"
        case .malformed(let why): return "corrupted Go binary: \(why)"
        case .unsupportedGoVersion(let v):
            return "built by \(v), which gmon does not support; gmon supports Go 1.17 and later"
        case .unknownRuntimeLayout(let v):
            return "built by \(v), a Go release whose runtime.g layout gmon does not know, and the binary has no DWARF; pass --goid-offset, --gopc-offset, --startpc-offset (and --parent-goid-offset) to override"
        case .missingFunction(let name): return "the binary has no function \(name); is it really a Go program?"
        }
    }
}
