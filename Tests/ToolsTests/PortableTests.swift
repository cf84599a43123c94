import Foundation
import Journal
import Testing

/// psm journal export / import and psm backup: copies that verify and rebuild the same state.
@Suite struct PortableTests {
    let cli = CLITests()

    /// A store with memory events (through the CLI) and test events compressed with a trained dictionary.
    func makeStore() throws -> (String, [String: String]) {
        let store = NSTemporaryDirectory() + "psm-portable-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let env = ["PSM_STORE": store, "PSM_TENANT": "acme", "PSM_HOME": store + "-home", "PSM_MODEL": "", "PSM_MINILM_DIR": ""]
        let file = store + ".jsonl"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let lines = (0..<30).map { i in
            #"{"text":"Turn \#(i): we planned the lake house trip and the half marathon for week \#(i % 7)","source_id":"t\#(i)","at":"2026-02-01T10:\#(String(format: "%02d", i)):00Z"}"#
        }
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let ingest = try cli.run(["ingest", file, "--user", "ana"], env: env)
        #expect(ingest.status == 0, "\(ingest.err)")
        let j = try Journal(directory: store + "/journal")
        func add(_ i: Int) throws {
            var w = PayloadWriter()
            w.string(3, "Turn \(i): we talked about the lake house and the half marathon plan for \(i % 12) weeks, again and again.")
            _ = try j.appendBlocking([AppendRequest(stream: try StreamName(tenant: "acme", name: "log-\(i % 3)"),
                events: [EventData(id: EventID(high: 6, low: UInt64(i + 1)), type: 0xFF02, time: Int64(i), payload: w.bytes)])])
        }
        for i in 0..<200 { try add(i) }
        j.close()
        #expect(try cli.run(["journal", "train-dictionary", "--samples", "200", "--size", "2048"], env: env).status == 0)
        let j2 = try Journal(directory: store + "/journal")
        for i in 200..<260 {
            var w = PayloadWriter()
            w.string(3, "Turn \(i): we talked about the lake house and the half marathon plan for \(i % 12) weeks, again and again.")
            _ = try j2.appendBlocking([AppendRequest(stream: try StreamName(tenant: "acme", name: "log-\(i % 3)"),
                events: [EventData(id: EventID(high: 6, low: UInt64(i + 1)), type: 0xFF02, time: Int64(i), payload: w.bytes)])])
        }
        j2.close()
        return (store, env)
    }

    @Test func exportImportReproducesTheJournalAndState() throws {
        let (store, env) = try makeStore()
        let out = store + ".pj", restored = store + "-restored"
        defer { for p in [store, out, restored, store + "-home"] { try? FileManager.default.removeItem(atPath: p) } }
        let exp = try cli.run(["journal", "export", "--out", out, "--json"], env: env)
        #expect(exp.status == 0, "\(exp.err)")
        let e = try cli.json(exp.out)
        #expect(e["records"] as? Int == 320 && e["dictionaries"] as? Int == 1 && e["streams"] as? Int == 4, "\(exp.out)")

        let imp = try cli.run(["journal", "import", out, "--store", restored, "--json"], env: env)
        #expect(imp.status == 0, "\(imp.err)")
        let original = try cli.run(["verify", "--json", "--heads"], env: env).out
        let copy = try cli.run(["verify", "--store", restored, "--json", "--heads"], env: env).out
        #expect(original == copy, "positions, revisions and chain heads are identical")
        let hash = try cli.json(try cli.run(["state-hash", "--json"], env: env).out)["state_hash"] as? String
        #expect(try cli.json(imp.out)["state_hash"] as? String == hash)
        // Records are byte for byte the same, dictionary-compressed ones included.
        let a = try Journal(directory: store + "/journal"), b = try Journal(directory: restored + "/journal")
        defer { a.close(); b.close() }
        let ra = try a.read(from: 1, limit: 1000), rb = try b.read(from: 1, limit: 1000)
        #expect(ra.map(\.record) == rb.map(\.record) && ra.count == 320)
        #expect(ra.contains { $0.header.dictionaryID == 1 })

        // An existing target is refused.
        let again = try cli.run(["journal", "import", out, "--store", restored], env: env)
        #expect(again.status == 64 && again.err.contains("exists"))
    }

    @Test func damagedExportsAreRefusedAndCreateNothing() throws {
        let (store, env) = try makeStore()
        let out = store + ".pj"
        defer { for p in [store, out, store + "-home"] { try? FileManager.default.removeItem(atPath: p) } }
        #expect(try cli.run(["journal", "export", "--out", out], env: env).status == 0)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: out))
        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x10
        let cases: [(String, Data)] = [("flipped", flipped), ("truncated", bytes.prefix(bytes.count - 40)), ("foreign", Data("hello, this is not a journal".utf8)),
                                       ("no end", bytes.prefix(bytes.count - 53))]
        for (name, data) in cases {
            let path = out + "." + name, target = store + "-" + name
            try data.write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let r = try cli.run(["journal", "import", path, "--store", target], env: env)
            #expect(r.status == 65, "\(name): \(r.status) \(r.err)")
            #expect(!r.err.isEmpty && !r.err.contains("lake house"), "\(name): \(r.err)")
            #expect(!FileManager.default.fileExists(atPath: target) && !FileManager.default.fileExists(atPath: target + ".importing"), "\(name) left a store behind")
        }
    }

    @Test func backupOfALiveStoreVerifiesAndOpens() throws {
        let (store, env) = try makeStore()
        let dir = store + "-backup"
        defer { for p in [store, dir, store + "-home"] { try? FileManager.default.removeItem(atPath: p) } }
        _ = try cli.run(["keys", "create", "--tenant", "acme", "--scopes", "admin"], env: env)
        // A writer keeps appending while the backup runs.
        let done = Flag()
        let writer = Thread {
            guard let j = try? Journal(directory: store + "/journal") else { return }
            var i = 0
            while !done.value {
                var w = PayloadWriter()
                w.uint(1, UInt64(i))
                _ = try? j.appendBlocking([AppendRequest(stream: try! StreamName(tenant: "acme", name: "live"), events: [EventData(id: EventID(high: 9, low: UInt64(i + 1)), type: 0xFF02, time: Int64(i), payload: w.bytes)])])
                i += 1
            }
            j.close()
        }
        writer.start()
        let b = try cli.run(["backup", dir, "--json"], env: env)
        done.value = true
        Thread.sleep(forTimeInterval: 0.2)
        #expect(b.status == 0, "\(b.err)")
        #expect(try cli.json(b.out)["verified"] as? Bool == true)
        #expect(FileManager.default.fileExists(atPath: dir + "/keys.json"))
        let v = try cli.run(["verify", "--store", dir, "--projections"], env: env)
        #expect(v.status == 0, "\(v.out) \(v.err)")
        let tiers = try cli.run(["tiers", "--store", dir, "--user", "ana", "--json"], env: env)
        #expect(tiers.status == 0 && tiers.out.contains("lake house"), "\(tiers.err)")
        #expect(try cli.run(["backup", dir], env: env).status == 64, "an existing directory is refused")
    }
}

final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var v = false
    var value: Bool {
        get { lock.lock(); defer { lock.unlock() }; return v }
        set { lock.lock(); v = newValue; lock.unlock() }
    }
}
