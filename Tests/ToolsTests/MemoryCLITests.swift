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

    @Test func verifyProjectionsChecksInvariantsAndReportsAnomalies() async throws {
        let (store, _, _) = try await makeStore()
        defer { try? FileManager.default.removeItem(atPath: store) }
        let ok = try cli.run(["verify", "--projections", "--store", store, "--json"])
        #expect(ok.status == 0, "\(ok.err)")
        let p = try #require(try cli.json(ok.out)["projections"] as? [String: Any])
        #expect(p["users"] as? Int == 2 && (p["problems"] as? [String])?.isEmpty == true && (p["anomalies"] as? [String])?.isEmpty == true)
        // A decision the fold cannot apply (a gate for an observation that does not exist) is reported.
        let j = try Journal(directory: store + "/journal")
        let bad = MemoryEvent.gated(.init(decision: .baseline, observation: ID128(high: 9, low: 9), kept: false))
        _ = try j.appendBlocking([AppendRequest(stream: try UserRef(tenant: "acme", user: "alice").stream,
            events: [EventData(id: ID128(high: 9, low: 10), type: bad.type.rawValue, time: 1_767_225_600_000_000 + 100 * 86_400_000_000, payload: bad.payload())])])
        j.close()
        let failed = try cli.run(["verify", "--projections", "--store", store])
        #expect(failed.status == 1 && failed.out.contains("1 anomalies") && failed.out.contains("unknown observation"), "\(failed.out)")
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

/// observe / ingest / recall / feedback / sleep / replay through the CLI, as an app developer would.
@Suite struct WriteCLITests {
    let cli = CLITests()

    @Test func ingestRecallFeedbackSleepReplay() throws {
        let store = NSTemporaryDirectory() + "psm-cli-write-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: store) }
        let env = ["PSM_STORE": store, "PSM_TENANT": "acme"]
        let file = store + ".jsonl"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let good = [
            #"{"text":"I keep my passport in the blue folder","speaker":"Ana","source_id":"t1","at":"2026-02-01T10:00:00Z","id":"0000000000000000000000000000a001"}"#,
            #"{"text":"We booked flights to Reykjavik for June","speaker":"Ana","source_id":"t2","id":"0000000000000000000000000000a002"}"#,
        ]
        try (good + [#"{"text":"oops","colour":"red"}"#, #"{"text":"never reached"}"#]).joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let bad = try cli.run(["ingest", file, "--user", "ana", "--json"], env: env)
        #expect(bad.status == 65 && bad.err.contains(".jsonl:3") && bad.err.contains("colour"), "\(bad.err)")
        // The file is checked before anything is written; fixed, it ingests, and again it is exactly-once.
        try good.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let first = try cli.json(try cli.run(["ingest", file, "--user", "ana", "--json"], env: env).out)
        #expect(first["recorded"] as? Int == 2 && first["kept"] as? Int == 2)
        let again = try cli.json(try cli.run(["ingest", file, "--user", "ana", "--json"], env: env).out)
        #expect(again["recorded"] as? Int == 0 && again["duplicates"] as? Int == 2)

        let obs = try cli.run(["observe", "--user", "ana", "--speaker", "Ana", "--at", "2026-02-02T09:00:00Z", "--json", "ok lol"], env: env)
        #expect(obs.status == 0, "\(obs.err)")
        #expect(try cli.json(obs.out)["kept"] as? Bool == false)
        let back = try cli.run(["observe", "--user", "ana", "--at", "2026-01-01T00:00:00Z", "too early"], env: env)
        #expect(back.status == 64 && back.err.contains("2026-01-01"), "\(back.err)")

        let recall = try cli.run(["recall", "--user", "ana", "--at", "2026-02-03T00:00:00Z", "--k", "1", "--json", "where is the passport kept?"], env: env)
        #expect(recall.status == 0, "\(recall.err)")
        let r = try cli.json(recall.out)
        let top = try #require((r["memories"] as? [[String: Any]])?.first)
        #expect((top["text"] as? String)?.contains("passport") == true && top["source_ids"] as? [String] == ["t1"])
        let recallID = try #require(r["recall"] as? String), memoryID = try #require(top["memory"] as? String)
        let fb = try cli.run(["feedback", "--user", "ana", "--recall", recallID, "--memory", memoryID, "--kind", "helped", "--at", "2026-02-03T00:01:00Z", "--json"], env: env)
        #expect(fb.status == 0, "\(fb.err)")
        let wrongKind = try cli.run(["feedback", "--user", "ana", "--recall", recallID, "--memory", memoryID, "--kind", "great"], env: env)
        #expect(wrongKind.status == 64 && wrongKind.err.contains("great"))

        let sleep = try cli.run(["sleep", "--at", "2026-02-04T00:00:00Z", "--json"], env: env)
        #expect(sleep.status == 0, "\(sleep.err)")
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(sleep.out.utf8)) as? [[String: Any]])
        #expect(entries.first?["user"] as? String == "ana" && (entries.first?["decisions"] as? [String: Int])?["encoded"] == 2)

        let replay = try cli.run(["replay", "--verify", "--json"], env: env)
        #expect(replay.status == 0, "\(replay.err)")
        let rep = try cli.json(replay.out)
        #expect(rep["divergent"] as? Int == 0 && rep["commands"] as? Int == 6)
    }
}
