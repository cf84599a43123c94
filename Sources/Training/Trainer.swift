import Engine
import Foundation
import Inference
import Journal
import Projections

/// Trains the PSM's heads (SPEC.md §12.7) and writes a PSM model file: the encoder's tensors plus the
/// heads and the training manifest. Deterministic: the same encoder, seed and options give the same
/// file bytes, hence the same model id.
public enum Trainer {
    /// Bumped whenever the curriculum, the features, the training or the baseline decisions it trains
    /// against change, so a cached default model from an older recipe is rebuilt, not reused.
    public static let recipe = 17

    /// Recall features held at weight 0: the curriculum's tiers, ages and confidences are artefacts of
    /// the rule baseline's decay on synthetic time spans; learned on it, they did not transfer (a strong
    /// archival penalty cost R_any@10 on real conversations). `emotional_weight` too: the curriculum asks
    /// nothing about its emotional disclosures, so it would learn that a felt memory is never the answer.
    /// Learning from utility may still move them.
    public static let frozenRecallFeatures = ["archival", "semantic", "confidence", "age_log1p_days", "emotional_weight"]

    /// The features recipe 6 weighs: the fused rank, whether the query names the memory's speaker, and
    /// how far the BM25 score stands above the mean of the query's candidate pool (`lexical_rel`). All
    /// three mean the same on any conversation. The raw scores, the rank shapes, strength and the
    /// relative cosine fit the curriculum's templates and time spans: weighing every feature, the
    /// held-out curriculum MRR is 0.719 against 0.706, but LoCoMo dev R_all@10 falls from 0.705 to 0.696
    /// (SPEC.md §12.7).
    ///
    /// Recipe 9 weighs token matching (``TokenMatcher``) instead of `lexical_rel`: the fused rank, the
    /// speaker named, and `token_match` and `token_rel`. On the curriculum token matching subsumes the
    /// shared words (`lexical_rel` fits a negative weight beside it); on LoCoMo dev, over one curriculum,
    /// this set measured R_any@1 0.495 against 0.480 with `lexical_rel` kept (SPEC.md §12.7).
    ///
    /// Recipe 13 adds `time_match` (the memory was said on a date the question names), taught by the
    /// curriculum's time-cued questions (``Options/timeCues``).
    public static let defaultRecallFeatures = ["fused", "speaker_named", "token_match", "token_rel", "question", "time_match"]
    public struct Options: Sendable, Codable {
        public var seed: UInt64 = 1
        /// 144: with 48 the held-out set (104 questions) could not tell the context-spreading settings
        /// apart (their MRRs within 0.01, the choice moving with the seed's noise); with 96 and 144 the
        /// choice settles on beta 0.15, window 2 (SPEC.md §12.7).
        public var conversations = 144
        /// Every `heldOutEvery`-th conversation is held out for the manifest's metrics.
        public var heldOutEvery = 5
        public var epochs = 300
        public var learningRate = 0.5
        public var l2 = 1e-3
        /// Also train the gate head (worth keeping or chat → type, confidence, stability). On by default
        /// since recipe 11: with recipe 9's echoes and chatter in the curriculum it transfers (LoCoMo dev
        /// evidence turns rated facts 0.891, other turns 0.621; SPEC.md §12.7).
        public var gate = true
        /// With the gate head, also train the type head (a kept turn's type: fact, preference, plan or
        /// event). On by default since recipe 17, trained on the curriculum with typed statements
        /// (``typedStatements``); recipes 12 to 16 left it off because, trained on the fact kinds alone, it did
        /// not transfer to real conversations (SPEC.md §12.7). Optional so that a manifest without it keeps
        /// recipe 12's bytes.
        public var types: Bool? = true
        /// Also train the interference heads — supersedes, reinforces, refines (the four-way relation head, on
        /// the curriculum with repeats and refinements) — off by default: on real conversations they
        /// over-fire, see SPEC.md §12.7.
        public var interference = false
        /// Also train the consolidation head (which episodes sleep groups into one semantic memory), in place
        /// of the rule's cosine ≥ 0.9. Optional so that a manifest without it keeps recipe 7's bytes.
        public var consolidation: Bool? = nil
        /// Read observations in context (SPEC.md §11.4): the model file gets `psm.context` = 1.
        public var context = true
        /// Choose the fusion constant and the spreading by MRR on the training questions instead of the
        /// held-out ones (recipe 10). Optional so that a manifest without it keeps recipe 9's bytes.
        public var chooseOnTraining: Bool? = true
        /// Spaced reinforcement (SPEC.md §12.7): the model file gets `psm.decay.spaced` = 1 (recipe 8).
        public var spaced: Bool? = true
        /// Sleep consolidates recurrences only (SPEC.md §12.7): the model file gets `psm.sleep.recurrence`
        /// = 1 (recipe 12). Optional so that a manifest without it keeps recipe 11's bytes.
        public var recurrence: Bool? = true
        /// A quarter of the curriculum's questions name their evidence's date (recipe 13), so the head learns
        /// `time_match`. Optional so that a manifest without it keeps recipe 12's bytes.
        public var timeCues: Bool? = true
        /// With the gate head, also train the emotion head on the curriculum's emotional disclosures
        /// (recipe 14), which sets each kept memory's emotional weight and lengthens its stability by it.
        /// Optional so that a manifest without it keeps recipe 13's bytes.
        public var emotions: Bool? = true
        /// A quarter of the curriculum's small talk is said warmly — thanks, support, encouragement,
        /// greetings — as real chat between friends is (recipe 15), so the gate and emotion heads learn
        /// that warmth is not a fact to keep or a felt event. Optional so that a manifest without it keeps
        /// recipe 14's bytes.
        public var warmth: Bool? = true
        /// The gate, type and emotion heads learn from each turn's vector as the engine gates it — in context
        /// for a contextual model (recipe 16). Recipes 11 to 15 trained them on each turn's vector alone while
        /// the engine gated vectors read in context. Optional so that a manifest without it keeps recipe 15's bytes.
        public var gateContext: Bool? = true
        /// The gate, type and emotion heads also see the observation's novelty against what the user already
        /// has (recipe 16; ``GateFeatures``). Optional so that a manifest without it keeps recipe 15's bytes.
        public var gateNovelty: Bool? = true
        /// The type head learns from the curriculum variant with typed statements (recipe 17,
        /// Curriculum `typed`: likings, intentions, happenings and standing facts in many phrasings) instead
        /// of the fact kinds alone (only with ``types``). Optional so that a manifest without it keeps
        /// recipe 16's bytes.
        public var typedStatements: Bool? = true
        /// The fusion constant; nil chooses it from ``fusionGrid`` by MRR of the fused order (on the
        /// questions ``chooseOnTraining`` names).
        public var fusion: Double? = nil
        /// Days an inactive episode stays in the active tiers before sleep archives it (tensor
        /// `psm.sleep.episodic_lifespan_days`): four weeks, the seed's "days–weeks" for the episodic store.
        public var episodicLifespanDays: Double? = 28
        /// The recall features the head may weigh (the rest stay 0); nil: all but ``frozenRecallFeatures``.
        public var recallFeatures: [String]? = Trainer.defaultRecallFeatures
        /// Context spreading after the head; nil chooses it from ``spreadBetas`` × ``spreadWindows`` by
        /// MRR on the same questions as the fusion constant (beta 0: none).
        public var spread: RecallSpread? = nil
        public init() {}
    }

