import Foundation
import Testing

/// Erasure with an immutable journal (crypto-shredding): canaries planted in a user's turns, queries
/// and notes are found nowhere in the store, nor in backups and exports made after the erasure.
@Suite struct ErasureTests {
    let cli = CLITests()
    static let canaries = ["Zyqxcanary4417", "Wobblefrond Street 88", "vexmarrow-pin-5521"]

    /// Every file under `roots` whose bytes contain one of `needles` (exact or lower-cased).
    func scan(_ roots: [String], _ needles: [String]) -> [String] {
        var hits: [String] = []
        let patterns = Set(needles.flatMap { [$0, $0.lowercased()] }).map { Data($0.utf8) }
        for root in roots {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir) else { continue }
            let files = isDir.boolValue ? (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).map { root + "/" + $0 } : [root]
            for f in files {
                guard let data = FileManager.default.contents(atPath: f) else { continue }
                for p in patterns where data.range(of: p) != nil { hits.append("\(f): \(String(decoding: p, as: UTF8.self))") }
            }
        }
        return hits
    }

    @Test func erasedUserLeavesNoTraceAndTheJournalStillVerifies() throws {
        let store = NSTemporaryDirectory() + "psm-erase-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        let pre = store + "-pre", post = store + "-post", exported = store + "-post.pj"
        defer { for p in [store, pre, post, exported] { try? FileManager.default.removeItem(atPath: p) } }
        var env = HTTPTests().environment(store)
        env["PSM_TENANT"] = "acme"
        let c = Self.canaries
        let file = store + "/ana.jsonl"
        try [
            #"{"text":"My locker code is \#(c[0]) and I change it every spring","at":"2026-02-01T10:00:00Z"}"#,
            #"{"text":"I moved to \#(c[1]) near the old harbour market","at":"2026-02-01T10:01:00Z"}"#,
            #"{"text":"The garage door uses \#(c[2]) since the repair","at":"2026-02-01T10:02:00Z"}"#,
            #"{"text":"We booked flights to Reykjavik for June","at":"2026-02-01T10:03:00Z"}"#,
        ].joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try cli.run(["ingest", file, "--user", "ana"], env: env).status == 0)
        try #"{"text":"Bob keeps bees on the roof of the library","at":"2026-02-01T10:00:00Z"}"#.write(toFile: store + "/bob.jsonl", atomically: true, encoding: .utf8)
        #expect(try cli.run(["ingest", store + "/bob.jsonl", "--user", "bob"], env: env).status == 0)
        let recall = try cli.run(["recall", "--user", "ana", "--at", "2026-02-02T00:00:00Z", "--json", "what is \(c[0])?"], env: env)
        #expect(recall.status == 0, "\(recall.err)")
        let r = try cli.json(recall.out)
        let recallID = try #require(r["recall"] as? String), memoryID = try #require((r["memories"] as? [[String: Any]])?.first?["memory"] as? String)
        #expect(try cli.run(["feedback", "--user", "ana", "--recall", recallID, "--memory", memoryID, "--kind", "corrected", "--note", "it is \(c[2]) now", "--at", "2026-02-02T00:01:00Z"], env: env).status == 0)
        #expect(try cli.run(["sleep", "--user", "ana", "--at", "2026-02-03T00:00:00Z"], env: env).status == 0)
        try FileManager.default.removeItem(atPath: file)
        try FileManager.default.removeItem(atPath: store + "/bob.jsonl")

        // The journal holds the user's payloads encrypted; the projections (and so a backup) hold text.
        #expect(scan([store + "/journal"], c).isEmpty, "journal payloads must be encrypted: \(scan([store + "/journal"], c))")
        #expect(!scan([store], c).isEmpty, "the scan must see the projections' copy before erasure")
        #expect(try cli.run(["backup", pre], env: env).status == 0)
        #expect(!scan([pre], c).isEmpty, "a backup taken before erasure still holds the user (documented)")

        let erase = try cli.run(["erase", "--user", "ana", "--reason", "asked", "--yes", "--json"], env: env)
        #expect(erase.status == 0, "\(erase.err)")
        #expect(try cli.run(["backup", post], env: env).status == 0)
        #expect(try cli.run(["journal", "export", "--out", exported], env: env).status == 0)
        let hits = scan([store, post, exported], c)
        #expect(hits.isEmpty, "canaries after erasure: \(hits)")

        // The journal still verifies (the chain covers the encrypted bytes); nothing diverges on replay;
        // a rebuild reaches the same state; the other user is intact; the erased one answers 'erased'.
        let verify = try cli.run(["verify", "--json"], env: env)
        #expect(verify.status == 0, "\(verify.out) \(verify.err)")
        let v = try cli.json(verify.out)
        #expect((v["shredded_events"] as? Int ?? 0) > 0 && (v["encrypted_events"] as? Int ?? 0) > (v["shredded_events"] as? Int ?? 0), "\(verify.out)")
        let rebuild = try cli.run(["rebuild", "--json"], env: env)
        let rebuilt = try cli.json(rebuild.out)["equal"] as? Bool
        #expect(rebuild.status == 0 && rebuilt == true, "\(rebuild.out) \(rebuild.err)")
        let replay = try cli.run(["replay", "--verify", "--json"], env: env)
        let divergent = try cli.json(replay.out)["divergent"] as? Int
        #expect(replay.status == 0 && divergent == 0, "\(replay.out) \(replay.err)")
        let bob = try cli.run(["tiers", "--user", "bob", "--json"], env: env)
        #expect(bob.status == 0 && bob.out.contains("bees"), "\(bob.err)")
        let ana = try cli.run(["tiers", "--user", "ana"], env: env)
        #expect(ana.status == 64 && ana.err.contains("erased"), "\(ana.err)")
        #expect(try cli.run(["observe", "--user", "ana", "I am back with a new story"], env: env).status != 0, "writes to an erased user are refused")
        // Sleep names the user it cannot sleep; the tenant-wide sweep passes over the erased one.
        let sleepAna = try cli.run(["sleep", "--user", "ana", "--at", "2026-02-05T00:00:00Z"], env: env)
        #expect(sleepAna.status != 0 && sleepAna.err.contains("erased"), "\(sleepAna.status) \(sleepAna.out) \(sleepAna.err)")
        let sleepNobody = try cli.run(["sleep", "--user", "nobody", "--at", "2026-02-05T00:00:00Z"], env: env)
        #expect(sleepNobody.status != 0 && sleepNobody.err.contains("/nobody has no events"), "\(sleepNobody.status) \(sleepNobody.out) \(sleepNobody.err)")
        let sweep = try cli.run(["sleep", "--at", "2026-02-05T00:00:00Z", "--json"], env: env)
        #expect(sweep.status == 0 && sweep.out.contains("\"bob\"") && !sweep.out.contains("\"ana\""), "\(sweep.out) \(sweep.err)")
        // An erased user's data cannot come back from the post-erasure copies either.
        let restored = store + "-restored"
        defer { try? FileManager.default.removeItem(atPath: restored) }
        #expect(try cli.run(["journal", "import", exported, "--store", restored], env: env).status == 0)
        #expect(scan([restored], c).isEmpty)
        #expect(try cli.run(["tiers", "--store", restored, "--user", "bob", "--json"], env: env).out.contains("bees"))
    }
}
