import Foundation
import Journal
import Testing

/// psm tree-head, psm verify --against and psm provenance --proof, as an auditor uses them.
@Suite struct TreeHeadCLITests {
    let cli = CLITests()

    @Test func signedHeadVerifiesAndProvenanceCarriesInclusionProofs() throws {
        let store = NSTemporaryDirectory() + "psm-sth-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: store) }
        let env = ["PSM_STORE": store, "PSM_TENANT": "acme", "PSM_HOME": store + "/home", "PSM_MODEL": "", "PSM_MINILM_DIR": ""]
        let file = store + "/t.jsonl"
        try (0..<6).map { #"{"text":"Turn \#($0): we planned the lake house trip and the marathon","source_id":"t\#($0)","at":"2026-02-01T10:0\#($0):00Z"}"# }
            .joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try cli.run(["ingest", file, "--user", "ana"], env: env).status == 0)
        #expect(try cli.run(["ingest", file, "--user", "ben", "--tenant", "other"], env: env).status == 0)

        let headFile = store + "/head.json"
        let th = try cli.run(["tree-head", "--tenant", "acme", "--out", headFile], env: env)
        #expect(th.status == 0, "\(th.err)")
        let head = try JSONDecoder().decode(TreeHead.self, from: Data(contentsOf: URL(fileURLWithPath: headFile)))
        #expect(head.tree_size == 12 && head.signatureValid, "6 observations and 6 gate decisions of tenant acme only")

        let ok = try cli.run(["verify", "--against", headFile, "--public-key", head.public_key, "--json"], env: env)
        #expect(ok.status == 0, "\(ok.out) \(ok.err)")
        #expect(((try cli.json(ok.out))["tree_head"] as? [String: Any])?["extends"] as? Bool == true)

        // Provenance with proofs: each source observation's record is in the signed tree.
        let tiers = try cli.json(try cli.run(["tiers", "--user", "ana", "--json"], env: env).out)
        let memory = try #require(((tiers["tiers"] as? [String: [[String: Any]]])?["working"]?.first)?["id"] as? String)
        let prov = try cli.run(["provenance", memory, "--user", "ana", "--proof", "--json"], env: env)
        #expect(prov.status == 0, "\(prov.err)")
        let proofs = try #require(try cli.json(prov.out)["proofs"] as? [[String: Any]])
        #expect(proofs.count == 1)
        for p in proofs {
            #expect(p["root"] as? String == head.root && p["tree_size"] as? Int == head.tree_size)
            let path = (p["path"] as? [String] ?? []).map { hexToBytes($0) }
            let ok = Merkle.verifyInclusion(leaf: hexToBytes(p["leaf_hash"] as! String), index: p["leaf_index"] as! Int, size: head.tree_size, proof: path, root: hexToBytes(head.root))
            #expect(ok)
            // The leaf is the record at that position.
            let j = try Journal(directory: store + "/journal")
            let rec = try #require(try j.read(from: UInt64(p["position"] as! Int), limit: 1).first)
            j.close()
            #expect(hexBytes(Merkle.leafHash(rec.record)) == p["leaf_hash"] as? String)
        }

        // An edited head or another signer is refused, with exit 1.
        var forged = head
        forged.root = String(repeating: "0", count: 64)
        try JSONEncoder().encode(forged).write(to: URL(fileURLWithPath: headFile))
        let bad = try cli.run(["verify", "--against", headFile], env: env)
        #expect(bad.status == 1 && bad.out.contains("signature"), "\(bad.out)")
        try JSONEncoder().encode(head).write(to: URL(fileURLWithPath: headFile))
        let pinned = try cli.run(["verify", "--against", headFile, "--public-key", String(repeating: "ab", count: 32)], env: env)
        #expect(pinned.status == 1 && pinned.out.contains("pinned"), "\(pinned.out)")
        // The journal grows: the old head is still extended.
        #expect(try cli.run(["observe", "--user", "ana", "--at", "2026-03-01T00:00:00Z", "We also adopted a cat named Pixel"], env: env).status == 0)
        #expect(try cli.run(["verify", "--against", headFile], env: env).status == 0)
    }

    func hexToBytes(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }
}