    /// Fusion constants the trainer chooses from (SPEC.md §12.7).
    public static let fusionGrid: [Double] = [1, 2, 5, 10, 20, 60]

    /// One question's candidates: features, their ranks in the lexical and dense lists (0 = absent), and
    /// whether each reaches an evidence turn.
    public struct Group: Sendable {
        public var features: [[Double]]
        public var labels: [Bool]
        public var baselineWeights: [Int64]
        public var heldOut: Bool
        public var ranks: [(lexical: Int, dense: Int)] = []
        /// Each candidate's slot and session, for context spreading (empty: no spreading).
        public var slots: [UInt32] = []
        public var sessions: [String] = []

        public init(
            features: [[Double]], labels: [Bool], baselineWeights: [Int64], heldOut: Bool, ranks: [(lexical: Int, dense: Int)], slots: [UInt32] = [],
            sessions: [String] = []
        ) {
            self.features = features; self.labels = labels; self.baselineWeights = baselineWeights; self.heldOut = heldOut; self.ranks = ranks
            self.slots = slots; self.sessions = sessions
        }

        /// The head's scores of the candidates, spread as ``PSMPolicy`` spreads them, as fixed-point raw values.
        func scores(_ head: LinearHead, spread: RecallSpread?) -> [Double] {
            PSMPolicy.weights(
                features.map { head.score($0) }, spread: slots.count == features.count ? spread : nil, slots: slots, sessions: sessions,
                pooled: ranks.map { RecallFeatures.inPool(lexicalRank: $0.lexical, denseRank: $0.dense) }
            ).map { Double($0.raw) }
        }

        /// The same group with the `fused` feature and the baseline's weights for fusion constant `k`.
        public func fused(_ k: Double) -> Group {
            var g = self
            let valid = RecallFeatures.names.firstIndex(of: "valid")!, fused = RecallFeatures.names.firstIndex(of: "fused")!
            for i in g.features.indices {
                let (l, d) = ranks[i]
                var f = 0.0
                if l > 0 { f += 1 / (k + Double(l)) }
                if d > 0 { f += 1 / (k + Double(d)) }
                g.features[i][fused] = f
                g.baselineWeights[i] = Fixed(f * 30 * (g.features[i][valid] == 1 ? 1 : 0.5)).raw
            }
            return g
        }
    }

    /// The fusion constant of ``fusionGrid`` whose fused order has the best MRR on the held-out
    /// questions, or with `heldOut` false on the training ones (ties: the first).
    public static func chooseFusion(_ groups: [Group], heldOut: Bool = true) -> (k: Double, mrr: [String: Double]) {
        var best = (k: fusionGrid[0], mrr: -1.0), table: [String: Double] = [:]
        for k in fusionGrid {
            let m = evaluate(groups.map { $0.fused(k) }, head: nil, heldOut: heldOut).mrr
            table[String(format: "%g", k)] = m
            if m > best.mrr { best = (k, m) }
        }
        return (best.k, table)
    }

    /// Context-spreading settings the trainer chooses from (SPEC.md §12.7): beta 0 (no spreading) first,
    /// so a tie keeps the plainer ranking; the 10 best pooled candidates lend.
    public static let spreadBetas: [Double] = [0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5]
    public static let spreadWindows = [1, 2, 3]

    /// The spreading of the grid whose ranking by `head` has the best MRR on the held-out questions, or
    /// with `heldOut` false on the training ones (ties: the first; nil when that is beta 0), and the
    /// table ("beta/window" → MRR).
    public static func chooseSpread(_ groups: [Group], head: LinearHead, heldOut: Bool = true) -> (spread: RecallSpread?, mrr: [String: Double]) {
        var best: (spread: RecallSpread?, mrr: Double) = (nil, evaluate(groups, head: head, heldOut: heldOut).mrr)
        var table = ["0": best.mrr]
        for beta in spreadBetas where beta > 0 {
            for window in spreadWindows {
                let s = RecallSpread(beta: beta, window: window)
                let m = evaluate(groups, head: head, spread: s, heldOut: heldOut).mrr
                table[String(format: "%g/%d", beta, window)] = m
                if m > best.mrr { best = (s, m) }
            }
        }
        return (best.spread, table)
    }

    public struct Metrics: Sendable, Codable, Equatable {
        public var questions: Int
        public var r_any_1: Double
        public var r_any_10: Double
        public var mrr: Double
    }

    public struct Report: Sendable, Codable {
        public var curriculum_digest: String
        public var options: Options
        public var encoder: String
        public var questions: Int
        public var examples: Int
        public var positives: Int
        public var held_out_baseline: Metrics
        public var held_out_trained: Metrics
        public var weights: [String: Double]
        public var bias: Double
        public var interference: InterferenceMetrics?
        /// The relation head's pairs and per-relation held-out precision/recall.
        public var relations: RelationMetrics?
        /// The consolidation head's pairs and held-out precision/recall (same shape as interference's).
        public var consolidation: InterferenceMetrics?
        /// The digest of the curriculum variant with repeated episodes the consolidation head learned from.
        public var consolidation_curriculum_digest: String?
        /// The digest of the conversations the interference head learned from (without echoes; for the
        /// relation head also with repeats, refinements, disclosures and warmth, twice the size).
        public var interference_curriculum_digest: String?
        public var gate: GateMetrics?
        /// The type head's held-out accuracy and per-type recall over the curriculum's fact turns.
        public var gate_types: TypeMetrics?
        /// The digest of the curriculum variant with typed statements the type head learned from (recipe 17).
        public var types_curriculum_digest: String?
        /// The emotion head's held-out accuracy and recall of disclosures and of other turns (recipe 14).
        public var emotion: EmotionMetrics?
        public var context: Bool?
        public var fusion: Double?
        /// Held-out MRR of the fused order for each constant of the grid (when it was chosen).
        public var fusion_mrr: [String: Double]?
        /// The context spreading written to the model (nil: none) and the held-out MRR of each setting tried.
        public var spread: RecallSpread?
        public var spread_mrr: [String: Double]?
    }

