import API
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Node takeover with real node processes (SPEC.md §15.5), for `psm bench cluster`: three
/// `psm serve --journal URL --node …` processes share the journal; users are written over HTTP; the
/// node serving the most users is killed with SIGKILL; the survivors must answer for each of its users
/// with the state hash it had before. The takeover time runs from the kill to the last such answer.
struct NodeTakeover {
    struct Result: Encodable {
        var seconds: Double
        var nodes: Int
        var users: Int
        /// Users of the killed node, each checked on a survivor.
        var moved_users: Int
        /// Of those, users whose state hash after the move differs from before (must be 0).
        var changed_state: Int
        var killed: String
    }

    let url: String
    let root: String
    let env: [String: String]
    let log: @Sendable (String) -> Void

    /// A `psm serve` node process.
    final class Node: @unchecked Sendable {
        let name: String
        let process = Process()
        var base = ""
        init(name: String) { self.name = name }
    }

    /// Does not follow redirects: the caller resends the key to the Location (clients must, §15.5).
    final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        func urlSession(
            _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
            completionHandler: @escaping (URLRequest?) -> Void
        ) { completionHandler(nil) }
    }

    let session = URLSession(configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)

    struct Reply {
        var status: Int
        var location: String?
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
    }

    func call(_ method: String, _ url: String, key: String, body: Data? = nil) async -> Reply {
        guard let u = URL(string: url) else { return Reply(status: 0, body: Data()) }
        var req = URLRequest(url: u, timeoutInterval: 10)
        req.httpMethod = method
        req.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
        req.httpBody = body
        return await withCheckedContinuation { c in
            session.dataTask(with: req) { data, response, _ in
                let http = response as? HTTPURLResponse
                c.resume(returning: Reply(status: http?.statusCode ?? 0, location: http?.value(forHTTPHeaderField: "Location"), body: data ?? Data()))
            }.resume()
        }
    }

    /// Calls `base + path`; follows one 307 to the owner. Returns the reply and the base that answered.
    func owned(_ method: String, _ base: String, _ path: String, key: String, body: Data? = nil) async -> (Reply, String) {
        let r = await call(method, base + path, key: key, body: body)
        guard r.status == 307, let location = r.location, location.hasSuffix(path) else { return (r, base) }
        let owner = String(location.dropLast(path.count))
        return (await call(method, location, key: key, body: body), owner)
    }

    func start(_ node: Node, executable: String) throws {
        let store = root + "/" + node.name
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: root + "/keys.json", toPath: store + "/keys.json")
        node.process.executableURL = URL(fileURLWithPath: executable)
        node.process.arguments = ["serve", "--store", store, "--port", "0", "--journal", url, "--node", node.name]
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        node.process.environment = environment
        let out = Pipe()
        node.process.standardOutput = out
        let errPath = store + "/serve.stderr"
        FileManager.default.createFile(atPath: errPath, contents: nil)
        node.process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        try node.process.run()
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let r = text.range(of: "http://") else {
            let err = String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self)
            throw CLIError.io("node \(node.name) did not start: \(text)\(err.suffix(2000))")
        }
        node.base = String(text[r.lowerBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func partitions(_ node: Node, key: String) async -> Int {
        Int(await call("GET", node.base + "/v1/health", key: key).json["partitions"] as? String ?? "") ?? -1
    }

    /// Polls `cond` every 50 ms for up to `seconds`.
    func until(_ what: String, seconds: Double = 120, _ cond: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await cond() { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw CLIError.io("takeover: timed out after \(Int(seconds)) s waiting for \(what)")
    }

    func measure(users: Int, partitions total: Int, seed: UInt64) async throws -> Result {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let (_, key) = try KeyStore(storeDirectory: root).create(tenant: "bench-takeover", scopes: [.memoryRead, .memoryWrite], name: "bench")
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let nodes = (1...3).map { Node(name: "bench-n\($0)-\(seed)") }
        defer {
            // SIGTERM (psm serve drains and exits), SIGKILL after 10 s.
            for n in nodes where n.process.isRunning { n.process.terminate() }
            let deadline = Date().addingTimeInterval(10)
            while nodes.contains(where: { $0.process.isRunning }) && Date() < deadline { usleep(50_000) }
            for n in nodes where n.process.isRunning {
                kill(n.process.processIdentifier, SIGKILL)
                n.process.waitUntilExit()
            }
        }
        for n in nodes { try start(n, executable: executable) }
        log("takeover: 3 nodes up (\(nodes.map(\.base).joined(separator: ", "))), waiting for the partitions to settle")
        // Settled: every partition served, and the same split over two rounds (0.5 s each). With few
        // partitions rendezvous hashing may give a node none.
        var previous: [Int] = []
        try await until("the partitions to settle over 3 nodes") {
            var counts: [Int] = []
            for n in nodes { counts.append(await partitions(n, key: key)) }
            defer { previous = counts }
            if counts.reduce(0, +) == total && counts == previous { return true }
            try await Task.sleep(nanoseconds: 600_000_000)
            return false
        }

        log("takeover: writing \(users) users through node 1")
        var before: [String: (owner: String, hash: String)] = [:]
        let turns = ["I am allergic to shellfish and I live in Lisbon", "My sister Marta visits in May", "I started learning the cello"]
        for u in 0..<users {
            let user = "u\(u)-\(seed)"
            for (i, t) in turns.enumerated() {
                let body = try JSONSerialization.data(withJSONObject: ["text": t, "at": String(format: "2026-03-01T10:%02d:00Z", i)])
                var (r, _) = await owned("POST", nodes[0].base, "/v1/users/\(user)/observations", key: key, body: body)
                // A partition between owners answers 503 for a moment: retry.
                var tries = 0
                while r.status == 503 && tries < 600 {
                    try await Task.sleep(nanoseconds: 50_000_000)
                    (r, _) = await owned("POST", nodes[0].base, "/v1/users/\(user)/observations", key: key, body: body)
                    tries += 1
                }
                guard r.status == 201 else { throw CLIError.io("takeover: observation for \(user) answered \(r.status): \(String(decoding: r.body.prefix(300), as: UTF8.self))") }
            }
            let (t, owner) = await owned("GET", nodes[0].base, "/v1/users/\(user)/tiers", key: key)
            guard t.status == 200, let hash = t.json["state_hash"] as? String else { throw CLIError.io("takeover: tiers of \(user) answered \(t.status)") }
            before[user] = (owner, hash)
        }
        var byOwner: [String: Int] = [:]
        for (_, v) in before { byOwner[v.owner, default: 0] += 1 }
        guard let victim = nodes.max(by: { byOwner[$0.base, default: 0] < byOwner[$1.base, default: 0] }) else { throw CLIError.io("takeover: no node") }
        let survivor = nodes.first { $0 !== victim }!
        let moved = before.filter { $0.value.owner == victim.base }

        log("takeover: SIGKILL \(victim.name) (\(moved.count) of \(users) users)")
        let start = DispatchTime.now().uptimeNanoseconds
        kill(victim.process.processIdentifier, SIGKILL)
        victim.process.waitUntilExit()
        var pending = Set(moved.keys)
        var changed = Set<String>()
        try await until("\(pending.count) users of the killed node to answer on the survivors") {
            for user in pending {
                let (r, owner) = await owned("GET", survivor.base, "/v1/users/\(user)/tiers", key: key)
                guard r.status == 200, owner != victim.base, let hash = r.json["state_hash"] as? String else { continue }
                if hash == before[user]?.hash {
                    pending.remove(user)
                    changed.remove(user)
                } else {
                    changed.insert(user)
                }
            }
            return pending.isEmpty || pending == changed
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Result(seconds: seconds, nodes: nodes.count, users: users, moved_users: moved.count, changed_state: changed.count, killed: victim.name)
    }
}

/// The long-mode cluster of `Scripts/cluster-long.sh --up` run as a child: etcd, Patroni with two
/// synchronous standbys and HAProxy on loopback. Closing the script's standard input stops it (its
/// cleanup runs); a signal would not do, as children of this process start with SIGTERM blocked.
final class LongCluster {
    let process = Process()
    let input = Pipe()
    var url = ""
    var killCommand = ""

    static func start(script: String, log: (String) -> Void) throws -> LongCluster {
        guard FileManager.default.isExecutableFile(atPath: script) else {
            throw CLIError.usage("--cluster-script \(script) is not an executable file (run from the repository root, or pass its path)")
        }
        guard getuid() == 0 else { throw CLIError.usage("--long runs \(script), which needs root (it installs and runs etcd, Patroni, PostgreSQL and HAProxy)") }
        let c = LongCluster()
        c.process.executableURL = URL(fileURLWithPath: script)
        c.process.arguments = ["--up"]
        let out = Pipe()
        c.process.standardOutput = out
        c.process.standardInput = c.input
        try c.process.run()
        var buffer = Data()
        while true {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { throw CLIError.io("\(script) --up ended before the cluster was up (exit \(c.process.isRunning ? -1 : c.process.terminationStatus))") }
            buffer.append(chunk)
            while let nl = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...nl)
                log(line)
                guard line.hasPrefix("cluster-long: up:") else { continue }
                let words = line.split(separator: " ")
                c.url = words.first { $0.hasPrefix("PSM_JOURNAL=") }.map { String($0.dropFirst("PSM_JOURNAL=".count)) } ?? ""
                c.killCommand = words.first { $0.hasSuffix("/kill-primary.sh") }.map(String.init) ?? ""
                guard !c.url.isEmpty, !c.killCommand.isEmpty else {
                    c.stop()
                    throw CLIError.io("cannot read the journal URL and kill command from: \(line)")
                }
                return c
            }
        }
    }

    func stop() {
        guard process.isRunning else { return }
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
