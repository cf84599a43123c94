import Foundation
import Testing

/// `psm cluster`, `psm verify --journal` and `psm bench cluster` against the test PostgreSQL server.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["PSM_TEST_POSTGRES"].map { !$0.isEmpty } ?? false, "needs PSM_TEST_POSTGRES"))
struct ClusterCLITests {
    let cli = CLITests()

    /// A database name on the test server that does not exist yet (psm creates it).
    func freshURL() throws -> String {
        var u = try #require(URLComponents(string: ProcessInfo.processInfo.environment["PSM_TEST_POSTGRES"] ?? ""))
        u.path = "/psm_cli_\(UInt64.random(in: 0...UInt64.max))"
        return try #require(u.string)
    }

    func json(_ s: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], "not a JSON object: \(s)")
    }

    @Test func initStatusVerifyAndErrors() throws {
        let url = try freshURL()
        var r = try cli.run(["cluster", "init", "--journal", url, "--partitions", "12", "--json"])
        #expect(r.status == 0, "\(r.err)")
        var j = try json(r.out)
        #expect(j["partitions"] as? Int == 12 && j["database_created"] as? Bool == true && j["schema_version"] as? Int == 2)
        r = try cli.run(["cluster", "init", "--json"], env: ["PSM_JOURNAL": url])
        #expect(r.status == 0, "$PSM_JOURNAL works: \(r.err)")
        #expect(try json(r.out)["database_created"] as? Bool == false, "init is safe to repeat")
        r = try cli.run(["cluster", "init", "--journal", url, "--partitions", "8"])
        #expect(r.status == 64 && r.err.contains("12 partitions, not 8"), "\(r.err)")
        r = try cli.run(["cluster", "status", "--journal", url, "--json"])
        #expect(r.status == 0, "\(r.err)")
        j = try json(r.out)
        #expect((j["nodes"] as? [Any])?.isEmpty == true && (j["unowned"] as? [Int])?.count == 12 && j["partitions_total"] as? Int == 12)
        r = try cli.run(["verify", "--journal", url, "--json"])
        #expect(r.status == 0, "\(r.err)")
        j = try json(r.out)
        #expect(j["ok"] as? Bool == true && j["backend"] as? String == "postgres" && j["events"] as? Int == 0)
        r = try cli.run(["verify", "--journal", url, "--projections"])
        #expect(r.status == 64 && r.err.contains("--projections"), "\(r.err)")
        r = try cli.run(["cluster", "status"], env: ["PSM_JOURNAL": ""])
        #expect(r.status == 64 && r.err.contains("--journal postgres://"), "\(r.err)")
        r = try cli.run(["verify", "--journal", "mysql://h/db"])
        #expect(r.status == 64 && r.err.contains("mysql://h/db"), "\(r.err)")
        r = try cli.run(["verify", "--journal", "postgres://u:pw@127.0.0.1:1/db"])
        #expect(r.status == 74 && r.err.contains("cannot connect") && !r.err.contains(":pw@"), "\(r.err)")
    }

    @Test func benchClusterJSONHasTheDocumentedKeys() throws {
        let url = try freshURL()
        let r = try cli.run(["bench", "cluster", "--journal", url, "--events", "80", "--rounds", "10", "--partitions", "4", "--takeover-users", "6", "--json"], env: ["PSM_MODEL": "", "PSM_MINILM_DIR": "", "PSM_HOME": NSTemporaryDirectory() + "psm-bench-home-\(getpid())"])
        #expect(r.status == 0, "\(r.err)")
        let b = try json(r.out)
        for key in ["appends_per_s_1", "appends_per_s_8", "lmdb_appends_per_s_1", "lmdb_appends_per_s_8", "takeover_s"] {
            let v = try #require(b[key] as? Double, "missing \(key)")
            #expect(v > 0, "\(key) = \(v)")
        }
        #expect(b.keys.contains("failover_s"))
        #expect(b["acked_lost"] as? Int == 0 && b["duplicates"] as? Int == 0 && b["double_winners"] as? Int == 0)
        #expect(b["acked"] as? Int == 80 + 80 + 10, "events with 1 client, with 8, and one winner per round")
        let t = try #require(b["takeover"] as? [String: Any], "takeover details")
        #expect(t["nodes"] as? Int == 3 && t["users"] as? Int == 6 && t["changed_state"] as? Int == 0, "\(t)")
        #expect((t["moved_users"] as? Int ?? 0) >= 2, "the killed node served the most of 6 users over 3 nodes: \(t)")
        let long = try cli.run(["bench", "cluster", "--long", "--journal", url])
        #expect(long.status == 64 && long.err.contains("--long"), "\(long.err)")
    }

    /// The memory commands with --journal run on the cluster's journal of record from any machine (a
    /// store directory that is only a cache) and answer exactly as the same commands on one store.
    @Test func memoryCommandsOnTheClusterAnswerAsOnOneStore() throws {
        let url = try freshURL()
        #expect(try cli.run(["cluster", "init", "--journal", url, "--partitions", "4"]).status == 0)
        let root = NSTemporaryDirectory() + "psm-cli-cluster-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let env = ["PSM_MODEL": "", "PSM_MINILM_DIR": "", "PSM_HOME": root + "/home", "PSM_JOURNAL": "", "PSM_TENANT": "acme"]
        let single = ["--store", root + "/single"]
        /// Machine `m`'s view of the cluster.
        func on(_ m: String) -> [String] { ["--store", root + "/" + m, "--journal", url] }
        func run(_ args: [String]) throws -> CLITests.Run {
            let r = try cli.run(args, env: env)
            #expect(r.status == 0, "\(args.joined(separator: " ")): \(r.err)")
            return r
        }
        let turns = [
            ("2026-03-01T10:00:00Z", "I keep my passport in the blue folder"),
            ("2026-03-01T10:01:00Z", "My sister Marta visits in May"),
            ("2026-03-01T10:02:00Z", "I am allergic to shellfish"),
        ]
        // The same writes: on one store, and on the cluster from three different machines.
        for (i, (at, text)) in turns.enumerated() {
            _ = try run(["observe", "--user", "ana", "--at", at, "--json", text] + single)
            _ = try run(["observe", "--user", "ana", "--at", at, "--json", text] + on(["m1", "m2", "m3"][i]))
        }
        _ = try run(["recall", "--user", "ana", "--at", "2026-03-01T11:00:00Z", "--json", "passport"] + single)
        let recalled = try run(["recall", "--user", "ana", "--at", "2026-03-01T11:00:00Z", "--json", "passport"] + on("m2"))
        _ = try run(["sleep", "--at", "2026-03-02T03:00:00Z", "--json"] + single)
        let slept = try run(["sleep", "--at", "2026-03-02T03:00:00Z", "--json"] + on("m3"))
        #expect(slept.out.contains("ana"), "sleep finds the tenant's users in the journal of record: \(slept.out)")

        // Every read answers alike, from a machine that wrote only part of it (or nothing).
        for m in ["m1", "m4"] {
            let local = try run(["tiers", "--user", "ana", "--json"] + single).out
            #expect(try run(["tiers", "--user", "ana", "--json"] + on(m)).out == local, "tiers on \(m)")
            let past = try run(["tiers", "--user", "ana", "--as-of", "2026-03-01T10:01:30Z", "--json"] + single).out
            #expect(try run(["tiers", "--user", "ana", "--as-of", "2026-03-01T10:01:30Z", "--json"] + on(m)).out == past, "as-of tiers on \(m)")
            #expect(try run(["export", "--user", "ana"] + on(m)).out == (try run(["export", "--user", "ana"] + single).out), "export on \(m)")
        }
        let memory = try #require((try JSONSerialization.jsonObject(with: Data(recalled.out.utf8)) as? [String: Any])?["memories"] as? [[String: Any]])
            .first?["memory"] as? String
        let id = try #require(memory, "\(recalled.out)")
        #expect(try run(["history", id, "--user", "ana", "--json"] + on("m4")).out == (try run(["history", id, "--user", "ana", "--json"] + single).out))
        #expect(try run(["memory", "show", id, "--user", "ana", "--json"] + on("m4")).out == (try run(["memory", "show", id, "--user", "ana", "--json"] + single).out))
        let prov = try run(["provenance", id, "--user", "ana", "--proof", "--json"] + on("m4")).out
        #expect(prov.contains("\"proofs\"") && prov.contains("leaf_index"), "\(prov)")

        // The audit report from the journal of record plots the same history as the store's (its
        // state hash line differs: one store's whole state against the user's).
        let reportCluster = root + "/cluster.html", reportSingle = root + "/single.html"
        _ = try run(["report", "--user", "ana", "--memory", id, "--out", reportCluster] + on("m4"))
        _ = try run(["report", "--user", "ana", "--memory", id, "--out", reportSingle] + single)
        func withoutHashLine(_ path: String) throws -> [String] {
            try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init).filter { !$0.contains("projection state hash") }
        }
        let clusterReport = try withoutHashLine(reportCluster), singleReport = try withoutHashLine(reportSingle)
        #expect(clusterReport.count > 20 && clusterReport == singleReport, "the report on the cluster")

        // Erasure on one machine is seen from the others.
        _ = try run(["erase", "--user", "ana", "--yes", "--at", "2026-03-03T00:00:00Z"] + on("m2"))
        let after = try cli.run(["tiers", "--user", "ana", "--json"] + on("m1"), env: env)
        #expect(after.status != 0 && after.err.contains("erased"), "\(after.status) \(after.err)")
    }
}