    /// Ingests the curriculum through an engine (rule baseline, the given encoder) in `scratch` and
    /// collects every question's recall candidates with their features and labels.
    public static func collect(_ curriculum: Curriculum, encoder: Encoder, options: Options, scratch: String, progress: ((Int, Int) -> Void)? = nil) async throws -> [Group] {
        try? FileManager.default.removeItem(atPath: scratch)
        let engine = try Engine(directory: scratch, encoder: encoder, policy: RuleBaseline(
                readsContext: options.context, fusion: CandidateQuery.defaultFusionConstant,
                episodicLifespan: options.episodicLifespanDays.map { UInt64(($0 * 86_400).rounded()) }))
        defer {
            engine.close()
            try? FileManager.default.removeItem(atPath: scratch)
        }
        var groups: [Group] = []
        let base = RuleBaseline()
        // Token matching costs encoder time per candidate memory: only when the head may weigh it.
        let weighsTokens = options.recallFeatures.map { !Set($0).isDisjoint(with: RecallFeatures.tokenFeatures) } ?? true
        let matcher = weighsTokens ? TokenMatcher(encoder: encoder) : nil
        for (ci, c) in curriculum.conversations.enumerated() {
            let user = try UserRef(tenant: "curriculum", user: c.id)
            var last: Int64 = 0
            for s in c.sessions {
                var t = max(s.time, last + 1_000_000)
                for turn in s.turns {
                    _ = try await engine.observe(user, .init(text: turn.text, session: "session_\(s.index)", speaker: turn.speaker, sourceID: turn.id), at: t)
                    last = t
                    t += 60_000_000
                }
                _ = try await engine.sleep(user, at: last + 1_000_000)
                last += 1_000_000
            }
            let askAt = last + 86_400_000_000
            for q in c.questions {
                var candidates = try engine.projections.candidates(user, CandidateQuery(text: q.text, vector: engine.embed(q.text), at: askAt, perList: 50))
                matcher?.fill(&candidates, query: q.text)
                let evidence = Set(q.evidence)
                groups.append(
                    Group(
                        features: RecallFeatures.vectors(candidates, query: q.text, at: askAt),
                        labels: candidates.map { !evidence.isDisjoint(with: $0.view.record.sourceIDs) },
                        baselineWeights: base.weigh(candidates, query: q.text, at: askAt).map(\.raw),
                        heldOut: ci % options.heldOutEvery == options.heldOutEvery - 1, ranks: candidates.map { ($0.lexicalRank, $0.denseRank) },
                        slots: candidates.map(\.slot), sessions: candidates.map(\.view.record.session)))
            }
            progress?(ci + 1, curriculum.conversations.count)
        }
        return groups
    }

    /// The recall head: logistic regression over the training groups' candidates.
    public static func fit(_ groups: [Group], options: Options) -> LinearHead {
        var rows: [[Double]] = [], labels: [Bool] = []
        for g in groups where !g.heldOut {
            rows += g.features
            labels += g.labels
        }
        // Features the curriculum cannot teach transferably stay at weight 0 (SPEC.md §12.7).
        let frozen = Set(
            options.recallFeatures.map { keep in RecallFeatures.names.indices.filter { !keep.contains(RecallFeatures.names[$0]) } }
                ?? Trainer.frozenRecallFeatures.compactMap { RecallFeatures.names.firstIndex(of: $0) })
        return logistic(rows, labels, dimension: RecallFeatures.count, frozen: frozen, epochs: options.epochs, learningRate: options.learningRate, l2: options.l2)
    }

    /// Logistic regression by full-batch gradient descent in a fixed order: features standardized with
    /// the rows' mean and population standard deviation (1 when zero), both rounded to f32 first; positives
    /// weighted by negatives/positives; L2 on the weights; `frozen` weights stay 0; `DeterministicMath.exp`.
    /// The result is rounded to f32, so the head that is measured is the one a model file holds.
    /// The training rows' mean and population standard deviation per feature (1 where it is 0), rounded
    /// to f32 as the model file stores them: every head's standardization.
    static func standardization(_ rows: [[Double]], dimension n: Int) -> (mean: [Double], scale: [Double]) {
        func f(_ v: Double) -> Double { Double(Float(v)) }
        var mean = [Double](repeating: 0, count: n), scale = [Double](repeating: 0, count: n)
        for r in rows { for i in 0..<n { mean[i] += r[i] } }
        for i in 0..<n { mean[i] /= Double(max(1, rows.count)) }
        for r in rows { for i in 0..<n { scale[i] += (r[i] - mean[i]) * (r[i] - mean[i]) } }
        for i in 0..<n { scale[i] = (scale[i] / Double(max(1, rows.count))).squareRoot(); if !(scale[i] > 1e-9) { scale[i] = 1 } }
        return (mean.map(f), scale.map(f))
    }

    static func logistic(
        _ rows: [[Double]], _ labels: [Bool], dimension n: Int, frozen: Set<Int> = [], epochs: Int, learningRate: Double, l2: Double
    ) -> LinearHead {
        func f(_ v: Double) -> Double { Double(Float(v)) }
        guard !rows.isEmpty else { return LinearHead(weights: Array(repeating: 0, count: n), bias: 0, mean: Array(repeating: 0, count: n), scale: Array(repeating: 1, count: n)) }
        let (mean, scale) = standardization(rows, dimension: n)
        let x = rows.map { r in (0..<n).map { (r[$0] - mean[$0]) / scale[$0] } }
        let positives = Double(labels.filter { $0 }.count)
        let posWeight = positives > 0 ? (Double(labels.count) - positives) / positives : 1
        var w = [Double](repeating: 0, count: n), b = 0.0
        for _ in 0..<epochs {
            var gw = [Double](repeating: 0, count: n), gb = 0.0, total = 0.0
            for (xi, label) in zip(x, labels) {
                var z = b
                for i in 0..<n { z += w[i] * xi[i] }
                let p = 1 / (1 + DeterministicMath.exp(-z))
                let weight = label ? posWeight : 1
                let d = (p - (label ? 1 : 0)) * weight
                for i in 0..<n { gw[i] += d * xi[i] }
                gb += d
                total += weight
            }
            for i in 0..<n where !frozen.contains(i) { w[i] -= learningRate * (gw[i] / total + l2 * w[i]) }
            b -= learningRate * gb / total
        }
        return LinearHead(weights: w.map(f), bias: f(b), mean: mean, scale: scale)
    }

    /// Ranking quality on the held-out groups (with `heldOut` false, on the training ones): by the
    /// baseline's weights, or by `head`.
    public static func evaluate(_ groups: [Group], head: LinearHead?, spread: RecallSpread? = nil, heldOut: Bool = true) -> Metrics {
        let held = groups.filter { $0.heldOut == heldOut }
        var any1 = 0.0, any10 = 0.0, mrr = 0.0
        for g in held {
            let scores: [Double] = head.map { g.scores($0, spread: spread) } ?? g.baselineWeights.map(Double.init)
            let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
            if let r = order.firstIndex(where: { g.labels[$0] }) {
                if r < 1 { any1 += 1 }
                if r < 10 { any10 += 1 }
                mrr += 1 / Double(r + 1)
            }
        }
        let n = Double(max(1, held.count))
        func r3(_ v: Double) -> Double { (v / n * 1000).rounded() / 1000 }
        return Metrics(questions: held.count, r_any_1: r3(any1), r_any_10: r3(any10), mrr: r3(mrr))
    }

    /// The interference head and its threshold, with held-out precision and recall.
    public struct InterferenceResult: Sendable {
        public var head: LinearHead
        public var threshold: Double
        public var metrics: InterferenceMetrics

        public init(head: LinearHead, threshold: Double, metrics: InterferenceMetrics) {
            self.head = head; self.threshold = threshold; self.metrics = metrics
        }

