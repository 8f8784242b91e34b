import Testing
@testable import Discovery
@testable import ProcFS

/// Cgroup paths as each runtime and cgroup driver makes them (the shapes and their sources
/// are listed on `Owner`); the ids are made up, the shapes are not.
@Suite struct OwnerTests {
    static let id = "3f1c0a9e5b7d4c2a8e6f1b3d5c7a9e0f2b4d6c8a0e2f4b6d8c0a2e4f6b8d0c2a"
    static let uid = "6a1f4c2e-9b7d-4e21-8f3a-0c5d2b7e9a14"
    static let uidSlice = "6a1f4c2e_9b7d_4e21_8f3a_0c5d2b7e9a14"

    static let cases: [(String, String?, Owner.Runtime?, String?, String?)] = [
        // Docker: cgroupfs, systemd driver.
        ("/docker/\(id)", id, .docker, nil, nil),
        ("/system.slice/docker-\(id).scope", id, .docker, nil, nil),
        // containerd under Kubernetes: cgroupfs (Burstable, Guaranteed), systemd.
        ("/kubepods/burstable/pod\(uid)/\(id)", id, .containerd, uid, nil),
        ("/kubepods/pod\(uid)/\(id)", id, .containerd, uid, nil),
        ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(uidSlice).slice/cri-containerd-\(id).scope", id, .containerd, uid, nil),
        ("/kubepods.slice/kubepods-pod\(uidSlice).slice/cri-containerd-\(id).scope", id, .containerd, uid, nil),
        // CRI-O: systemd, cgroupfs; its monitor (conmon) is not the container.
        ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uidSlice).slice/crio-\(id).scope", id, .crio, uid, nil),
        ("/kubepods/burstable/pod\(uid)/crio-\(id)", id, .crio, uid, nil),
        ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uidSlice).slice/crio-conmon-\(id).scope", nil, nil, uid, nil),
        // Podman: rootful and rootless systemd, the container's own sub-cgroup, cgroupfs.
        ("/machine.slice/libpod-\(id).scope", id, .podman, nil, nil),
        ("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-\(id).scope/container", id, .podman, nil, nil),
        ("/libpod_parent/libpod-\(id)", id, .podman, nil, nil),
        // nerdctl (containerd without Kubernetes).
        ("/system.slice/nerdctl-\(id).scope", id, .containerd, nil, nil),
        // kind's nodes: the kubelet's cgroup root is /kubelet, so its slices are prefixed.
        ("/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod\(uidSlice).slice/cri-containerd-\(id).scope", id, .containerd, uid, nil),
        // Host services.
        ("/system.slice/prometheus.service", nil, nil, nil, "prometheus.service"),
        ("/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome.service", nil, nil, nil, "app-gnome.service"),
        ("/", nil, nil, nil, nil),
        ("/user.slice/user-0.slice/session-3.scope", nil, nil, nil, nil),
    ]

    @Test(arguments: cases.indices)
    func cgroupPath(_ i: Int) {
        let (path, id, runtime, pod, unit) = Self.cases[i]
        let o = Owner(cgroupPath: path)
        #expect(o.containerID == id, "\(path)")
        #expect(o.runtime == runtime, "\(path)")
        #expect(o.podUID == pod, "\(path)")
        #expect(o.systemdUnit == unit, "\(path)")
    }

    /// cgroup v1 (several hierarchies, v2 unused) and hybrid (v2 line "/" or set).
    @Test func cgroupFiles() {
        let v1 = ProcFS.parseCgroups("""
        12:pids:/kubepods/besteffort/pod\(Self.uid)/\(Self.id)
        11:memory:/kubepods/besteffort/pod\(Self.uid)/\(Self.id)
        1:name=systemd:/kubepods/besteffort/pod\(Self.uid)/\(Self.id)
        0::/
        """)
        #expect(Owner(cgroupLines: v1) == Owner(containerID: Self.id, runtime: .containerd, podUID: Self.uid))
        let v2 = ProcFS.parseCgroups("0::/system.slice/docker-\(Self.id).scope\n")
        #expect(Owner(cgroupLines: v2) == Owner(containerID: Self.id, runtime: .docker))
        let host = ProcFS.parseCgroups("5:cpu,cpuacct:/system.slice/ssh.service\n1:name=systemd:/system.slice/ssh.service\n0::/system.slice/ssh.service\n")
        #expect(Owner(cgroupLines: host) == Owner(systemdUnit: "ssh.service"))
        #expect(Owner(cgroupLines: []) == Owner())
        // Garbage from another namespace: no container, no crash.
        #expect(Owner(cgroupPath: String(repeating: "/docker", count: 2000)).containerID == nil)
        #expect(Owner(cgroupPath: "/docker/\(Self.id.prefix(63))").containerID == nil)
    }

    @Test func podDirectories() {
        let p = PodDirectory.parse("shop_checkout-7d9f_\(Self.uid)")
        #expect(p?.0 == Self.uid && p?.1 == PodDirectory.Pod(namespace: "shop", name: "checkout-7d9f"))
        #expect(PodDirectory.parse("kube-system_coredns-5d78c9869d-x2x9q_\(Self.uid)")?.1 == PodDirectory.Pod(namespace: "kube-system", name: "coredns-5d78c9869d-x2x9q"))
        #expect(PodDirectory.parse("shop_checkout") == nil)
        #expect(PodDirectory.parse("a_b_c_\(Self.uid)") == nil)
        #expect(PodDirectory.parse("_b_\(Self.uid)") == nil)
    }

    @Test func filters() {
        let docker = Owner(containerID: Self.id, runtime: .docker)
        #expect(Filters().admits(path: "/usr/bin/prometheus", owner: Owner()))
        #expect(Filters(exe: ["prom*"]).admits(path: "/usr/bin/prometheus", owner: Owner()))
        #expect(Filters(exe: ["/usr/bin/*"]).admits(path: "/usr/bin/prometheus", owner: Owner()))
        #expect(!Filters(exe: ["node_*"]).admits(path: "/usr/bin/prometheus", owner: Owner()))
        #expect(!Filters(excludeExe: ["prometheus"]).admits(path: "/usr/bin/prometheus", owner: Owner()))
        #expect(Filters(containers: [String(Self.id.prefix(12)).uppercased()]).admits(path: "/app", owner: docker))
        #expect(!Filters(containers: ["abcdef"]).admits(path: "/app", owner: docker))
        #expect(!Filters(containers: [String(Self.id.prefix(12))]).admits(path: "/app", owner: Owner()))
    }
}
