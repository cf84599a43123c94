import Engine
import Foundation
import Journal
import Projections
import Testing

/// The projection commands run as a user would, against a store written through the engine.
@Suite struct MemoryCLITests {
    let cli = CLITests()

    /// A store with two users, a superseded fact, a recall with feedback and a sleep (rule baseline, no encoder).
    func makeStore() async throws -> (String, ID128, ID128) {
        let root = NSTemporaryDirectory() + "psm-cli-mem-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let engine = try Engine(directory: root)
        let alice = try UserRef(tenant: "acme", user: "alice"), bob = try UserRef(tenant: "acme", user: "bob")
        let t0: Int64 = 1_767_225_600_000_000, hour: Int64 = 3_600_000_000
        let a = try await engine.observe(alice, .init(text: "My favourite climbing gym is Boulderwelt in Munich", session: "s1", speaker: "Alice", sourceID: "m-1"), at: t0)
        _ = try await engine.observe(alice, .init(text: "haha ok", session: "s1"), at: t0 + hour)
        _ = try await engine.observe(bob, .init(text: "My favourite climbing gym is the Castle in London", sourceID: "b-1"), at: t0)
        let r = try await engine.recall(alice, query: "which climbing gym does she like", k: 3, at: t0 + 2 * hour)
        let m = try #require(r.memories.first?.candidate.memory)
        try await engine.feedback(alice, recall: try #require(r.recall), memory: m, kind: .helped, at: t0 + 3 * hour)
        _ = try await engine.sleep(alice, at: t0 + 24 * hour)
        engine.close()
        return (root, try #require(a.memory), m)
    }

    @Test func tiersMemoryHistoryProvenanceRebuildStateHash() async throws {
        let (store, memory, recalled) = try await makeStore()
        defer { try? FileManager.default.removeItem(atPath: store) }
        #expect(memory == recalled)
        let base = ["--store", store, "--tenant", "acme", "--user", "alice"]

        let tiers = try cli.run(["tiers"] + base + ["--json"])
        #expect(tiers.status == 0, "\(tiers.err)")
        let t = try cli.json(tiers.out)
        let counts = try #require(t["counts"] as? [String: Int])
        #expect(counts["episodic"] == 1 && counts["working"] == 0 && counts["sensory"] == 0)
        let episodic = try #require((t["tiers"] as? [String: Any])?["episodic"] as? [[String: Any]])
        #expect(episodic.first?["id"] as? String == memory.description)
        #expect(!tiers.out.contains("Castle"), "bob's memory leaked into alice's tiers")

        // As of before the recall: the memory was still in working memory with recall count 0.
        let early = try cli.run(["memory", "show", memory.description] + base + ["--as-of", "2026-01-01T00:30:00Z", "--json"])
        #expect(early.status == 0, "\(early.err)")
        let e = try cli.json(early.out)
        #expect(e["tier"] as? String == "working" && e["recall_count"] as? Int == 0)
        let now = try cli.json(try cli.run(["memory", "show", memory.description] + base + ["--json"]).out)
        #expect(now["tier"] as? String == "episodic" && now["recall_count"] as? Int == 1 && now["helped"] as? Int == 1)
        #expect((now["strength"] as? Double ?? 0) > 0 && (now["source_ids"] as? [String]) == ["m-1"])

        let history = try cli.run(["history", memory.description] + base + ["--json"])
        #expect(history.status == 0, "\(history.err)")
        let h = try #require(try JSONSerialization.jsonObject(with: Data(history.out.utf8)) as? [[String: Any]])
        #expect(h.map { $0["type"] as? String ?? "" } == ["gated", "recalled", "feedback", "reinforced", "encoded"])
        #expect(h[0]["model"] as? String == String(repeating: "0", count: 64))

        let prov = try cli.run(["provenance", memory.description] + base + ["--json"])
        #expect(prov.status == 0, "\(prov.err)")
        let p = try cli.json(prov.out)
        #expect(p["source_ids"] as? [String] == ["m-1"])
        let human = try cli.run(["provenance", memory.description] + base)
        #expect(human.out.contains("source m-1") && human.out.contains("Boulderwelt"))

        let hash = try cli.json(try cli.run(["state-hash", "--store", store, "--json"]).out)
        let rebuilt = try cli.run(["rebuild", "--store", store, "--json"])
        #expect(rebuilt.status == 0, "\(rebuilt.err)")
        let r = try cli.json(rebuilt.out)
        #expect(r["equal"] as? Bool == true && r["state_hash_after"] as? String == hash["state_hash"] as? String && r["anomalies"] as? Int == 0)
    }

    @Test func badInputNamesTheValue() async throws {
        let (store, memory, _) = try await makeStore()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let base = ["--store", store, "--tenant", "acme"]
        let badID = try cli.run(["memory", "show", "xyz"] + base + ["--user", "alice"])
        #expect(badID.status == 64 && badID.err.contains("xyz"))
        let otherUser = try cli.run(["memory", "show", memory.description] + base + ["--user", "bob"])
        #expect(otherUser.status == 64 && otherUser.err.contains("not found"), "\(otherUser.err)")
        let nobody = try cli.run(["tiers"] + base + ["--user", "nobody"])
        #expect(nobody.status == 64 && nobody.err.contains("nobody"))
        let badTime = try cli.run(["tiers"] + base + ["--user", "alice", "--as-of", "yesterday"])
        #expect(badTime.status == 64 && badTime.err.contains("yesterday"))
        let noStore = try cli.run(["tiers", "--store", store + "-missing", "--user", "alice"])
        #expect(noStore.status == 64 && noStore.err.contains("no store"))
    }
}