        /// A head with its threshold and no training of its own (metrics 0): one a new version keeps.
        public init(kept head: LinearHead, threshold: Double) {
            self.init(
                head: head, threshold: threshold,
                metrics: .init(train_pairs: 0, train_positives: 0, held_out_pairs: 0, held_out_positives: 0, held_out_precision: 0, held_out_recall: 0, threshold: threshold))
        }
    }
    public struct InterferenceMetrics: Sendable, Codable, Equatable {
        public var train_pairs: Int
        public var train_positives: Int
        public var held_out_pairs: Int
        public var held_out_positives: Int
        public var held_out_precision: Double
        public var held_out_recall: Double
        public var threshold: Double
    }

    /// A conversation's turns in order with their vectors, embedded in batches of 32 as the engine
    /// embeds an observation ("speaker: text").
    static func embeddedTurns(
        _ conv: Curriculum.Conversation, encoder: Encoder, context: Bool = false, memo: EmbeddingMemo? = nil
    ) -> (turns: [Curriculum.Turn], vectors: [QuantizedVector]) {
        let turns = conv.sessions.flatMap(\.turns)
        let texts = turns.map { Fold.indexedText(speaker: $0.speaker, text: $0.text) }
        func embed(_ all: [String]) -> [[Float]] {
            // With a memo, only the texts it does not hold yet are encoded (a text's embedding does not
            // depend on the batch it is encoded in).
            let missing = memo.map { m in Array(Set(all.filter { m.vectors[$0] == nil })).sorted() } ?? all
            var out: [[Float]] = []
            for start in stride(from: 0, to: missing.count, by: 32) { out += encoder.embed(Array(missing[start..<min(missing.count, start + 32)])) }
            guard let memo else { return out }
            for (text, v) in zip(missing, out) { memo.vectors[text] = v }
            return all.map { memo.vectors[$0]! }
        }
        let own = embed(texts)
        guard context else { return (turns, own.map { QuantizedVector(normalizing: $0) }) }
        // A contextual model's vectors (SPEC.md §11.4): with the turn before it in its session, the
        // normalized sum of the turn alone and of "previous\nturn", as ``Decider/vector(_:context:)`` makes them.
        var previous: [Int?] = []
        for s in conv.sessions { for i in s.turns.indices { previous.append(i > 0 ? previous.count - 1 : nil) } }
        let withContext = turns.indices.compactMap { i in previous[i].map { texts[$0] + "\n" + texts[i] } }
        let ctx = embed(withContext)
        var k = 0
        let vectors = turns.indices.map { i -> QuantizedVector in
            guard previous[i] != nil else { return QuantizedVector(normalizing: own[i]) }
            defer { k += 1 }
            return QuantizedVector(normalizing: zip(own[i], ctx[k]).map { $0 + $1 })
        }
        return (turns, vectors)
    }

    /// Embeddings by input text, shared between passes over curriculum variants that have most turns in
    /// common (``gateTurns(_:encoder:context:novelty:memo:)``).
    public final class EmbeddingMemo {
        var vectors: [String: [Float]] = [:]
        public init() {}
    }

    /// The curriculum the interference heads learn from: without echoes, with repeated
    /// statements (reinforces), refinements (refines) and updates (supersedes), and with disclosures and
    /// warm small talk among the turns that relate to nothing; twice the recall curriculum's conversations,
    /// since a fifth of them calibrate the thresholds and supersessions are rare (SPEC.md §12.7).
    public static func relationCurriculum(_ options: Options) -> Curriculum {
        Curriculum(seed: options.seed, count: 2 * options.conversations, repeats: true, echoes: false, emotions: true, warmth: true, refinements: true)
    }

    /// Pairs (a fact turn, an earlier fact turn of the same speaker) labelled with how the first
    /// interferes with the second, as the engine scores them under `psm.interference.facts_only`
    /// (vectors in context for a contextual model): a repeat reinforces every earlier statement of its
    /// fact's value; a refinement refines the statement it names and that statement's repeats; an update
    /// supersedes the statement it replaces and that statement's repeats. Unrelated (nil): the speaker's
    /// facts of other kinds (at most 8 per turn). Other pairs of one speaker's statements of one kind (an
    /// old refinement and a later repeat, say) are left out.
    public static func relationPairs(_ c: Curriculum, encoder: Encoder, context: Bool) -> [(x: [Double], relation: Interference.Relation?, fold: Int)] {
        var out: [(x: [Double], relation: Interference.Relation?, fold: Int)] = []
        for (ci, conv) in c.conversations.enumerated() {
            let (turns, vectors) = embeddedTurns(conv, encoder: encoder, context: context)
            let index = Dictionary(uniqueKeysWithValues: turns.enumerated().map { ($1.id, $0) })
            /// A statement and every earlier one its repeats reach.
            func chain(_ id: String?) -> Set<String> {
                var out = Set<String>(), next = id
                while let r = next, let j = index[r], out.insert(r).inserted { next = turns[j].repeats }
                return out
            }
            let fold = ci % 5
            for (i, t) in turns.enumerated() where t.fact != nil {
                let reinforced = chain(t.repeats), refined = chain(t.refines), replaced = chain(t.replaces)
                var negatives = 0
                for j in stride(from: i - 1, through: 0, by: -1) {
                    let o = turns[j]
                    guard o.fact != nil, o.speaker == t.speaker else { continue }
                    let relation: Interference.Relation? =
                        reinforced.contains(o.id) ? .reinforces : refined.contains(o.id) ? .refines : replaced.contains(o.id) ? .supersedes : nil
                    if relation == nil {
                        guard o.fact != t.fact, negatives < 8 else { continue }
                        negatives += 1
                    }
                    let x = InterferenceFeatures.vector(new: vectors[i], old: vectors[j], sameSpeaker: o.speaker == t.speaker, newText: t.text, oldText: o.text)
                    out.append((x, relation, fold))
                }
            }
        }
        return out
    }

    /// The relation head and its per-relation held-out precision and recall.
    public struct RelationResult: Sendable {
        /// One row per ``PSMPolicy/relations`` entry, one standardization.
        public var rows: [LinearHead]
        /// Per row, the margin over unrelated at or above which the relation holds (unrelated's 0).
        public var thresholds: [Double]
        public var metrics: RelationMetrics

        public init(rows: [LinearHead], thresholds: [Double], metrics: RelationMetrics) {
            self.rows = rows; self.thresholds = thresholds; self.metrics = metrics
        }
        /// A head with its thresholds and no training of its own: one a new version keeps.
        public init(kept rows: [LinearHead], thresholds: [Double]) { self.init(rows: rows, thresholds: thresholds, metrics: .kept) }
    }
    public struct RelationMetrics: Sendable, Codable, Equatable {
        /// Empty metrics: a head a new version keeps (its training metrics are in the base's manifest).
        static let kept = RelationMetrics(
            train_pairs: 0, held_out_pairs: 0, held_out_unrelated_related: 0, reinforces: .none, refines: .none, supersedes: .none)
        public struct Relation: Sendable, Codable, Equatable {
            public var train_positives: Int
            public var held_out_positives: Int
            public var held_out_precision: Double
            public var held_out_recall: Double
            public var threshold: Double
            static let none = Relation(train_positives: 0, held_out_positives: 0, held_out_precision: 0, held_out_recall: 0, threshold: 0)
        }
        public var train_pairs: Int
        public var held_out_pairs: Int
        /// Held-out pairs of unrelated turns the head relates (any relation).
        public var held_out_unrelated_related: Int
        public var reinforces: Relation
        public var refines: Relation
        public var supersedes: Relation
    }

