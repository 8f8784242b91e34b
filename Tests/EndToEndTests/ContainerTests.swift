import Foundation
import Testing
import TestSupport

/// A real OCI container started by runc: a rootfs holding one static Go fixture (a copy of
/// its own: a file of its own, as an image layer is), its own mount, pid, uts, ipc and
/// network namespaces, and a cgroup path shaped like a container runtime's.
final class Container {
    let id: String
    let bundle: URL
    let fixture: FixtureProcess

    /// `cgroupsPath`: what the runtime would give runc (cgroupfs driver). `rootfs`: a root
    /// prepared by the caller (an overlay mount, as an image's container has), holding /goroutines.
    init(id: String, binary: String, args: [String], cgroupsPath: String, under dir: URL, rootfs given: URL? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc") else {
            throw E2EError("runc is not installed: `make deps` (scripts/install-deps.sh) installs it")
        }
        self.id = id
        bundle = dir.appendingPathComponent(id)
        let rootfs = bundle.appendingPathComponent("rootfs")
        try FileManager.default.createDirectory(at: bundle, withIntermediateDirectories: true)
        if given == nil && !FileManager.default.fileExists(atPath: rootfs.path) {
            try FileManager.default.createDirectory(at: rootfs, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: binary, toPath: rootfs.appendingPathComponent("goroutines").path)
        }
        _ = try? run("/usr/sbin/runc", ["delete", "-f", id])
        let configURL = bundle.appendingPathComponent("config.json")
        try? FileManager.default.removeItem(at: configURL)
        _ = try run("/usr/sbin/runc", ["spec", "--bundle", bundle.path])
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        var process = config["process"] as! [String: Any]
        process["terminal"] = false
        process["args"] = ["/goroutines"] + args
        config["process"] = process
        var linux = config["linux"] as! [String: Any]
        linux["cgroupsPath"] = cgroupsPath
        config["linux"] = linux
        if let given { config["root"] = ["path": given.path, "readonly": true] }
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        // runc in the foreground: the container's stdin and stdout are runc's.
        fixture = try FixtureProcess("/usr/sbin/runc", ["run", "--bundle", bundle.path, id])
    }

    /// The container's process as the host sees it (its pid in the host's namespace).
    var hostPID: Int32? {
        guard let out = try? run("/usr/sbin/runc", ["state", id]),
              let state = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any] else { return nil }
        return (state["pid"] as? NSNumber)?.int32Value
    }

    deinit { _ = try? run("/usr/sbin/runc", ["delete", "-f", id]) }
}

extension EndToEnd { @Suite(.serialized) struct ContainerTests {
    static func hexID(_ seed: String) -> String {
        var h = UInt64(1469598103934665603)
        var out = ""
        while out.count < 64 {
            for b in (seed + "\(out.count)").utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
            out += String(format: "%016llx", h)
        }
        return String(out.prefix(64))
    }

    /// `gmon --all` started after one container and before two others (Docker, containerd
    /// under Kubernetes, CRI-O cgroup shapes; Go 1.21, 1.27 stripped, 1.25; static: a Go PIE needs
    /// the dynamic loader, which these root filesystems do not have):
    /// per-container counts equal each fixture's own truth, and the series carry the right
    /// container id, pod and namespace. Then: one container started again counts twice; a
    /// Go 1.16 program is skipped with a note; once all are gone, their probes are detached
    /// and, after --stale-after, their series leave the scrape.
    @Test func everyContainerOnTheHostWithItsOwnLabels() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-runc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let podUID = "6a1f4c2e-9b7d-4e21-8f3a-0c5d2b7e9a14"
        let pods = dir.appendingPathComponent("pods")
        try FileManager.default.createDirectory(at: pods.appendingPathComponent("shop_checkout-7d9f_\(podUID)"), withIntermediateDirectories: true)
        let ids = (docker: Self.hexID("docker"), k8s: Self.hexID("k8s"), crio: Self.hexID("crio"))
        let args = ["-a", "40", "-b", "7", "-c", "3", "-wait-stdin"]
        let docker = try Container(id: "gmon-docker", binary: Fixtures.binary("1.21.13", "normal"), args: args,
                                   cgroupsPath: "/docker/\(ids.docker)", under: dir)
        _ = docker.fixture.waitForLine("ready")

