import ArgumentParser
import Engine
import Foundation
import Inference
import Journal
import Projections
import Training

/// `psm bench recall`: what token matching costs a recall, against the same recall without it.
struct RecallBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recall",
        abstract: "Recall latency with the PSM's token matching, warm and cold, against the same recall without it.",
        discussion: """
            Ingests --conversations curriculum conversations (seeded, the project's own; --seed) as one \
            user in a temporary store with the model, then asks every curriculum question as a peek \
            (read-only) three ways, and prints p50 and p99 milliseconds of each:
              warm     the engine that ingested: memories' token states were cached when they were made
              cold     the store reopened (empty cache): a memory is encoded the first time it is a candidate
              without  the same candidate query and head with token matching off (its features 0): the peer
            plus ingest turns/s and the cache's size. The model must be a PSM model (--model FILE, else \
            $PSM_MODEL, else the default PSM model, built when missing); a model whose head does not \
            weigh token matching measures the same three times.

            Example:
              psm bench recall --conversations 40 --json
            """)
    @Option(help: ArgumentHelp("PSM model file (default: $PSM_MODEL, else the default PSM model, built when missing).", valueName: "FILE"))
    var model: String?
    @Option(help: "Curriculum conversations ingested into the one user (1...1000).") var conversations: Int = 20
    @Option(help: "Curriculum seed.") var seed: UInt64 = 7
    @Option(help: "Memories per recall (1...100).") var k: Int = 10
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (1...1000).contains(conversations) else { throw ValidationError("--conversations must be 1...1000, got \(conversations)") }
        guard (1...100).contains(k) else { throw ValidationError("--k must be 1...100, got \(k)") }
    }

    struct Latency: Encodable { var p50_ms: Double; var p99_ms: Double }
    struct Report: Encodable {
        var model_id: String
        var matches_tokens: Bool
        var memories: Int
        var questions: Int
        var ingest_turns_per_s: Double
        var warm: Latency
        var cold: Latency
        var without: Latency
        var warm_over_without: Double
        var cached_memories: Int
        var cached_bytes: Int
    }

    func run() async throws {
        try await guardedAsync {
            let file = try await ModelDefault.resolve(model, progress: !json)
            let policy = try PSMPolicy(model: file)
            let dir = NSTemporaryDirectory() + "psm-bench-recall-\(getpid())"
            try? FileManager.default.removeItem(atPath: dir)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let curriculum = Curriculum(seed: seed, count: conversations)
            let user = try UserRef(tenant: "bench", user: "recall")
            var engine: Engine? = try Engine(directory: dir, encoder: try Encoder(model: file), policy: policy)
            defer { engine?.close() }
            let turns = curriculum.conversations.reduce(0) { $0 + $1.sessions.reduce(0) { $0 + $1.turns.count } }
            let bar = Progress(label: "ingest", total: UInt64(turns), enabled: !json)
            var t: Int64 = 1_672_531_200_000_000, done: UInt64 = 0
            let start = now()
            for c in curriculum.conversations {
                for s in c.sessions {
                    for turn in s.turns {
                        _ = try await engine!.observe(user, .init(text: turn.text, session: "\(c.id)/\(s.index)", speaker: turn.speaker, sourceID: turn.id), at: t)
                        t += 60_000_000
                        done += 1
                        bar.update(done)
                    }
                }
            }
            bar.finish()
            let ingest = Double(turns) / (now() - start)
            let questions = curriculum.conversations.flatMap { $0.questions.map(\.text) }
            let at = t + 86_400_000_000
            func measure(_ body: (String) throws -> Void) rethrows -> Latency {
                var ms: [Double] = []
                for q in questions {
                    let t0 = now()
                    try body(q)
                    ms.append((now() - t0) * 1000)
                }
                return Latency(p50_ms: round3(percentile(ms, 0.5)), p99_ms: round3(percentile(ms, 0.99)))
            }
            let warm = try measure { _ = try engine!.peek(user, query: $0, k: k, at: at) }
            let cached = engine!.decider.tokens?.cached ?? (memories: 0, bytes: 0)
            let memories = try engine!.tiers(user, at: at).memories.values.reduce(0) { $0 + $1.count }
            engine!.close()
            engine = try Engine(directory: dir, encoder: try Encoder(model: file), policy: policy)
            let cold = try measure { _ = try engine!.peek(user, query: $0, k: k, at: at) }
            let plain = Decider(policy: policy, encoder: nil)
            let without = try measure { q in
                let candidates = try engine!.projections.candidates(user, engine!.decider.recallQuery(q, k: k, at: at))
                _ = plain.rank(candidates, query: q, at: at, k: k)
            }
            let r = Report(
                model_id: file.id, matches_tokens: policy.matchesTokens, memories: memories, questions: questions.count,
                ingest_turns_per_s: ingest.rounded(), warm: warm, cold: cold, without: without,
                warm_over_without: round3(warm.p50_ms / max(without.p50_ms, 1e-9)), cached_memories: cached.memories, cached_bytes: cached.bytes)
            if json { try printJSON(r); return }
            print("\(memories) memories, \(questions.count) questions, k \(k); model \(file.id.prefix(16))… (token matching: \(policy.matchesTokens ? "yes" : "no"))")
            print("ingest  \(r.ingest_turns_per_s) turns/s")
            for (name, l) in [("warm", warm), ("cold", cold), ("without", without)] {
                print("\(name.padding(toLength: 8, withPad: " ", startingAt: 0))p50 \(l.p50_ms) ms   p99 \(l.p99_ms) ms")
            }
            print("warm / without (p50): \(r.warm_over_without)×; token cache \(cached.memories) memories, \(cached.bytes) bytes")
        }
    }
}