    /// Fits the relation head: multinomial logistic regression over the four rows (class-balanced,
    /// full-batch gradient descent from zero, as deterministic as ``logistic``) on folds 0–2 of `pairs`
    /// (a pair's fold is its conversation's index mod 5), then per relation the lowest margin over
    /// unrelated at which the pairs of fold 3 (calibration, not fitted) the head assigns that relation
    /// are ≥ 90% right; fold 4 is held out for the metrics. One row per relation against the rest cannot
    /// work: a refinement lies between a restatement and an unrelated fact, where no single linear score
    /// separates it; and thresholds set on the fitted pairs themselves are too low (SPEC.md §12.7).
    public static func fitRelations(
        _ pairs: [(x: [Double], relation: Interference.Relation?, fold: Int)], epochs: Int = 1000, learningRate: Double = 0.5, l2: Double = 1e-3
    ) -> RelationResult {
        func f(_ v: Double) -> Double { Double(Float(v)) }
        let classes = PSMPolicy.relations, k = classes.count
        func label(_ r: Interference.Relation?) -> Int { classes.firstIndex(of: r) ?? 0 }
        let train = pairs.filter { $0.fold < 3 }, calibration = pairs.filter { $0.fold == 3 }, held = pairs.filter { $0.fold == 4 }
        let n = pairs.first?.x.count ?? 0, rows = train.count
        let (mean, scale) = standardization(train.map(\.x), dimension: n)
        // Standardized rows, flat; labels; class weights n / (k · count).
        var x = [Double](repeating: 0, count: rows * n)
        for (r, p) in train.enumerated() { for i in 0..<n { x[r * n + i] = (p.x[i] - mean[i]) / scale[i] } }
        let y = train.map { label($0.relation) }
        var counts = [Int](repeating: 0, count: k)
        for c in y { counts[c] += 1 }
        let classWeight = counts.map { $0 > 0 ? Double(rows) / Double(k * $0) : 0 }
        var total = 0.0
        for c in y { total += classWeight[c] }
        var w = [Double](repeating: 0, count: k * n), b = [Double](repeating: 0, count: k)
        var z = [Double](repeating: 0, count: k), g = [Double](repeating: 0, count: k * n), gb = [Double](repeating: 0, count: k)
        for _ in 0..<epochs {
            for i in g.indices { g[i] = 0 }
            for c in 0..<k { gb[c] = 0 }
            for r in 0..<rows {
                let row = r * n
                for c in 0..<k {
                    var s = b[c]
                    let wc = c * n
                    for i in 0..<n { s += w[wc + i] * x[row + i] }
                    z[c] = s
                }
                let top = z.max() ?? 0
                var sum = 0.0
                for c in 0..<k { z[c] = DeterministicMath.exp(z[c] - top); sum += z[c] }
                for c in 0..<k {
                    let d = (z[c] / sum - (y[r] == c ? 1 : 0)) * classWeight[y[r]]
                    gb[c] += d
                    let wc = c * n
                    for i in 0..<n { g[wc + i] += d * x[row + i] }
                }
            }
            for i in w.indices { w[i] -= learningRate * (g[i] / total + l2 * w[i]) }
            for c in 0..<k { b[c] -= learningRate * gb[c] / total }
        }
        let heads = (0..<k).map { c in LinearHead(weights: Array(w[(c * n)..<((c + 1) * n)]).map(f), bias: f(b[c]), mean: mean, scale: scale) }
        /// The row with the highest score (the first on a tie) and its margin over unrelated.
        func decide(_ x: [Double]) -> (Int, Double) {
            let s = heads.map { $0.score(x) }
            var best = 0
            for (c, v) in s.enumerated() where v > s[best] { best = c }
            return (best, s[best] - s[0])
        }
        let calibrated = calibration.map { decide($0.x) }, truth = calibration.map { label($0.relation) }
        var thresholds = [Double](repeating: 0, count: k)
        for c in 1..<k {
            let scored = zip(calibrated, truth).filter { $0.0.0 == c }.map { ($0.0.1, $0.1 == c) }.sorted { $0.0 > $1.0 }
            var threshold = (scored.first?.0 ?? 0) + 1, right = 0
            for (j, (m, ok)) in scored.enumerated() {
                if ok { right += 1 }
                if Double(right) / Double(j + 1) >= PSMPolicy.relationPrecision { threshold = m }
            }
            thresholds[c] = max(0, Double(Float(threshold)))
        }
        let predicted = held.map { p -> Int in
            let (c, m) = decide(p.x)
            return c > 0 && m >= thresholds[c] ? c : 0
        }
        func r3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
        func metrics(_ c: Int) -> RelationMetrics.Relation {
            let truth = held.map { label($0.relation) == c }
            var tp = 0, fp = 0, fn = 0
            for (p, t) in zip(predicted, truth) {
                if p == c && t { tp += 1 } else if p == c { fp += 1 } else if t { fn += 1 }
            }
            return .init(
                train_positives: counts[c], held_out_positives: truth.filter { $0 }.count,
                held_out_precision: r3(tp + fp == 0 ? 1 : Double(tp) / Double(tp + fp)), held_out_recall: r3(tp + fn == 0 ? 1 : Double(tp) / Double(tp + fn)),
                threshold: thresholds[c])
        }
        let unrelatedRelated = zip(held, predicted).filter { $0.0.relation == nil && $0.1 != 0 }.count
        return RelationResult(
            rows: heads, thresholds: thresholds,
            metrics: .init(
                train_pairs: rows, held_out_pairs: held.count, held_out_unrelated_related: unrelatedRelated, reinforces: metrics(1), refines: metrics(2),
                supersedes: metrics(3)))
    }

    /// Negative pairs of small-talk turn `i` with up to 6 earlier small-talk turns and 2 earlier facts.
    static func chatNegatives(_ turns: [Curriculum.Turn], _ vectors: [QuantizedVector], _ i: Int, heldOut: Bool) -> [(x: [Double], y: Bool, heldOut: Bool)] {
        var out: [(x: [Double], y: Bool, heldOut: Bool)] = []
        var chats = 0, facts = 0
        for j in stride(from: i - 1, through: 0, by: -1) {
            let o = turns[j], t = turns[i]
            if o.fact == nil { guard chats < 6 else { continue }; chats += 1 } else { guard facts < 2 else { continue }; facts += 1 }
            out.append((InterferenceFeatures.vector(new: vectors[i], old: vectors[j], sameSpeaker: o.speaker == t.speaker, newText: t.text, oldText: o.text), false, heldOut))
            if chats >= 6 && facts >= 2 { break }
        }
        return out
    }

