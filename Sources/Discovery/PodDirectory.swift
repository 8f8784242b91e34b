#if canImport(Glibc)
import Glibc
#endif

/// A pod's namespace and name as the node shows them without asking the API server: the
/// kubelet keeps each pod's logs in `/var/log/pods/<namespace>_<name>_<uid>/`.
public final class PodDirectory: @unchecked Sendable {
    public struct Pod: Sendable, Equatable { public var namespace: String, name: String }
    let root: String
    private var byUID: [String: Pod] = [:]
    private var lastScanNs: UInt64 = 0
    /// At most this many pods are kept (a node runs a few hundred).
    static let maxPods = 10_000

    public init(root: String = "/var/log/pods") { self.root = root }

    /// The pod with this UID; the directory is listed again (at most once a second) when the
    /// UID is not known yet: a new pod's directory appears when it starts.
    public func pod(uid: String) -> Pod? {
        if let p = byUID[uid] { return p }
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let now = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        guard now &- lastScanNs >= 1_000_000_000 || lastScanNs == 0 else { return nil }
        lastScanNs = now
        scan()
        return byUID[uid]
    }

    func scan() {
        guard let dir = opendir(root) else { return }
        defer { closedir(dir) }
        var found: [String: Pod] = [:]
        while let e = readdir(dir), found.count < Self.maxPods {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let (uid, pod) = Self.parse(name) { found[uid] = pod }
        }
        byUID = found
    }

    /// "<namespace>_<name>_<uid>": namespaces and pod names are DNS labels (no "_"), so the
    /// two underscores split it.
    static func parse(_ entry: String) -> (String, Pod)? {
        let f = entry.split(separator: "_", omittingEmptySubsequences: false)
        guard f.count == 3, !f[0].isEmpty, !f[1].isEmpty, Owner.isUID(String(f[2])) else { return nil }
        return (String(f[2]), Pod(namespace: String(f[0]), name: String(f[1])))
    }
}
