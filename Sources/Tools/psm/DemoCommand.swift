import ArgumentParser
import Engine
import Foundation
import Inference
import Journal
import Projections
import Training

/// The README's main job: the whole engine on an embedded store with the real model.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Ingest a bundled multi-session conversation, sleep, answer questions with provenance, and replay-verify.",
        discussion: """
            Prepares the default PSM model when it is missing (encoder import from $PSM_MINILM_DIR and \
            training, about 3½ minutes on two cores), creates the store, ingests Fixtures/demo/conversation.jsonl (a \
            conversation written for the project) as the memories of one user, sleeping after each session, \
            then asks the questions of Fixtures/demo/questions.txt and shows each answer's memories with \
            weight, tier, type, strength and provenance down to the source turns. Ends with the tiers, replay-verify \
            (every decision re-made and compared) and journal verification. Running it again on the same \
            store skips the ingestion and asks again.

            Example:
              psm demo --store ./psm-store
            """)
    @OptionGroup var store: StoreOptions
    @Option(help: ArgumentHelp("PSM model file (default: $PSM_MODEL, else the default PSM model, built when missing).", valueName: "FILE"))
    var model: String?
    @Option(help: ArgumentHelp("Directory with conversation.jsonl and questions.txt (default: Fixtures/demo).", valueName: "DIR")) var fixtures: String?
    @Option(help: "Whose memories the conversation becomes.") var user: String = "maya"

    func fixtureDirectory() throws -> String {
        if let fixtures { return fixtures }
        var candidates = [FileManager.default.currentDirectoryPath + "/Fixtures/demo"]
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            url.deleteLastPathComponent()
            candidates.append(url.appendingPathComponent("Fixtures/demo").path)
        }
        guard let dir = candidates.first(where: { FileManager.default.fileExists(atPath: $0 + "/conversation.jsonl") }) else {
            throw CLIError.usage("cannot find Fixtures/demo/conversation.jsonl; run from the repository or pass --fixtures DIR")
        }
        return dir
    }

    func modelFile() async throws -> ModelFile {
        try await ModelDefault.resolve(model) {
            print("preparing the default PSM model (first run): importing the encoder and training its heads on the curriculum (about 3½ minutes on two cores)…")
        }
    }

    func run() async throws {
        try await guardedAsync {
            let dir = try fixtureDirectory()
            let file = try await modelFile()
            let policy = try policy(for: file)
            print("model \(file.path)\n  id \(file.id)\n  \(file.config.source)")
            let engine = try Engine(directory: store.storePath, encoder: try Encoder(model: file), policy: policy)
            defer { engine.close() }
            let u = try UserRef(tenant: "demo", user: user)
            let lines = try String(contentsOfFile: dir + "/conversation.jsonl", encoding: .utf8).split(separator: "\n")
            var turns: [(session: String, speaker: String, source: String, text: String, at: Int64?)] = []
            for (n, line) in lines.enumerated() {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let text = o["text"] as? String else {
                    throw CLIError.data("\(dir)/conversation.jsonl:\(n + 1): not a turn object")
                }
                turns.append((o["session"] as? String ?? "", o["speaker"] as? String ?? "", o["source_id"] as? String ?? "", text, try (o["at"] as? String).map { try parseTime($0, option: "at") }))
            }
            guard let firstTime = turns.first?.at else { throw CLIError.data("the first turn needs an \"at\" time") }
            try await engine.ensureActiveModel(name: URL(fileURLWithPath: file.path).lastPathComponent, at: firstTime)

            var last = firstTime
            if (try? engine.userRecord(u)) != nil {
                print("\nthe store already holds \(u)'s memories: skipping ingestion (use a new --store to start over)")
                last = try engine.userRecord(u).lastEventTime
            } else {
                print("\ningesting \(turns.count) turns of Fixtures/demo/conversation.jsonl as \(u)'s memories, sleeping after each session")
                var session = turns[0].session, kept = 0, dropped = 0
                func sleep() async throws {
                    let r = try await engine.sleep(u, at: last + 3_600_000_000)
                    last += 3_600_000_000
                    let d = r.decisions.sorted { $0.key.description < $1.key.description }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                    print("  session \(session): \(kept) kept, \(dropped) dropped by the gate; sleep: \(d.isEmpty ? "nothing to do" : d)")
                    kept = 0
                    dropped = 0
                }
                for t in turns {
                    if t.session != session {
                        try await sleep()
                        session = t.session
                    }
                    let time = max(t.at ?? last + 60_000_000, last + 1)
                    let r = try await engine.observe(
                        u, .init(text: t.text, session: t.session, speaker: t.speaker, sourceID: t.source), at: time,
                        id: ID128.derived(domain: "psm.demo.v1", Array("\(u)|\(t.source)".utf8)))
                    if r.kept { kept += 1 } else { dropped += 1 }
                    last = time
                }
                try await sleep()
            }

            let texts = Dictionary(turns.map { ($0.source, "\($0.speaker): \($0.text)") }, uniquingKeysWith: { a, _ in a })
            let questions = try String(contentsOfFile: dir + "/questions.txt", encoding: .utf8).split(separator: "\n").map(String.init)
            var askAt = last + 86_400_000_000
            for q in questions where !q.isEmpty {
                let r = try await engine.recall(u, query: q, k: 3, at: askAt)
                askAt += 60_000_000
                print("\nQ: \(q)   (recall \(r.recall!.description.prefix(8))…, \(r.candidatesConsidered) candidates)")
                for (i, m) in r.memories.enumerated() {
                    let v = m.candidate.view
                    print(String(format: "  %d. w=%.3f  %@ %@, strength %.2f%@  “%@”", i + 1, m.weight.value, v.record.tier.description, v.record.type.description, v.strength, v.record.isValid ? "" : ", superseded", String(v.record.text.prefix(70))))
                    for s in (m.provenance?.sourceIDs ?? []).prefix(3) { print("       from \(s)  \(String((texts[s] ?? "").prefix(70)))") }
                }
            }

            let listing = try engine.tiers(u)
            let counts = Tier.allCases.filter { $0 != .sensory }.map { "\(listing.memories[$0]?.count ?? 0) \($0)" }.joined(separator: ", ")
            print("\ntiers of \(u): \(listing.sensory.count) sensory, \(counts)")

            let hash = try engine.stateHash()
            let replay = try Replayer.verify(journal: engine.journal, decider: engine.decider, scratch: NSTemporaryDirectory() + "psm-demo-replay-\(getpid())")
            print("replay-verify: \(replay.commands) commands re-decided, \(replay.checked) decisions compared, \(replay.divergent) divergent; state hash \(replay.stateHash == hash ? "matches" : "DIFFERS from") the live store (\(hexBytes(hash).prefix(16))…)")
            let verify = try engine.journal.verify()
            print("journal verify: \(verify.problem.map { "FAILED: \($0)" } ?? "ok — \(verify.events) records, CRCs, indexes and \(verify.streams) hash chains check out")")
            if replay.divergent > 0 || verify.problem != nil || replay.stateHash != hash { throw ExitCode(1) }
        }
    }
}