        let gmon = try GmonProcess(["--all", "--exe", "goroutines", "--exe", "etcdctl*", "--log-format", "json", "--stale-after", "6", "--snapshot-interval", "1",
                                    "--pod-log-root", pods.path])
        let url = try MetricsTests.metricsURL(gmonAttached(gmon))
        let k8s = try Container(id: "gmon-k8s", binary: Fixtures.binary("1.27.3", "stripped"), args: args,
                                cgroupsPath: "/kubepods/besteffort/pod\(podUID)/\(ids.k8s)", under: dir)
        let crio = try Container(id: "gmon-crio", binary: Fixtures.binary("1.25.5", "normal"), args: args,
                                 cgroupsPath: "/kubepods/burstable/pod\(podUID)/crio-\(ids.crio)", under: dir)
        for c in [k8s, crio] {
            _ = c.fixture.waitForLine("ready")
            try gmon.waitForStderr("in container \(c === k8s ? ids.k8s.prefix(12) : ids.crio.prefix(12))")
        }
        var truths: [String: [Truth]] = [:]
        for (c, id) in [(docker, ids.docker), (k8s, ids.k8s), (crio, ids.crio)] {
            c.fixture.send("go")
            truths[id] = Truth.parse(c.fixture.waitForLine("done"))
        }
        try checkCounts(url, truths, times: 1)
        let text = try MetricsTests.curl(["http://\(url)/metrics"])
        let byContainer = siteCounts(by: ["container_id", "function"], text)
        let k8sLabels = byContainer["\(ids.k8s) main.shortLived"]?.labels ?? ""
        #expect(k8sLabels.contains("pod=\"checkout-7d9f\"") && k8sLabels.contains("namespace=\"shop\"") && k8sLabels.contains("exe=\"goroutines\""),
                "k8s container's labels: \(k8sLabels)")
        let crioLabels = byContainer["\(ids.crio) main.shortLived"]?.labels ?? ""
        #expect(crioLabels.contains("pod=\"checkout-7d9f\"") && crioLabels.contains("namespace=\"shop\""), "CRI-O container's labels: \(crioLabels)")
        let dockerLabels = byContainer["\(ids.docker) main.shortLived"]?.labels ?? ""
        #expect(dockerLabels.contains("pod=\"\""), "Docker container's labels: \(dockerLabels)")
        // Periodic snapshots (every second here) count each container's leaked goroutines by status.
        let leakEnd = Date().addingTimeInterval(10)
        var leak: String?
        repeat {
            leak = try MetricsTests.curl(["http://\(url)/metrics"]).split(separator: "\n").first {
                $0.hasPrefix("gmon_goroutines_by_status{exe=\"goroutines\",container_id=\"\(ids.k8s)\",pod=\"checkout-7d9f\",namespace=\"shop\",function=\"main.leaked\"")
            }.map(String.init)
            if leak == nil { usleep(200_000) }
        } while leak == nil && Date() < leakEnd
        #expect(leak?.hasSuffix(" 3") == true, "the k8s container's 3 leaked goroutines by status: \(leak ?? "none")")
        // Log lines carry the container and pod.
        let podLine = gmon.events.first { ($0["container_id"] as? String) == ids.k8s }
        #expect(podLine?["pod"] as? String == "checkout-7d9f" && podLine?["exe"] as? String == "goroutines",
                "no log line of the k8s container with its pod: \(gmon.stdout.prefix(400))")

        // The Docker container stopped and started again: the same file, a new process.
        docker.fixture.send("exit")
        _ = docker.fixture.finish()
        try gmon.waitForStderr("goroutines: its last process is gone; probes detached")
        let again = try Container(id: "gmon-docker", binary: Fixtures.binary("1.21.13", "normal"), args: args,
                                  cgroupsPath: "/docker/\(ids.docker)", under: dir)
        _ = again.fixture.waitForLine("ready")
        try gmon.waitForStderr("in container \(ids.docker.prefix(12))", count: 2)
        again.fixture.send("go")
        let second = Truth.parse(again.fixture.waitForLine("done"))
        #expect(second.count == truths[ids.docker]?.count)
        try checkCounts(url, truths, times: 1, dockerTimes: 2)

        // A Go release gmon does not support: a note, never fatal.
        let old = try FixtureProcess(Fixtures.legacy("etcdctl-go1.16.3"), ["--dial-timeout=8s", "--endpoints=127.0.0.1:9", "get", "x"])
        try gmon.waitForStderr("not watching")
        #expect(gmon.stderr.contains("go1.16.3"), "the note names the release: \(gmon.stderr)")
        kill(old.process.processIdentifier, SIGKILL)

        for c in [again, k8s, crio] {
            c.fixture.send("exit")
            _ = c.fixture.finish()
        }
        // Gone: detached within a second or two, series removed 6 s later.
        let end = Date().addingTimeInterval(25)
        var left = ""
        repeat {
            usleep(250_000)
            left = try MetricsTests.curl(["http://\(url)/metrics"]).split(separator: "\n").filter { $0.hasPrefix("gmon_goroutines_created_total{") }.joined(separator: "\n")
        } while !left.isEmpty && Date() < end
        #expect(left.isEmpty, "series of containers gone for more than --stale-after 6 s: \(left.prefix(500))")
        #expect(try gmon.stop() == 0)
        #expect(gmon.stderr.contains("lost events: ring buffer full 0 "), "\(gmon.stderr)")
    }

    /// Containers of one image, as Docker and Kubernetes run replicas: each root an overlay
    /// mount of the same lower layer, so the kernel runs (and probes) one file that each
    /// mount shows under a device of its own. `gmon --all` attaches once and counts each
    /// container's goroutines once (probes attached through each mount would both fire in
    /// every container: double counts); `--container` leaves the other replica out, though
    /// the probes fire there too. Two replicas run before gmon starts (one seeded through the
    /// layer file), a third starts after.
    @Test func replicasOfOneImageCountOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gmon-layer-\(UUID().uuidString.prefix(8))")
        let lower = dir.appendingPathComponent("layer")
        try FileManager.default.createDirectory(at: lower, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.binary("1.25.5", "normal"), toPath: lower.appendingPathComponent("goroutines").path)
        var mounts: [URL] = []
        defer {
            for m in mounts { _ = try? run("/usr/bin/umount", ["-l", m.path]) }
            try? FileManager.default.removeItem(at: dir)
        }
        func overlay(_ name: String) throws -> URL {
            let (upper, work, merged) = (dir.appendingPathComponent("\(name)-upper"), dir.appendingPathComponent("\(name)-work"), dir.appendingPathComponent("\(name)-root"))
            for d in [upper, work, merged] { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) }
            _ = try run("/usr/bin/mount", ["-t", "overlay", "overlay", "-o", "lowerdir=\(lower.path),upperdir=\(upper.path),workdir=\(work.path)", merged.path])
            mounts.append(merged)
            return merged
        }
        let ids = (a: Self.hexID("replica-a"), b: Self.hexID("replica-b"), c: Self.hexID("replica-c"))
        let args = ["-a", "40", "-b", "7", "-c", "3", "-wait-stdin"]
        let a = try Container(id: "gmon-replica-a", binary: "", args: args, cgroupsPath: "/docker/\(ids.a)", under: dir, rootfs: try overlay("a"))
        let b = try Container(id: "gmon-replica-b", binary: "", args: args, cgroupsPath: "/docker/\(ids.b)", under: dir, rootfs: try overlay("b"))
        for r in [a, b] { _ = r.fixture.waitForLine("ready") }
        // The same file, two identities: what makes this case.
        let pids = [a, b].compactMap(\.hostPID)
        let devices = Set(pids.compactMap { p -> UInt64? in var st = stat(); return stat("/proc/\(p)/exe", &st) == 0 ? UInt64(st.st_dev) : nil })
        #expect(pids.count == 2 && devices.count == 2, "the replicas' executables should show two devices: \(devices)")

        let all = try GmonProcess(["--all", "--exe", "goroutines"])
        let onlyA = try GmonProcess(["--all", "--container", String(ids.a.prefix(12))])
        let urlAll = try MetricsTests.metricsURL(gmonAttached(all))
        let urlA = try MetricsTests.metricsURL(gmonAttached(onlyA))
        let c = try Container(id: "gmon-replica-c", binary: "", args: args, cgroupsPath: "/docker/\(ids.c)", under: dir, rootfs: try overlay("c"))
        _ = c.fixture.waitForLine("ready")
        var truths: [String: [Truth]] = [:]
        for (r, id) in [(a, ids.a), (b, ids.b), (c, ids.c)] {
            r.fixture.send("go")
            truths[id] = Truth.parse(r.fixture.waitForLine("done"))
        }
        let scrapeA: String
        do {
            try checkCounts(urlAll, truths, times: 1)
            try checkCounts(urlA, [ids.a: truths[ids.a]!], times: 1)
            scrapeA = try MetricsTests.curl(["http://\(urlA)/metrics"])
        } catch {
            throw E2EError("\(error); gmon --all: \(all.stderr.suffix(1500)); gmon --container: \(onlyA.stderr.suffix(1500))")
        }
        #expect(!scrapeA.contains(ids.b) && !scrapeA.contains(ids.c), "--container \(ids.a.prefix(12)) shows another replica: \(scrapeA.split(separator: "\n").filter { $0.contains(ids.b) || $0.contains(ids.c) }.prefix(3))")
        // (Other tests' programs on this host may be attached too: only these containers' count.)
        let attaches = all.stderr.split(separator: "\n").filter { l in
            l.hasPrefix("gmon: watching /") && [ids.a, ids.b, ids.c].contains { l.contains("in container \($0.prefix(12))") }
        }
        #expect(attaches.count == 1, "one file, attached once: \(all.stderr)")
        #expect(all.stderr.contains("2 processes, 10 goroutines already running"), "both replicas running at start seeded: \(all.stderr)")
        for r in [a, b, c] {
            r.fixture.send("exit")
            _ = r.fixture.finish()
        }
        for g in [all, onlyA] {
            #expect(try g.stop() == 0)
            #expect(g.stderr.contains("lost events: ring buffer full 0 "), "\(g.stderr)")
        }
    }

    func gmonAttached(_ gmon: GmonProcess) throws -> GmonProcess {
        try gmon.waitForStderr("gmon: watching every Go program")
        return gmon
    }

    /// Each container's sites A, B and C: created and exited equal its truth (`dockerTimes` runs for Docker's).
    func checkCounts(_ url: String, _ truths: [String: [Truth]], times: Int, dockerTimes: Int? = nil) throws {
        var problems: [String] = []
        let end = Date().addingTimeInterval(10)
        repeat {
            problems = []
            let counts = siteCounts(by: ["container_id", "function"], try MetricsTests.curl(["http://\(url)/metrics"]))
            for (id, ts) in truths {
                let k = id == Self.hexID("docker") ? (dockerTimes ?? times) : times
                for t in ts {
                    let got = counts["\(id) \(t.function)"]
                    if got?.created != t.created * k || got?.exited != t.exited * k {
                        problems.append("container \(id.prefix(12)) \(t.function): gmon \(got.map { "\($0.created)/\($0.exited)" } ?? "none"), truth \(t.created * k)/\(t.exited * k)")
                    }
                }
            }
            if problems.isEmpty { return }
            usleep(200_000)
        } while Date() < end
        Issue.record("per-container counts differ from the fixtures' truth: \(problems.joined(separator: "; "))")
    }
} }