    /// Pairs (a fact turn, an earlier turn) for the consolidation head: a repeat and every earlier turn
    /// stating the same fact (same speaker, kind and value) are positive; the speaker's other facts
    /// (another kind, or the value an update replaced), the other speaker's facts and up to 6 turns of
    /// small talk are negative. Features are ``InterferenceFeatures`` of the two turns as the engine embeds them.
    public static func consolidationPairs(_ c: Curriculum, encoder: Encoder, context: Bool = true) -> [(x: [Double], y: Bool, heldOut: Bool)] {
        var out: [(x: [Double], y: Bool, heldOut: Bool)] = []
        for (ci, conv) in c.conversations.enumerated() {
            let (turns, vectors) = embeddedTurns(conv, encoder: encoder, context: context)
            let index = Dictionary(uniqueKeysWithValues: turns.enumerated().map { ($1.id, $0) })
            let heldOut = ci % 5 == 4
            for (i, t) in turns.enumerated() {
                // Sleep seeds groups with any episode, small talk too: a chat turn is paired with up to 6
                // earlier chat turns and 2 earlier facts, all negative (chat never consolidates).
                if t.fact == nil {
                    out += chatNegatives(turns, vectors, i, heldOut: heldOut)
                    continue
                }
                // The chain of turns this one repeats (a repeat of a repeat reaches the first statement).
                var same = Set<String>(), next = t.repeats
                while let r = next, let j = index[r], same.insert(r).inserted { next = turns[j].repeats }
                var negatives = 0
                for j in stride(from: i - 1, through: 0, by: -1) {
                    let o = turns[j]
                    let positive = same.contains(o.id)
                    if !positive {
                        guard o.fact == nil ? negatives < 6 : true else { continue }
                        negatives += 1
                        if negatives > 8 { continue }
                    }
                    let x = InterferenceFeatures.vector(new: vectors[i], old: vectors[j], sameSpeaker: o.speaker == t.speaker, newText: t.text, oldText: o.text)
                    out.append((x, positive, heldOut))
                }
            }
        }
        return out
    }

    public static func fitInterference(_ pairs: [(x: [Double], y: Bool, heldOut: Bool)], epochs: Int = 200, learningRate: Double = 0.3, l2: Double = 1e-2) -> InterferenceResult {
        let train = pairs.filter { !$0.heldOut }, held = pairs.filter(\.heldOut)
        let head = logistic(train.map(\.x), train.map(\.y), dimension: pairs.first?.x.count ?? 0, epochs: epochs, learningRate: learningRate, l2: l2)
        let pos = Double(train.filter(\.y).count)
        // Threshold: the lowest score at which the training pairs above it are ≥ 90% positive.
        let scored = train.map { (head.score($0.x), $0.y) }.sorted { $0.0 > $1.0 }
        var threshold = scored.first.map { $0.0 + 1 } ?? 0, tp = 0, fp = 0
        for (s, y) in scored {
            if y { tp += 1 } else { fp += 1 }
            if Double(tp) / Double(tp + fp) >= 0.9 { threshold = s }
        }
        threshold = Double(Float(threshold))
        var htp = 0, hfp = 0, hfn = 0
        for p in held {
            let predicted = head.score(p.x) >= threshold
            if predicted && p.y { htp += 1 } else if predicted { hfp += 1 } else if p.y { hfn += 1 }
        }
        func r3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
        let metrics = InterferenceMetrics(
            train_pairs: train.count, train_positives: Int(pos), held_out_pairs: held.count, held_out_positives: held.filter(\.y).count,
            held_out_precision: r3(htp + hfp == 0 ? 1 : Double(htp) / Double(htp + hfp)), held_out_recall: r3(htp + hfn == 0 ? 1 : Double(htp) / Double(htp + hfn)),
            threshold: threshold)
        return InterferenceResult(head: head, threshold: threshold, metrics: metrics)
    }

    public struct GateMetrics: Sendable, Codable, Equatable {
        public var train_turns: Int
        public var held_out_turns: Int
        public var held_out_accuracy: Double
        public var held_out_fact_recall: Double
        public var held_out_chat_recall: Double
    }

    /// Every curriculum turn as (features, states a fact), embedded as the engine embeds it.
    public static func gateExamples(_ c: Curriculum, encoder: Encoder) -> [(x: [Double], y: Bool, heldOut: Bool)] {
        gateTurns(c, encoder: encoder).map { ($0.x, $0.kind != nil, $0.heldOut) }
    }

    /// Every curriculum turn as (features, its fact kind or nil for small talk, held out).
    /// With `context`, each turn's vector is read in context, as a contextual model's engine gates it. With
    /// `novelty` the features end with the turn's novelty against the turns before it in its conversation
    /// that the engine keeps (at least three content terms), as the gate's neighbours give it.
    /// With `memo`, embeddings are shared with earlier calls given the same memo (a curriculum variant
    /// encodes only the turns it changed).
    public static func gateTurns(
        _ c: Curriculum, encoder: Encoder, context: Bool = false, novelty: Bool = false, memo: EmbeddingMemo? = nil
    ) -> [(x: [Double], kind: String?, heldOut: Bool)] {
        var out: [(x: [Double], kind: String?, heldOut: Bool)] = []
        for (ci, conv) in c.conversations.enumerated() {
            let (turns, vectors) = embeddedTurns(conv, encoder: encoder, context: context, memo: memo)
            var kept: [QuantizedVector] = []
            for (i, t) in turns.enumerated() {
                let closest = kept.map { RuleBaseline.cosine(vectors[i], $0) }.max()
                let x = GateFeatures.vector(vectors[i], text: t.text, novelty: GateFeatures.novelty(closest: closest))
                out.append((novelty ? x : Array(x.dropLast()), t.fact, ci % 5 == 4))
                if Analyzer.terms(t.text).count >= 3 { kept.append(vectors[i]) }
            }
        }
        return out
    }

    /// The memory type each curriculum fact kind teaches the type head (``PSMPolicy/gateTypes`` order):
    /// what someone likes is a preference, a trip ahead a plan, something done an event, the rest facts.
    public static let typeOfFactKind: [String: MemoryType] = [
        "pet": .fact, "job": .fact, "city": .fact, "allergy": .fact, "sibling": .fact,
        "hobby": .preference, "food": .preference, "plan": .plan, "event": .event, "life": .event,
        // The typed statements of recipe 17 (Curriculum `typed`).
        "liking": .preference, "intention": .plan, "happening": .event, "standing": .fact,
    ]

    public struct EmotionMetrics: Sendable, Codable, Equatable {
        public var train_turns: Int
        public var train_emotional: Int
        public var held_out_turns: Int
        public var held_out_accuracy: Double
        /// Held-out emotional disclosures scored ≥ 0.5, and other turns scored below.
        public var held_out_emotional_recall: Double
        public var held_out_other_recall: Double
    }

    /// The emotion head (recipe 14): balanced logistic regression over the gate's features of every
    /// curriculum turn, emotional disclosures (fact kind `life`) against everything else. Deterministic.
    public static func fitEmotion(_ turns: [(x: [Double], kind: String?, heldOut: Bool)]) -> (LinearHead, EmotionMetrics) {
        let (head, m) = fitGate(turns.map { ($0.x, $0.kind == "life", $0.heldOut) })
        return (head, EmotionMetrics(
            train_turns: m.train_turns, train_emotional: turns.filter { !$0.heldOut && $0.kind == "life" }.count, held_out_turns: m.held_out_turns,
            held_out_accuracy: m.held_out_accuracy, held_out_emotional_recall: m.held_out_fact_recall, held_out_other_recall: m.held_out_chat_recall))
    }

