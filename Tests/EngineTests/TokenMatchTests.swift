import Foundation
import Inference
import Journal
import Projections
import Testing
import Engine
import Training

/// Token matching (SPEC.md §12.7): the recall feature read from the encoder's token states.
@Suite struct TokenMatchTests {
    /// The mean over the query's rows of the best cosine with any memory row; 0 when either side has
    /// no rows or the dimensions differ.
    @Test func matchIsTheMeanOfTheBestCosines() {
        let q = TokenMatrix(dimension: 2, rows: [[1, 0], [0, 1]])
        let m = TokenMatrix(dimension: 2, rows: [[1, 0], [0.6, 0.8]])
        // Row [1, 0] meets [1, 0] (cosine 1); row [0, 1] meets [0.6, 0.8] best (cosine 0.8).
        #expect(abs(TokenMatcher.match(q, m) - 0.9) < 1e-6, "\(TokenMatcher.match(q, m))")
        // One query row: its best only; the order of the memory's rows does not matter.
        let swapped = TokenMatrix(dimension: 2, rows: [[0.6, 0.8], [1, 0]])
        #expect(TokenMatcher.match(TokenMatrix(dimension: 2, rows: [[0, 1]]), m) == TokenMatcher.match(TokenMatrix(dimension: 2, rows: [[0, 1]]), swapped))
        #expect(TokenMatcher.match(TokenMatrix(dimension: 2, rows: []), m) == 0 && TokenMatcher.match(q, TokenMatrix(dimension: 2, rows: [])) == 0)
        #expect(TokenMatcher.match(q, TokenMatrix(dimension: 3, rows: [[1, 0, 0]])) == 0)
    }

    /// With the real encoder: a text's token states do not depend on the batch it is encoded in; the
    /// query keeps its content word pieces less the speakers' names; a paraphrase matches better than an
    /// unrelated turn.
    @Test func queryTokensAndDeterminism() throws {
        guard !SharedEncoder.skip else { return }
        let encoder = try #require(SharedEncoder.encoder, "the all-MiniLM-L6-v2 package is missing: run scripts/setup.sh")
        let text = "Ana: I've been practising the cello every evening."
        let alone = encoder.tokenStates([text])[0], batched = encoder.tokenStates(["Something else entirely, and longer than it.", text])[1]
        #expect(alone.ids == batched.ids && alone.states == batched.states)
        #expect(alone.ids.count * encoder.config.hidden == alone.states.count && alone.ids.first == encoder.tokenizer.clsID)
        let matcher = TokenMatcher(encoder: encoder)
        // "What did Ana research lately?": content pieces are "ana", "research", "lately"; naming Ana drops one.
        #expect(matcher.query("What did Ana research lately?").rows == 3)
        #expect(matcher.query("What did Ana research lately?", names: ["Ana", "Ben"]).rows == 2)
        #expect(matcher.query("What did they do?").rows == 0)
        let q = matcher.query("Which instrument does Ana play?", names: ["Ana"])
        let cello = TokenMatcher.match(q, matcher.memory(text))
        let hike = TokenMatcher.match(q, matcher.memory("Ana: We went hiking in the mountains last weekend."))
        #expect(cello > hike, "cello \(cello), hike \(hike)")
        // Every memory token but [CLS] and [SEP].
        #expect(matcher.memory(text).rows == alone.ids.count - 2)
    }

