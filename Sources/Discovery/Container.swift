/// Who a process belongs to, from its cgroup path: a container (its id and runtime), a
/// Kubernetes pod (its UID), or a systemd unit on the host. Only the path is read: no
/// runtime socket, no API server.
///
/// The path shapes, by runtime and cgroup driver (the container's cgroup is the last
/// segment but one when a runtime nests a sub-cgroup, e.g. Podman's `/container`):
/// - Docker, cgroupfs driver: `/docker/<id>`; systemd driver: `/system.slice/docker-<id>.scope`
///   (moby daemon/daemon_unix.go: cgroup parent "docker", scope prefix "docker").
/// - containerd under Kubernetes (CRI), cgroupfs: `/kubepods/<qos>/pod<uid>/<id>` (qos
///   "besteffort" or "burstable"; none for Guaranteed pods); systemd:
///   `/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid with _>.slice/cri-containerd-<id>.scope`
///   (kubelet pkg/kubelet/cm/cgroup_manager_linux.go names the pod slices; containerd's CRI
///   plugin gives runc "<slice>:cri-containerd:<id>", which runc's systemd driver turns into the scope).
/// - CRI-O: the same pod cgroups, the container's `crio-<id>.scope` (systemd) or `crio-<id>`
///   (cgroupfs) (cri-o internal/config/cgmgr: prefix "crio"; its monitor is `crio-conmon-<id>`).
/// - Podman: `/machine.slice/libpod-<id>.scope` or, rootless, `/user.slice/user-<uid>.slice/user@<uid>.service/…/libpod-<id>.scope`
///   (systemd); `/libpod_parent/libpod-<id>` (cgroupfs) (containers/common pkg/cgroups).
/// - containerd without Kubernetes (nerdctl, ctr): `/<namespace>/<id>` (cgroupfs) or
///   `/system.slice/nerdctl-<id>.scope`.
/// - Host services: `/system.slice/<unit>.service`, user services `…/user@<uid>.service/app.slice/<unit>.service`.
public struct Owner: Sendable, Equatable, Hashable {
    public enum Runtime: String, Sendable {
        case docker, containerd, crio = "cri-o", podman
    }
    /// The container's full id (64 hex digits), nil on the host.
    public var containerID: String?
    public var runtime: Runtime?
    /// The Kubernetes pod's UID (with dashes), when the container is a pod's.
    public var podUID: String?
    /// The systemd unit of a process on the host (`prometheus.service`).
    public var systemdUnit: String?

    public init(containerID: String? = nil, runtime: Runtime? = nil, podUID: String? = nil, systemdUnit: String? = nil) {
        self.containerID = containerID; self.runtime = runtime; self.podUID = podUID; self.systemdUnit = systemdUnit
    }

    /// The first 12 digits, as `docker ps` and `crictl ps` show ids.
    public var shortContainerID: String? { containerID.map { String($0.prefix(12)) } }

    /// From the lines of /proc/PID/cgroup: the v2 line ("0::/path") when it says more than
    /// "/", else the v1 hierarchies' paths (systemd's first, then the others).
    public init(cgroupLines lines: [(hierarchy: String, controllers: String, path: String)]) {
        let v2 = lines.first { $0.hierarchy == "0" && $0.controllers.isEmpty }?.path
        var candidates: [String] = []
        if let v2, v2 != "/" { candidates.append(v2) }
        candidates += lines.filter { $0.controllers == "name=systemd" }.map(\.path)
        candidates += lines.filter { !($0.hierarchy == "0" && $0.controllers.isEmpty) && $0.controllers != "name=systemd" }.map(\.path)
        var best = Owner()
        for path in candidates {
            let o = Owner(cgroupPath: path)
            if o.containerID != nil { self = o; return }
            if best.systemdUnit == nil && o.systemdUnit != nil { best = o }
        }
        self = best
    }

    /// From one cgroup path.
    public init(cgroupPath path: String) {
        self.init()
        // Bounded: a cgroup path is short, but it comes from another process's namespace.
        let segments = path.utf8.count > 4096 ? [] : path.split(separator: "/").map(String.init)
        for (i, s) in segments.enumerated() {
            if let uid = Self.podUID(s) { podUID = uid }
            if let (id, runtime) = Self.container(s, parent: i > 0 ? segments[i - 1] : nil) {
                containerID = id
                self.runtime = runtime
            }
        }
        if containerID == nil {
            // Host services: the innermost unit (a service's own sub-cgroups sit below it).
            systemdUnit = segments.last { $0.hasSuffix(".service") && !$0.hasPrefix("user@") }
        } else if runtime == nil {
            runtime = podUID != nil ? .containerd : nil
        }
    }

    /// "pod<uid>" (cgroupfs) or "kubepods-<qos>-pod<uid_>.slice" (systemd).
    static func podUID(_ s: String) -> String? {
        var t = Substring(s)
        if t.hasSuffix(".slice") {
            t = t.dropLast(6)
            // "kubepods-<qos>-pod<uid_>" ("kubelet-" first on kind's nodes): the uid has no "-",
            // so it follows the last "-pod".
            guard t.hasPrefix("kubepods") || t.hasPrefix("kubelet-kubepods"), let dash = t.lastIndex(of: "-"), t[dash...].hasPrefix("-pod") else { return nil }
            t = t[t.index(dash, offsetBy: 4)...]
            let uid = String(t.map { $0 == "_" ? "-" : $0 })
            return isUID(uid) ? uid : nil
        }
        guard t.hasPrefix("pod") else { return nil }
        let uid = String(t.dropFirst(3))
        return isUID(uid) ? uid : nil
    }

    static func isUID(_ s: String) -> Bool {
        s.utf8.count == 36 && s.utf8.enumerated().allSatisfy { i, c in
            [8, 13, 18, 23].contains(i) ? c == UInt8(ascii: "-") : isHex(c)
        }
    }

    static func isHex(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
    }

    static func isContainerID(_ s: Substring) -> Bool { s.utf8.count == 64 && s.utf8.allSatisfy(isHex) }

    /// A segment naming a container: "<prefix>-<id>.scope", "<prefix>-<id>", or a bare id.
    static func container(_ s: String, parent: String?) -> (String, Runtime?)? {
        var t = Substring(s)
        if t.hasSuffix(".scope") { t = t.dropLast(6) }
        let prefixes: [(String, Runtime)] = [("docker-", .docker), ("cri-containerd-", .containerd), ("crio-", .crio),
                                             ("libpod-", .podman), ("nerdctl-", .containerd)]
        for (p, r) in prefixes where t.hasPrefix(p) {
            let id = t.dropFirst(p.count)
            // crio-conmon-<id> is CRI-O's monitor process, not the container.
            return isContainerID(id) ? (String(id).lowercased(), r) : nil
        }
        guard isContainerID(t) else { return nil }
        switch parent {
        case "docker": return (String(t).lowercased(), .docker)
        case "libpod_parent": return (String(t).lowercased(), .podman)
        default: return (String(t).lowercased(), nil)
        }
    }
}
