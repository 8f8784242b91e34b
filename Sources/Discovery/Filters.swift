#if canImport(Glibc)
import Glibc
#endif

/// Which programs `gmon --all` watches: `--exe GLOB` (any of them; none: every Go program),
/// minus `--exclude-exe GLOB`, and with `--container ID`, only those containers' (an id
/// prefix, as `docker ps` shows 12 digits). A glob matches the executable's path as its
/// process sees it, or its base name.
public struct Filters: Sendable {
    public var exe: [String] = []
    public var excludeExe: [String] = []
    public var containers: [String] = []

    public init(exe: [String] = [], excludeExe: [String] = [], containers: [String] = []) {
        self.exe = exe; self.excludeExe = excludeExe; self.containers = containers.map { $0.lowercased() }
    }

    public var isEmpty: Bool { exe.isEmpty && excludeExe.isEmpty && containers.isEmpty }

    public func admits(path: String, owner: Owner) -> Bool {
        let base = path.split(separator: "/").last.map(String.init) ?? path
        func matches(_ glob: String) -> Bool { fnmatch(glob, path, 0) == 0 || fnmatch(glob, base, 0) == 0 }
        if !exe.isEmpty && !exe.contains(where: matches) { return false }
        if excludeExe.contains(where: matches) { return false }
        if !containers.isEmpty {
            guard let id = owner.containerID, containers.contains(where: { id.hasPrefix($0) }) else { return false }
        }
        return true
    }
}