    /// Through the engine: a model whose head weighs `token_rel` fills the feature for pooled candidates
    /// only (so a larger recall gives shared candidates the same features), the journaled weights are
    /// those of the filled candidates, replay agrees, a small cache gives the same values, and erasing a
    /// user empties the cache. Memories are cached when they are made, from the pass that embedded them.
    @Test func engineWeighsTokenMatching() async throws {
        guard !SharedEncoder.skip else { return }
        let encoder = try #require(SharedEncoder.encoder, "the all-MiniLM-L6-v2 package is missing: run scripts/setup.sh")
        let dir = TempStore()
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let n = RecallFeatures.count
        var w = [Double](repeating: 0, count: n)
        w[RecallFeatures.names.firstIndex(of: "fused")!] = 1
        w[RecallFeatures.names.firstIndex(of: "token_rel")!] = 5
        let head = LinearHead(weights: w, bias: 0, mean: [Double](repeating: 0, count: n), scale: [Double](repeating: 1, count: n))
        _ = try Trainer.writeModel(encoder: encoder.model, head: head, fusion: 1, manifestJSON: Array("{}".utf8), to: dir.path + "/t.psm")
        let file = try ModelFile(path: dir.path + "/t.psm")
        let policy = try PSMPolicy(model: file)
        // A head of recipe 8's 17 weights has no token features: no matcher, nothing filled.
        _ = try Trainer.writeModel(encoder: encoder.model, head: ContextTests.fusedOnlyHead(count: 17), manifestJSON: Array("{}".utf8), to: dir.path + "/r8.psm")
        let r8 = try PSMPolicy(model: try ModelFile(path: dir.path + "/r8.psm"))
        #expect(policy.matchesTokens && !r8.matchesTokens && Decider(policy: r8, encoder: encoder).tokens == nil)
        let engine = try Engine(directory: dir.path + "/store", encoder: try Encoder(model: file), policy: policy)
        defer { engine.close() }
        let tokens = try #require(engine.decider.tokens)
        let u = try UserRef(tenant: "t", user: "u")
        try await observeTrips(engine, u, count: 120)
        _ = try await engine.observe(u, .init(text: "The cello lessons are going well, I practise every evening.", session: "s99", speaker: "Ana"), at: t0 + 200 * minute)
        // Every memory kept was cached from the pass that embedded it, before any recall.
        #expect(tokens.cached.memories == 121, "\(tokens.cached)")
        let query = "Which instrument is Ana learning?"
        let at = t0 + day
        var small = try engine.projections.candidates(u, engine.decider.recallQuery(query, k: 10, at: at))
        var large = try engine.projections.candidates(u, engine.decider.recallQuery(query, k: 150, at: at))
        tokens.fill(&small, query: query)
        tokens.fill(&large, query: query)
        #expect(large.count > small.count)
        #expect(large.filter { !RecallFeatures.inPool($0) }.allSatisfy { $0.tokenMatch == 0 } && small.allSatisfy { $0.tokenMatch > 0 })
        let tm = RecallFeatures.names.firstIndex(of: "token_match")!, tr = RecallFeatures.names.firstIndex(of: "token_rel")!
        let bySmall = Dictionary(uniqueKeysWithValues: zip(small.map(\.memory), RecallFeatures.vectors(small, query: query, at: at)))
        for (c, x) in zip(large, RecallFeatures.vectors(large, query: query, at: at)) {
            guard let y = bySmall[c.memory] else { continue }
            #expect(x[tm] == y[tm] && x[tr] == y[tr], "memory \(c.memory)")
        }
        // The recall journals the weights of the filled candidates, which differ from the unfilled ones.
        let r = try await engine.recall(u, query: query, k: 5, at: at)
        let plain = try engine.projections.candidates(u, engine.decider.recallQuery(query, k: 5, at: at))
        var filled = plain
        let weights = engine.decider.weigh(&filled, query: query, at: at)
        let expected = zip(filled, weights).sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0.memory < $1.0.memory }.prefix(5)
        #expect(r.memories.map(\.candidate.memory) == expected.map(\.0.memory) && r.memories.map(\.weight) == expected.map(\.1))
        #expect(policy.weigh(plain, query: query, at: at) != weights)
        #expect(r.memories.first?.candidate.view.record.text.hasPrefix("The cello") == true, "\(r.memories.map(\.candidate.view.record.text))")
        // A cold cache too small for more than a few memories (it encodes them at the recall) gives the
        // values the engine's cache, filled at ingest, gave.
        let tiny = TokenMatcher(encoder: try Encoder(model: file), capacityBytes: 30_000)
        var again = plain
        tiny.fill(&again, query: query)
        #expect(again.map(\.tokenMatch) == filled.map(\.tokenMatch) && tiny.cached.bytes <= 30_000 && tiny.cached.memories < plain.count)
        let replay = try Replayer.verify(journal: engine.journal, decider: engine.decider, scratch: dir.path + "/replay")
        #expect(replay.divergent == 0 && replay.checked == 122, "\(replay)")
        #expect(tokens.cached.memories > 0)
        _ = try await engine.erase(u, at: at + 1)
        #expect(tokens.cached.memories == 0 && tokens.cached.bytes == 0)

        // `psm bench recall` with this model: every memory is cached at ingest, and the three ways are timed.
        let (status, data) = try EvalCommandTests.run(["bench", "recall", "--model", dir.path + "/t.psm", "--conversations", "2", "--json"])
        #expect(status == 0)
        let o = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let memories = try #require(o["memories"] as? Int)
        #expect(o["matches_tokens"] as? Bool == true && memories > 20 && o["cached_memories"] as? Int == memories, "\(o)")
        for way in ["warm", "cold", "without"] {
            let l = try #require(o[way] as? [String: Any])
            #expect((l["p50_ms"] as? Double ?? 0) > 0 && (l["p99_ms"] as? Double ?? 0) >= (l["p50_ms"] as? Double ?? 0), "\(way): \(l)")
        }
    }
}
