import Foundation
import Journal
import Projections
import Testing

/// SIGKILL during `psm adopt` (model adoption): re-running the same command finishes it; the store
/// then is the adopted one with exactly one adoption event, and the previous store is kept intact.
@Suite struct AdoptCrashTests {
    let cli = CLITests()

    @Test func killedAdoptionsResumeAndLoseNothing() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["PSM_CRASH_KILLS"] ?? "") ?? 30
        let root = NSTemporaryDirectory() + "psm-adopt-crash-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let env = ["PSM_TENANT": "acme", "PSM_HOME": root + "/home", "PSM_MODEL": "", "PSM_MINILM_DIR": ""]
        // A template store, and a candidate made from its export plus a model activation (what
        // psm reconsolidate leaves), so the test needs no model files.
        let template = root + "/template"
        try (0..<40).map { #"{"text":"turn \#($0): the garden, the boat and the lake house plan","at":"2026-02-01T10:\#(String(format: "%02d", $0)):00Z"}"# }
            .joined(separator: "\n").write(toFile: root + "/t.jsonl", atomically: true, encoding: .utf8)
        #expect(try cli.run(["ingest", root + "/t.jsonl", "--user", "ana", "--store", template], env: env).status == 0)
        #expect(try cli.run(["journal", "export", "--store", template, "--out", root + "/t.pj"], env: env).status == 0)
        let candidateTemplate = root + "/candidate-template"
        #expect(try cli.run(["journal", "import", root + "/t.pj", "--store", candidateTemplate], env: env).status == 0)
        let j = try Journal(directory: candidateTemplate + "/journal")
        let activation = MemoryEvent.modelActivation(.init(model: [UInt8](repeating: 0xAB, count: 32), name: "reconsolidation"))
        _ = try j.appendBlocking([AppendRequest(stream: UserRef.modelStream, events: [EventData(id: ID128(high: 0xADD, low: 1), type: activation.type.rawValue, time: 1_800_000_000_000_000, payload: activation.payload())])])
        j.close()

        var rng = SplitMix64(seed: 0xAD0B7)
        var interrupted = 0
        for round in 0..<rounds {
            let dir = root + "/r\(round)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let store = dir + "/store", candidate = dir + "/candidate"
            try FileManager.default.copyItem(atPath: template, toPath: store)
            try FileManager.default.copyItem(atPath: candidateTemplate, toPath: candidate)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CLITests.psm)
            p.arguments = ["adopt", candidate, "--store", store]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            usleep(UInt32(rng.next() % 120_000))
            if p.isRunning { interrupted += 1 }
            // Only a running child: a finished one is reaped at once and its pid may already belong to
            // another test's process (a server killed this way made a parallel HTTP test fail).
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            // Finish it (or see it was finished).
            let again = try cli.run(["adopt", candidate, "--store", store, "--json"], env: env)
            let finished = FileManager.default.fileExists(atPath: store + ".adopting") == false && !FileManager.default.fileExists(atPath: candidate)
            #expect(again.status == 0 || (finished && again.err.contains("not a store")), "round \(round): \(again.err)")
            #expect(!FileManager.default.fileExists(atPath: store + ".adopting"), "round \(round): the intent file must be gone")
            #expect(!FileManager.default.fileExists(atPath: candidate), "round \(round): the candidate was moved in")
            let verify = try cli.run(["verify", "--store", store, "--projections"], env: env)
            #expect(verify.status == 0, "round \(round): \(verify.out) \(verify.err)")
            let models = try cli.json("{\"e\":" + (try cli.run(["journal", "dump", "--store", store, "--stream", "psm/models", "--json"], env: env)).out + "}")
            let events = ((models["e"] as? [String: Any])?["events"] as? [[String: Any]]) ?? []
            #expect(events.count == 2, "round \(round): reconsolidation + exactly one adoption, got \(events.count)")
            let aside = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("store.replaced-") }
            #expect(aside.count == 1, "round \(round): the previous store is kept")
            if let a = aside.first {
                #expect(try cli.run(["verify", "--store", dir + "/" + a], env: env).status == 0)
            }
            let tiers = try cli.run(["tiers", "--store", store, "--user", "ana", "--json"], env: env)
            #expect(tiers.status == 0 && tiers.out.contains("lake house"), "round \(round): \(tiers.err)")
            try? FileManager.default.removeItem(atPath: dir)
        }
        print("adoption crash test: \(rounds) rounds, \(interrupted) killed mid-adoption")
    }
}