    public struct TypeMetrics: Sendable, Codable, Equatable {
        public var train_turns: Int
        public var held_out_turns: Int
        public var held_out_accuracy: Double
        /// Held-out recall per type name.
        public var held_out_recall: [String: Double]
    }

    /// The type head: one balanced logistic regression per type of ``PSMPolicy/gateTypes`` (one against
    /// the rest) over the fact turns, the type the highest score (the first on a tie). Deterministic.
    public static func fitGateTypes(
        _ turns: [(x: [Double], kind: String?, heldOut: Bool)], epochs: Int = 200, learningRate: Double = 0.3, l2: Double = 1e-2
    ) -> ([LinearHead], TypeMetrics) {
        let facts = turns.compactMap { t in t.kind.flatMap { typeOfFactKind[$0] }.map { (x: t.x, type: $0, heldOut: t.heldOut) } }
        let train = facts.filter { !$0.heldOut }, held = facts.filter(\.heldOut)
        let n = facts.first?.x.count ?? 0
        let heads = PSMPolicy.gateTypes.map { type in
            logistic(train.map(\.x), train.map { $0.type == type }, dimension: n, epochs: epochs, learningRate: learningRate, l2: l2)
        }
        var right = 0
        var seen: [MemoryType: Int] = [:], hit: [MemoryType: Int] = [:]
        for p in held {
            let predicted = PSMPolicy.gateType(scores: heads.map { $0.score(p.x) })
            seen[p.type, default: 0] += 1
            if predicted == p.type { right += 1; hit[p.type, default: 0] += 1 }
        }
        func r3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
        let recall = Dictionary(uniqueKeysWithValues: seen.map { ($0.key.description, r3(Double(hit[$0.key] ?? 0) / Double($0.value))) })
        return (heads, TypeMetrics(
            train_turns: train.count, held_out_turns: held.count, held_out_accuracy: r3(Double(right) / Double(max(1, held.count))), held_out_recall: recall))
    }

    /// Logistic regression with balanced classes, deterministic (as ``fit(_:options:)``).
    public static func fitGate(_ examples: [(x: [Double], y: Bool, heldOut: Bool)], epochs: Int = 200, learningRate: Double = 0.3, l2: Double = 1e-2) -> (LinearHead, GateMetrics) {
        let train = examples.filter { !$0.heldOut }, held = examples.filter(\.heldOut)
        let head = logistic(train.map(\.x), train.map(\.y), dimension: examples.first?.x.count ?? 0, epochs: epochs, learningRate: learningRate, l2: l2)
        var right = 0, facts = 0, factsRight = 0, chats = 0, chatsRight = 0
        for p in held {
            let predicted = head.score(p.x) >= 0
            if predicted == p.y { right += 1 }
            if p.y { facts += 1; if predicted { factsRight += 1 } } else { chats += 1; if !predicted { chatsRight += 1 } }
        }
        func r3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
        return (head, GateMetrics(
            train_turns: train.count, held_out_turns: held.count, held_out_accuracy: r3(Double(right) / Double(max(1, held.count))),
            held_out_fact_recall: r3(Double(factsRight) / Double(max(1, facts))), held_out_chat_recall: r3(Double(chatsRight) / Double(max(1, chats)))))
    }

