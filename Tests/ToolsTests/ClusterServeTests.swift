import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Two `psm serve` cluster nodes over the test PostgreSQL server (SPEC.md §15.5): each serves the users
/// of its partitions, redirects the others to their owner, and takes a dead node's users over with
/// the same answers.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["PSM_TEST_POSTGRES"].map { !$0.isEmpty } ?? false, "needs PSM_TEST_POSTGRES"))
struct ClusterServeTests {
    let cli = CLITests()

    /// Does not follow redirects, so the test sees the 307 and its Location.
    final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        func urlSession(
            _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
            completionHandler: @escaping (URLRequest?) -> Void
        ) { completionHandler(nil) }
    }

    func get(_ url: String, key: String?) throws -> (status: Int, location: String?, body: [String: Any]) {
        var req = URLRequest(url: try #require(URL(string: url)))
        if let key { req.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        let session = URLSession(configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var out: (Int, String?, [String: Any]) = (0, nil, [:])
        session.dataTask(with: req) { data, response, _ in
            let http = response as? HTTPURLResponse
            out = (http?.statusCode ?? 0, http?.value(forHTTPHeaderField: "Location"), (data.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }) ?? [:])
            done.signal()
        }.resume()
        done.wait()
        session.finishTasksAndInvalidate()
        return out
    }

    /// Polls `cond` every 100 ms for up to 60 s.
    func eventually(_ what: String, _ cond: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if try cond() { return }
            usleep(100_000)
        }
        Issue.record("timed out waiting for \(what)")
    }

    func partitions(_ server: LiveServer) throws -> Int { Int(try get(server.base + "/v1/health", key: nil).body["partitions"] as? String ?? "") ?? -1 }

    @Test func nodesServeTheirUsersRedirectTheRestAndTakeOverADeadNode() throws {
        var u = try #require(URLComponents(string: ProcessInfo.processInfo.environment["PSM_TEST_POSTGRES"] ?? ""))
        u.path = "/psm_serve_\(UInt64.random(in: 0...UInt64.max))"
        let url = try #require(u.string)
        let root = NSTemporaryDirectory() + "psm-cluster-serve-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (storeA, storeB) = (root + "/a", root + "/b")
        for s in [storeA, storeB] { try FileManager.default.createDirectory(atPath: s, withIntermediateDirectories: true) }
        let env = ["PSM_MODEL": "", "PSM_MINILM_DIR": "", "PSM_HOME": root + "/home", "PSM_JOURNAL": ""]
        #expect(try cli.run(["cluster", "init", "--journal", url, "--partitions", "8"]).status == 0)
        // A cluster key (PostgreSQL) is valid on every node; the auditor's key is only node a's store's.
        let created = try cli.run(["keys", "create", "--journal", url, "--tenant", "acme", "--scopes", "memory:read,memory:write", "--json"], env: env)
        let key = try #require(try JSONSerialization.jsonObject(with: Data(created.out.utf8)) as? [String: Any], "\(created.err)")["key"] as? String ?? ""
        let listed = try cli.run(["keys", "list", "--journal", url, "--json"], env: env)
        #expect(listed.status == 0 && listed.out.contains(String(key.split(separator: "_")[1])) && !listed.out.contains(key), "\(listed.out)")

        let a = try LiveServer(store: storeA, env: env, extra: ["--journal", url, "--node", "a"])
        try eventually("node a to own every partition") { try partitions(a) == 8 }
        let users = (0..<8).map { "u\($0)" }
        var before: [String: NSDictionary] = [:]
        var pastBefore: [String: NSDictionary] = [:]
        for user in users {
            let r = try a.callBlocking("POST", "/v1/users/\(user)/observations", key: key, raw: Data(#"{"text":"I am allergic to shellfish and I live in Lisbon","at":"2026-03-01T10:00:00Z"}"#.utf8))
            #expect(r.status == 201, "\(r.text)")
            let t = try get(a.base + "/v1/users/\(user)/tiers", key: key)
            #expect(t.status == 200)
            before[user] = t.body as NSDictionary
            // A second observation, so that as of the first one's time differs from now.
            _ = try a.callBlocking("POST", "/v1/users/\(user)/observations", key: key, raw: Data(#"{"text":"My sister Marta visits in May","at":"2026-03-01T11:00:00Z"}"#.utf8))
            let past = try get(a.base + "/v1/users/\(user)/tiers?as_of=2026-03-01T10:30:00Z", key: key)
            #expect(past.status == 200, "as-of on a node: \(past.body)")
            pastBefore[user] = past.body as NSDictionary
            before[user] = try get(a.base + "/v1/users/\(user)/tiers", key: key).body as NSDictionary
            #expect(pastBefore[user] != before[user])
        }
        #expect(try get(a.base + "/v1/users/u0/journal", key: key).status == 403, "the journal page needs journal:read")
        let auditor = try HTTPTests().key(env.merging(["PSM_STORE": storeA]) { $1 }, tenant: "acme", scopes: "journal:read")
        let page = try get(a.base + "/v1/users/u0/journal?limit=100", key: auditor)
        let events = page.body["events"] as? [[String: Any]] ?? []
        #expect(page.status == 200 && events.filter { $0["type"] as? String == "observation" }.count == 2, "the node serves the journal page from PostgreSQL: \(page.body)")
        let replay = try a.callBlocking("POST", "/v1/users/u0/replay-verify", key: auditor)
        #expect(replay.status == 200 && replay.json["divergent"] as? Int == 0 && replay.json["commands"] as? Int == 2, "replay-verify on a node: \(replay.text)")

        // The auditor's replay of the whole journal of record, user by user, and of one user.
        var rp = try cli.run(["replay", "--verify", "--journal", url, "--json"], env: env)
        #expect(rp.status == 0, "\(rp.err)")
        var rj = try #require(try JSONSerialization.jsonObject(with: Data(rp.out.utf8)) as? [String: Any], "\(rp.out)")
        #expect(rj["users"] as? Int == 8 && rj["commands"] as? Int == 16 && rj["divergent"] as? Int == 0 && rj["backend"] as? String == "postgres", "\(rp.out)")
        rp = try cli.run(["replay", "--verify", "--journal", url, "--tenant", "acme", "--user", "u3", "--json"], env: env)
        rj = try #require(try JSONSerialization.jsonObject(with: Data(rp.out.utf8)) as? [String: Any], "\(rp.out)")
        #expect(rp.status == 0 && rj["users"] as? Int == 1 && rj["commands"] as? Int == 2 && rj["checked"] as? Int ?? 0 >= 2, "\(rp.out) \(rp.err)")
        rp = try cli.run(["replay", "--verify", "--journal", url, "--tenant", "acme", "--user", "nobody"], env: env)
        #expect(rp.status == 64 && rp.err.contains("nobody"), "\(rp.err)")

        // Tamper evidence on the journal of record: a signed tree head of the tenant, the journal
        // verified against it, and a node's inclusion proof of a memory's source in that same tree.
        let headFile = root + "/acme-head.json"
        var th = try cli.run(["tree-head", "--journal", url, "--store", root + "/auditor", "--tenant", "acme", "--out", headFile], env: env)
        #expect(th.status == 0, "\(th.err)")
        let head = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: headFile))) as? [String: Any])
        #expect(head["tree_size"] as? Int ?? 0 >= 16, "\(head)")
        th = try cli.run(["verify", "--journal", url, "--against", headFile, "--json"], env: env)
        let vj = try #require(try JSONSerialization.jsonObject(with: Data(th.out.utf8)) as? [String: Any], "\(th.out) \(th.err)")
        #expect(th.status == 0 && (vj["tree_head"] as? [String: Any])?["extends"] as? Bool == true, "\(th.out)")
        let episodic = ((before["u0"]?["tiers"] as? [String: Any])?.values.compactMap { $0 as? [[String: Any]] }.joined()).map(Array.init) ?? []
        let memory = try #require(episodic.first?["id"] as? String, "u0 has a memory: \(String(describing: before["u0"]))")
        let prov = try get(a.base + "/v1/users/u0/memories/\(memory)/provenance?proof=true", key: key)
        let proofs = prov.body["proofs"] as? [[String: Any]] ?? []
        #expect(prov.status == 200 && !proofs.isEmpty, "a node proves inclusion from PostgreSQL: \(prov.body)")
        for p in proofs {
            #expect(p["root"] as? String == head["root"] as? String && p["tree_size"] as? Int == head["tree_size"] as? Int, "the proof is in the signed tree: \(p)")
        }

        let b = try LiveServer(store: storeB, env: env, extra: ["--journal", url, "--node", "b"])
        try eventually("the partitions to split") { let (pa, pb) = (try partitions(a), try partitions(b)); return pb > 0 && pa + pb == 8 }
        var redirected = 0
        for user in users {
            // A partition between owners answers 503 "unowned" for a moment (the old owner let go, the
            // new one is still adopting it): a client retries.
            var r = try get(a.base + "/v1/users/\(user)/tiers", key: key)
            try eventually("\(user)'s partition to settle") {
                if r.status != 503 { return true }
                #expect((r.body["error"] as? [String: Any])?["code"] as? String == "unowned")
                r = try get(a.base + "/v1/users/\(user)/tiers", key: key)
                return false
            }
            if r.status == 307 {
                redirected += 1
                let location = try #require(r.location)
                #expect(location == b.base + "/v1/users/\(user)/tiers")
                let there = try get(location, key: key)
                #expect(there.status == 200 && there.body as NSDictionary == before[user], "\(user) on b answers as a did")
            } else {
                #expect(r.status == 200 && r.body as NSDictionary == before[user])
            }
        }
        #expect(redirected > 0 && redirected < 8, "rendezvous hashing moved some users to b: \(redirected)")

        // a dies without a word; b takes every partition and answers for every user as before.
        kill(a.process.processIdentifier, SIGKILL)
        a.process.waitUntilExit()
        try eventually("node b to take every partition") { try partitions(b) == 8 }
        for user in users {
            let r = try get(b.base + "/v1/users/\(user)/tiers", key: key)
            #expect(r.status == 200 && r.body as NSDictionary == before[user], "\(user) after a died")
            let past = try get(b.base + "/v1/users/\(user)/tiers?as_of=2026-03-01T10:30:00Z", key: key)
            #expect(past.status == 200 && past.body as NSDictionary == pastBefore[user], "\(user) as of a past time, after a died")
        }
        // b keeps writing for a's former users.
        let w = try b.callBlocking("POST", "/v1/users/u0/observations", key: key, raw: Data(#"{"text":"I started learning the cello","at":"2026-03-02T10:00:00Z"}"#.utf8))
        #expect(w.status == 201, "\(w.text)")
        // A revoked cluster key stops working on the nodes within a round or two.
        let revoked = try cli.run(["keys", "revoke", "--journal", url, String(key.split(separator: "_")[1])], env: env)
        #expect(revoked.status == 0, "\(revoked.err)")
        try eventually("the revoked key to be refused") { try get(b.base + "/v1/users/u0/tiers", key: key).status == 401 }
        #expect(try cli.run(["keys", "revoke", "--journal", url, "ffffffffffffffff"], env: env).status == 64)
        #expect(b.stop() == 0)
    }
}