    /// Writes the PSM model file: every tensor of `encoder` plus the heads and the manifest.
    public static func write(
        encoder: ModelFile, head: LinearHead, gate: LinearHead?, gateTypes: [LinearHead]? = nil, emotion: LinearHead? = nil, interference: InterferenceResult?,
        relations: RelationResult? = nil, consolidation: InterferenceResult? = nil, manifest: Report, to path: String
    ) throws -> (id: String, bytes: Int) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return try writeModel(
            encoder: encoder, head: head, gate: gate, gateTypes: gateTypes, emotion: emotion, interference: interference, relations: relations,
            consolidation: consolidation, context: manifest.context ?? false,
            fusion: manifest.fusion,
            spread: manifest.spread, spaced: manifest.options.spaced == true, recurrence: manifest.options.recurrence == true,
            interferenceFactsOnly: relations != nil, episodicLifespanDays: manifest.options.episodicLifespanDays, manifestJSON: Array(try enc.encode(manifest)), to: path)
    }

    /// Writes `encoder`'s tensors (not its `psm.*` heads) plus `head` and the manifest bytes.
    public static func writeModel(
        encoder: ModelFile, head: LinearHead, gate: LinearHead? = nil, gateTypes: [LinearHead]? = nil, emotion: LinearHead? = nil,
        interference: InterferenceResult? = nil, relations: RelationResult? = nil, consolidation: InterferenceResult? = nil, context: Bool = false, fusion: Double? = nil,
        spread: RecallSpread? = nil, spaced: Bool = false, recurrence: Bool = false, interferenceFactsOnly: Bool = false, episodicLifespanDays: Double? = nil,
        stabilityScale: Double? = nil,
        manifestJSON json: [UInt8], to path: String
    ) throws -> (id: String, bytes: Int) {
        var config = encoder.config
        if !config.source.hasPrefix("psm: ") { config.source = "psm: \(encoder.config.source) + recall head" }
        var w = ModelFileWriter(config: config, vocabulary: encoder.vocabulary)
        for (name, info) in encoder.tensors.sorted(by: { $0.key < $1.key }) where !name.hasPrefix("psm.") {
            switch info.dtype {
            case .f32: w.add(name, f32: Array(try encoder.f32(name, info.shape)), shape: info.shape)
            case .i8: w.add(name, i8: Array(try encoder.i8(name, info.shape)), shape: info.shape)
            }
        }
        let n = head.weights.count
        w.add(PSMPolicy.tensorNames.weights, f32: head.weights.map(Float.init), shape: [n])
        w.add(PSMPolicy.tensorNames.bias, f32: [Float(head.bias)], shape: [1])
        w.add(PSMPolicy.tensorNames.mean, f32: head.mean.map(Float.init), shape: [n])
        w.add(PSMPolicy.tensorNames.scale, f32: head.scale.map(Float.init), shape: [n])
        /// A one-row head under `names`.
        func single(_ h: LinearHead?, _ names: (weights: String, bias: String, mean: String, scale: String)) {
            guard let h else { return }
            let m = h.weights.count
            w.add(names.weights, f32: h.weights.map(Float.init), shape: [m])
            w.add(names.bias, f32: [Float(h.bias)], shape: [1])
            w.add(names.mean, f32: h.mean.map(Float.init), shape: [m])
            w.add(names.scale, f32: h.scale.map(Float.init), shape: [m])
        }
        /// Heads of several rows under `names`: one standardization (every row saw the same rows), one
        /// weight row and bias per row.
        func rows(_ heads: [LinearHead]?, _ names: (weights: String, bias: String, mean: String, scale: String)) {
            guard let heads, let first = heads.first else { return }
            let m = first.weights.count, k = heads.count
            w.add(names.weights, f32: heads.flatMap { $0.weights.map(Float.init) }, shape: [k, m])
            w.add(names.bias, f32: heads.map { Float($0.bias) }, shape: [k])
            w.add(names.mean, f32: first.mean.map(Float.init), shape: [m])
            w.add(names.scale, f32: first.scale.map(Float.init), shape: [m])
        }
        single(gate, PSMPolicy.gateNames)
        rows(gateTypes, PSMPolicy.gateTypeNames)
        single(emotion, PSMPolicy.emotionNames)
        /// A pairwise head with its threshold, under `names`.
        func pairHead(_ p: InterferenceResult?, _ names: (weights: String, bias: String, mean: String, scale: String, threshold: String)) {
            guard let p else { return }
            let m = p.head.weights.count
            w.add(names.weights, f32: p.head.weights.map(Float.init), shape: [m])
            w.add(names.bias, f32: [Float(p.head.bias)], shape: [1])
            w.add(names.mean, f32: p.head.mean.map(Float.init), shape: [m])
            w.add(names.scale, f32: p.head.scale.map(Float.init), shape: [m])
            w.add(names.threshold, f32: [Float(p.threshold)], shape: [1])
        }
        pairHead(interference, PSMPolicy.interferenceNames)
        if let r = relations {
            let names = PSMPolicy.relationNames
            rows(r.rows, (names.weights, names.bias, names.mean, names.scale))
            w.add(names.threshold, f32: r.thresholds.map(Float.init), shape: [r.thresholds.count])
        }
        pairHead(consolidation, PSMPolicy.consolidationNames)
        if context { w.add(PSMPolicy.contextTensor, i8: [1], shape: [1]) }
        if spaced { w.add(PSMPolicy.spacedTensor, i8: [1], shape: [1]) }
        if recurrence { w.add(PSMPolicy.recurrenceTensor, i8: [1], shape: [1]) }
        if interferenceFactsOnly { w.add(PSMPolicy.factsOnlyTensor, i8: [1], shape: [1]) }
        if let fusion { w.add(PSMPolicy.fusionTensor, f32: [Float(fusion)], shape: [1]) }
        if let spread, spread.beta > 0 {
            w.add(RecallSpread.tensor, f32: [Float(spread.beta), Float(spread.window), Float(spread.top)], shape: [3])
        }
        if let days = episodicLifespanDays { w.add(PSMPolicy.lifespanTensor, f32: [Float(days)], shape: [1]) }
        if let stabilityScale, stabilityScale != 1 { w.add(PSMPolicy.stabilityScaleTensor, f32: [Float(stabilityScale)], shape: [1]) }
        w.add(PSMPolicy.manifestTensor, i8: json.map { Int8(bitPattern: $0) }, shape: [json.count])
        return try w.write(to: path)
    }

    /// The whole pipeline: curriculum → candidates → fit → held-out metrics → model file.
    public static func train(
        encoderFile: ModelFile, options: Options, out: String, scratch: String, progress: ((Int, Int) -> Void)? = nil
    ) async throws -> (id: String, report: Report) {
        let curriculum = Curriculum(
            seed: options.seed, count: options.conversations, timeCues: options.timeCues == true, emotions: options.gate && options.emotions == true,
            warmth: options.warmth == true)
        let encoder = try Encoder(model: encoderFile)
        let collected = try await collect(curriculum, encoder: encoder, options: options, scratch: scratch, progress: progress)
        // Recipe 10 chooses the fusion constant and the spreading on the training questions (about 1,300),
        // leaving the held-out ones (about 300) to measure only: steadier across curriculum seeds (SPEC.md §12.7).
        let onHeldOut = options.chooseOnTraining != true
        let chosen = options.fusion.map { (k: $0, mrr: [String: Double]()) } ?? chooseFusion(collected, heldOut: onHeldOut)
        let groups = collected.map { $0.fused(chosen.k) }
        let head = fit(groups, options: options)
        let spread = options.spread.map { (spread: $0.beta > 0 ? $0 : nil, mrr: [String: Double]()) } ?? chooseSpread(groups, head: head, heldOut: onHeldOut)
        // The pairwise heads learn from conversations without echoes (same seed): a linear head over two
        // vectors takes the other speaker's echo of a value for the fact itself (SPEC.md §12.7).
        let plain = options.interference ? relationCurriculum(options) : nil
        let relations = plain.map { fitRelations(relationPairs($0, encoder: encoder, context: options.context)) }
        // The consolidation head learns from the variant with repeated episodes.
        let repeated = options.consolidation == true ? Curriculum(seed: options.seed, count: options.conversations, repeats: true, echoes: false) : nil
        let consolidation = repeated.map { fitInterference(consolidationPairs($0, encoder: encoder, context: options.context)) }
        // The typed variant differs from the plain curriculum only in some small talk: the gate's pass
        // and the type head's share their embeddings, so the second encodes only what changed.
        let typedCurriculum = options.gate && options.types == true && options.typedStatements == true
            ? Curriculum(
                seed: options.seed, count: options.conversations, timeCues: options.timeCues == true, emotions: options.emotions == true,
                warmth: options.warmth == true, typed: true) : nil
        let memo = typedCurriculum.map { _ in EmbeddingMemo() }
        let gateTurns = options.gate
            ? gateTurns(
                curriculum, encoder: encoder, context: options.context && options.gateContext == true, novelty: options.gateNovelty == true,
                memo: memo) : []
        let gate = options.gate ? fitGate(gateTurns.map { ($0.x, $0.kind != nil, $0.heldOut) }) : nil
        // The type head learns from the variant with typed statements (recipe 17): the same conversations
        // with a quarter of their small talk a typed statement, read as the gate reads.
        let typeTurns = typedCurriculum.map {
            Self.gateTurns($0, encoder: encoder, context: options.context && options.gateContext == true, novelty: options.gateNovelty == true, memo: memo)
        }
        let types = options.gate && options.types == true ? fitGateTypes(typeTurns ?? gateTurns) : nil
        let emotion = options.gate && options.emotions == true ? fitEmotion(gateTurns) : nil
        let report = Report(
            curriculum_digest: curriculum.digest, options: options, encoder: encoderFile.id, questions: groups.count,
            examples: groups.reduce(0) { $0 + $1.labels.count }, positives: groups.reduce(0) { $0 + $1.labels.filter { $0 }.count },
            held_out_baseline: evaluate(groups, head: nil), held_out_trained: evaluate(groups, head: head, spread: spread.spread),
            weights: Dictionary(uniqueKeysWithValues: zip(RecallFeatures.names, head.weights)), bias: head.bias, relations: relations?.metrics, consolidation: consolidation?.metrics,
            consolidation_curriculum_digest: repeated?.digest, interference_curriculum_digest: plain?.digest, gate: gate?.1, gate_types: types?.1,
            types_curriculum_digest: typedCurriculum?.digest, emotion: emotion?.1,
            context: options.context, fusion: chosen.k, fusion_mrr: chosen.mrr.isEmpty ? nil : chosen.mrr,
            spread: spread.spread, spread_mrr: spread.mrr.isEmpty ? nil : spread.mrr)
        let (id, _) = try write(
            encoder: encoderFile, head: head, gate: gate?.0, gateTypes: types?.0, emotion: emotion?.0, interference: nil,
            relations: relations, consolidation: consolidation, manifest: report, to: out)
        return (id, report)
    }
}
