import Foundation
import Inference
import Journal
import Projections

/// The features the recall-weighting head sees for one candidate (SPEC.md §12.7). Computed with
/// IEEE operations in a fixed order and `DeterministicMath`, so a weight depends only on its inputs.
public enum RecallFeatures {
    public static let names = [
        "lexical_log1p", "lexical_hit", "lexical_rrf", "dense", "dense_hit", "dense_rrf", "strength", "age_log1p_days",
        "recalls_log1p", "confidence", "valid", "semantic", "archival", "speaker_named", "fused", "lexical_rel", "dense_rel",
        "token_match", "token_rel", "question", "time_match", "emotional_weight",
    ]
    /// Heads of recipe 4 and earlier weigh the first 14 features (no `fused`), recipe 5 the first 15
    /// (no `lexical_rel`, `dense_rel`), recipe 8 the first 17 (no `token_match`, `token_rel`), recipe 9
    /// the first 19 (no `question`), recipe 12 the first 20 (no `time_match`), recipe 13 the first 21 (no
    /// `emotional_weight`); every length here loads, and a head weighs its first features.
    public static let loadableCounts = [14, 15, 17, 19, 20, 21, 22]
    /// The token-matching features (``TokenMatcher``): a head that weighs either needs the engine to fill
    /// ``Candidate/tokenMatch``.
    public static let tokenFeatures = ["token_match", "token_rel"]
    public static let firstVersionCount = 14
    public static var count: Int { names.count }
    /// The pool the relative scores are measured against: candidates ranked 1...50 in either list,
    /// which is every candidate of a recall with k ≤ 50, so the features do not depend on k.
    public static let poolRank = 50

    /// Whether a candidate with these list ranks (0 = not in the list) is in the pool.
    @inline(__always) public static func inPool(lexicalRank: Int, denseRank: Int) -> Bool {
        (1...poolRank).contains(lexicalRank) || (1...poolRank).contains(denseRank)
    }
    @inline(__always) public static func inPool(_ c: Candidate) -> Bool { inPool(lexicalRank: c.lexicalRank, denseRank: c.denseRank) }

    /// What the features of one query share: its terms, the dates it names (``TimeCue``), and the mean
    /// of the pooled `lexical_log1p`, `dense` and `token_match` scores over the pool (0 for an empty pool).
    public struct Query: Sendable {
        public var terms: Set<String>
        public var lexicalMean: Double
        public var denseMean: Double
        public var tokenMean: Double
        public var cues: [TimeCue] = []
    }

    /// The query's terms and its candidates' mean scores, computed once per query.
    public static func query(_ text: String, _ candidates: [Candidate]) -> Query {
        // Summed in slot order, not candidate order: a larger recall reorders the pool (its members gain
        // fused score from ranks past 50), and the sums must not depend on that.
        let pool = candidates.filter(inPool).sorted { $0.slot < $1.slot }
        var lexical = 0.0, dense = 0.0, token = 0.0
        for c in pool {
            lexical += pooledLexical(c)
            dense += pooledDense(c)
            token += pooledToken(c)
        }
        let n = Double(max(1, pool.count))
        return Query(terms: Set(Analyzer.terms(text)), lexicalMean: lexical / n, denseMean: dense / n, tokenMean: token / n, cues: TimeCue.parse(text))
    }

    @inline(__always) static func lexicalLog1p(_ c: Candidate) -> Double { DeterministicMath.log(1 + max(0, c.lexical)) }
    /// A score counts only from a rank within ``poolRank``; past it (or in neither list) it is 0. A list
    /// only scores its own members, so a rank past 50 has a score only when the recall asked for more
    /// candidates; ignoring it keeps the features the same for every k.
    @inline(__always) static func pooledLexical(_ c: Candidate) -> Double { (1...poolRank).contains(c.lexicalRank) ? lexicalLog1p(c) : 0 }
    @inline(__always) static func pooledDense(_ c: Candidate) -> Double { (1...poolRank).contains(c.denseRank) ? c.dense : 0 }
    /// Token matching counts for pooled candidates only (``TokenMatcher/fill(_:query:)`` sets no other).
    @inline(__always) static func pooledToken(_ c: Candidate) -> Double { inPool(c) ? c.tokenMatch : 0 }

    /// The feature vectors of a query's candidates.
    public static func vectors(_ candidates: [Candidate], query text: String, at: Int64) -> [[Double]] {
        let q = query(text, candidates)
        return candidates.map { vector($0, q, at: at) }
    }

    public static func vector(_ c: Candidate, _ q: Query, at: Int64) -> [Double] {
        let m = c.view.record
        let ageDays = Double(max(0, at - m.createdAt)) / 86_400_000_000
        let speakerNamed = !m.speaker.isEmpty && !q.terms.isDisjoint(with: Analyzer.terms(m.speaker))
        let lexical = lexicalLog1p(c)
        return [
            lexical, c.lexicalRank > 0 ? 1 : 0, c.lexicalRank > 0 ? 60 / (60 + Double(c.lexicalRank)) : 0,
            c.dense, c.denseRank > 0 ? 1 : 0, c.denseRank > 0 ? 60 / (60 + Double(c.denseRank)) : 0, c.view.strength,
            DeterministicMath.log(1 + ageDays), DeterministicMath.log(1 + Double(m.recallCount)), m.confidence.value, m.isValid ? 1 : 0,
            m.tier == .semantic ? 1 : 0, m.tier == .archival ? 1 : 0, speakerNamed ? 1 : 0, c.fused,
            pooledLexical(c) - q.lexicalMean, pooledDense(c) - q.denseMean, pooledToken(c), pooledToken(c) - q.tokenMean,
            asks(m.text) ? 1 : 0, q.cues.contains { $0.matches(m.validFrom) } ? 1 : 0, m.emotionalWeight.value,
        ]
    }

    /// Whether a memory's text ends with a question mark (`?` or `？`, trailing white space ignored): a
    /// turn that asks something is a prompt for the other speaker and rarely holds the answer itself.
    @inline(__always) public static func asks(_ text: String) -> Bool {
        guard let last = text.last(where: { !$0.isWhitespace }) else { return false }
        return last == "?" || last == "？"
    }
}

/// Context spreading (SPEC.md §12.7): a turn is often relevant because of the turns around it — a
/// question about a cake is answered by "dairy-free vanilla with strawberry filling", two turns after the
/// one that names the cake. After the head has scored the candidates, each of the `top` best pooled
/// candidates lends `beta` × (its score − the lowest pooled score) to every other candidate of the same
/// non-empty session whose slot is within `window` of its own. Slots are kept memories in the order they
/// were made, so a dropped turn does not count as distance. Semantic memories have no session and
/// neither lend nor borrow. Sums run in source order (score, then slot), over the scores before spreading.
public struct RecallSpread: Sendable, Equatable, Codable {
    public var beta: Double
    public var window: Int
    public var top: Int

    public init(beta: Double, window: Int, top: Int = RecallSpread.defaultTop) {
        self.beta = beta; self.window = window; self.top = top
    }

    /// Tensor `psm.recall.spread`, f32 [3]: beta, window, top. Absent: no spreading.
    public static let tensor = "psm.recall.spread"
    public static let defaultTop = 10
    /// Bounds a model file's values are checked against.
    public static let betaRange = 0.0...10.0, windowRange = 0...16, topRange = 0...RecallFeatures.poolRank

    /// `scores` after spreading. `slots` and `sessions` describe each candidate's memory; `pooled` says
    /// whether it ranks within ``RecallFeatures/poolRank`` in either list (only those lend, and the floor is
    /// theirs, so the result does not depend on how many candidates a recall asked for).
    public func apply(_ scores: [Double], slots: [UInt32], sessions: [String], pooled: [Bool]) -> [Double] {
        guard beta > 0, window > 0, top > 0 else { return scores }
        let lenders = scores.indices.filter { pooled[$0] && !sessions[$0].isEmpty }
        guard let floor = scores.indices.filter({ pooled[$0] }).map({ scores[$0] }).min() else { return scores }
        let sources = lenders.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : slots[$0] < slots[$1] }.prefix(top)
        var out = scores
        for j in sources {
            let lend = beta * (scores[j] - floor)
            guard lend > 0 else { continue }
            for i in scores.indices where i != j && sessions[i] == sessions[j] {
                let d = slots[i] > slots[j] ? slots[i] - slots[j] : slots[j] - slots[i]
                if d <= UInt32(window) { out[i] += lend }
            }
        }
        return out
    }
}

/// Features of the interference head for a new memory and an existing one (SPEC.md §12.7): the
/// element-wise product and absolute difference of their dequantized vectors, their cosine, whether the
/// same person said both, and the Jaccard overlap of their analyzed terms.
public enum InterferenceFeatures {
    public static func count(dimension d: Int) -> Int { 2 * d + 3 }

    public static func vector(new a: QuantizedVector, old b: QuantizedVector, sameSpeaker: Bool, newText: String, oldText: String) -> [Double] {
        let d = a.values.count
        var out = [Double](repeating: 0, count: 2 * d + 3)
        var dot = 0.0
        for i in 0..<d {
            let x = Double(a.values[i]) * Double(a.scale), y = Double(b.values[i]) * Double(b.scale)
            out[i] = x * y * Double(d)
            out[d + i] = abs(x - y) * Double(d).squareRoot()
            dot += x * y
        }
        let ta = Set(Analyzer.terms(newText)), tb = Set(Analyzer.terms(oldText))
        out[2 * d] = dot
        out[2 * d + 1] = sameSpeaker ? 1 : 0
        out[2 * d + 2] = ta.union(tb).isEmpty ? 0 : Double(ta.intersection(tb).count) / Double(ta.union(tb).count)
        return out
    }
}

/// Features of the gate head for one observation (SPEC.md §12.7): its dequantized vector ×√hidden, five
/// surface cues — ln(1+terms), a digit, a capitalised word after the first, a question mark, ln(1+bytes) —
/// and, since recipe 16, its novelty against what the user already has. Heads of recipes 11 to 15 weigh
/// the first hidden + 5.
public enum GateFeatures {
    public static func count(dimension d: Int) -> Int { d + 6 }
    /// The width of gate heads trained before the novelty feature (recipes 11 to 15).
    public static func countWithoutNovelty(dimension d: Int) -> Int { d + 5 }

    public static func vector(_ v: QuantizedVector, text: String, novelty: Double) -> [Double] {
        let d = v.values.count
        var out = [Double](repeating: 0, count: d + 6)
        let root = Double(d).squareRoot()
        for i in 0..<d { out[i] = Double(v.values[i]) * Double(v.scale) * root }
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        out[d] = DeterministicMath.log(1 + Double(Analyzer.terms(text).count))
        out[d + 1] = text.unicodeScalars.contains { $0.properties.numericType != nil } ? 1 : 0
        out[d + 2] = words.dropFirst().contains { $0.first?.isUppercase == true } ? 1 : 0
        out[d + 3] = text.contains("?") ? 1 : 0
        out[d + 4] = DeterministicMath.log(1 + Double(text.utf8.count))
        out[d + 5] = novelty
        return out
    }

    /// Novelty from the highest cosine with the user's memories: 1 − that cosine, within 0…1; 1 when
    /// the user has no memory to compare with.
    public static func novelty(closest cosine: Double?) -> Double {
        guard let c = cosine else { return 1 }
        return 1 - max(0, min(1, c))
    }

    /// The novelty of an observation given the gate's neighbours: the highest cosine among those in the
    /// dense list (the exact int8 cosine candidate generation computed).
    public static func novelty(_ neighbours: [Candidate]) -> Double {
        novelty(closest: neighbours.filter { $0.denseRank > 0 }.map(\.dense).max())
    }
}

/// A linear head over standardized features: `score = bias + Σ w[i] · (x[i] − mean[i]) / scale[i]`.
public struct LinearHead: Sendable, Equatable {
    public var weights: [Double]
    public var bias: Double
    public var mean: [Double]
    public var scale: [Double]

    public init(weights: [Double], bias: Double, mean: [Double], scale: [Double]) {
        self.weights = weights; self.bias = bias; self.mean = mean; self.scale = scale
    }

    public func score(_ x: [Double]) -> Double {
        var s = bias
        for i in 0..<weights.count { s += weights[i] * ((x[i] - mean[i]) / scale[i]) }
        return s
    }
}

/// The Personal Small Model as a policy: the encoder plus learned heads from one model file (its id
/// is what every decision records). Heads not trained yet fall back to the rule baseline's decisions,
/// recorded under this model's id.
public struct PSMPolicy: MemoryPolicy {
    public let modelID: [UInt8]
    public let recall: LinearHead
    /// The interference head and the logit at or above which a new memory supersedes an old one (optional).
    public let interference: LinearHead?
    public let interferenceThreshold: Double
    /// The four-way interference head (tensors `psm.interference.relation.*`, optional, `psm
    /// train --interference`): one row per ``relations`` entry — unrelated, reinforces, refines,
    /// supersedes — over ``InterferenceFeatures``, and per row the margin over unrelated at or above
    /// which the relation holds (the first, unrelated's, is 0). A model has it or the two-way head above.
    public let relationHeads: [LinearHead]?
    public let relationThresholds: [Double]
    /// Interference between facts only (tensor `psm.interference.facts_only` = 1, written with the relation head): the heads
    /// score a neighbour only when the gate rated the new memory worth keeping (not small talk) and the
    /// neighbour too, and the same (named) speaker said both. People update, repeat and refine their own facts.
    public let interferenceFactsOnly: Bool
    /// The consolidation head and the score at or above which sleep groups an episode with a seed
    /// (optional; without it the rule's cosine ≥ 0.9).
    public let consolidation: LinearHead?
    public let consolidationThreshold: Double
    /// The gate head (optional): the probability that an observation states something worth keeping,
    /// which sets its type, confidence and stability (decay scheduling).
    public let gateHead: LinearHead?
    /// The type head (tensors `psm.gate.type.*`, in the default model since recipe 17; `psm train --no-types` leaves it out): one linear head per type of ``gateTypes``;
    /// a turn the gate head keeps as worth remembering gets the type with the highest score. Nil without it
    /// (every such turn is a fact).
    public let gateTypeHeads: [LinearHead]?
    /// The emotion head (tensors `psm.gate.emotion.*`, optional, recipe 14; needs the gate head): the
    /// probability that an observation is an emotional disclosure, which is the memory's emotional weight
    /// and lengthens its stability by that fraction (SPEC.md §12.7). Nil without it (weight 0).
    public let emotionHead: LinearHead?
    /// Read observations in context (tensor `psm.context`, SPEC.md §11.4) and the fusion constant
    /// (tensor `psm.recall.fusion`); models without them read turns alone and fuse with k = 60.
    public let readsContext: Bool
    public let fusionConstant: Double
    /// Seconds an inactive episode stays in the active tiers (tensor `psm.sleep.episodic_lifespan_days`,
    /// SPEC.md §12.7); nil without the tensor (until its strength falls below the floor).
    public let episodicLifespan: UInt64?
    /// Spaced reinforcement (tensor `psm.decay.spaced` = 1): `helped` raises stability by the time since
    /// the memory's strength was last anchored, at most doubling it, instead of always doubling it.
    public let spacedReinforcement: Bool
    /// Consolidate recurrences only (tensor `psm.sleep.recurrence` = 1, SPEC.md §12.7): sleep groups an
    /// episode with a seed only when they come from different sessions and neither is small talk. A turn
    /// and the reply read in its context are one episode, not a recurrence, though their vectors meet.
    public let consolidatesRecurrences: Bool
    /// Context spreading after the head (tensor `psm.recall.spread`); nil without the tensor.
    public let spread: RecallSpread?
    /// Decay learned from utility (tensor `psm.decay.stability_scale`, SPEC.md §12.8): the stability the
    /// model gives a memory it creates (the gate's, a consolidation's) is multiplied by it; 1 without it.
    public let stabilityScale: Double
    let base: RuleBaseline

    /// Stability given to an observation the gate head rates as worth keeping, and to one it does not.
    public static let factStability: UInt64 = 180 * 86_400
    public static let chatStability: UInt64 = 7 * 86_400

    public static let tensorNames = (weights: "psm.recall.weight", bias: "psm.recall.bias", mean: "psm.recall.mean", scale: "psm.recall.scale")
    public static let manifestTensor = "psm.manifest"
    public static let contextTensor = "psm.context", fusionTensor = "psm.recall.fusion", spacedTensor = "psm.decay.spaced"
    public static let recurrenceTensor = "psm.sleep.recurrence", factsOnlyTensor = "psm.interference.facts_only"
    public static let stabilityScaleTensor = "psm.decay.stability_scale"
    /// Bounds a model file's stability scale is checked against.
    public static let stabilityScaleRange = 0.01...100.0
    public static let lifespanTensor = "psm.sleep.episodic_lifespan_days"
    public static let gateNames = (weights: "psm.gate.weight", bias: "psm.gate.bias", mean: "psm.gate.mean", scale: "psm.gate.scale")
    public static let gateTypeNames = (weights: "psm.gate.type.weight", bias: "psm.gate.type.bias", mean: "psm.gate.type.mean", scale: "psm.gate.type.scale")
    public static let emotionNames = (weights: "psm.gate.emotion.weight", bias: "psm.gate.emotion.bias", mean: "psm.gate.emotion.mean", scale: "psm.gate.emotion.scale")
    /// The types the type head chooses among, in the order of its rows.
    public static let gateTypes: [MemoryType] = [.fact, .preference, .plan, .event]

    /// The type of the highest of the type head's `scores` (one per ``gateTypes``; the first on a tie).
    public static func gateType(scores: [Double]) -> MemoryType {
        var best = 0
        for (i, s) in scores.enumerated() where s > scores[best] { best = i }
        return gateTypes[best]
    }
    public static let interferenceNames = (
        weights: "psm.interference.weight", bias: "psm.interference.bias", mean: "psm.interference.mean", scale: "psm.interference.scale",
        threshold: "psm.interference.threshold"
    )
    public static let relationNames = (
        weights: "psm.interference.relation.weight", bias: "psm.interference.relation.bias", mean: "psm.interference.relation.mean",
        scale: "psm.interference.relation.scale", threshold: "psm.interference.relation.threshold"
    )
    /// The relation head's rows: nil (unrelated) first, then the relations.
    public static let relations: [Interference.Relation?] = [nil, .reinforces, .refines, .supersedes]
    /// The precision each relation's threshold is set for on the calibration conversations (SPEC.md
    /// §12.7). 0.8 for reinforces and refines (cheap mistakes: a longer stability, a flag) flagged 46%
    /// of LoCoMo dev's turns as refinements; 0.9 flags 1%.
    public static let relationPrecision = 0.9
    public static let consolidationNames = (
        weights: "psm.consolidation.weight", bias: "psm.consolidation.bias", mean: "psm.consolidation.mean", scale: "psm.consolidation.scale",
        threshold: "psm.consolidation.threshold"
    )

    /// Loads the heads of a PSM model file; throws when it has none (a bare encoder).
    public init(model: ModelFile) throws {
        guard let recallInfo = model.tensors[PSMPolicy.tensorNames.weights] else {
            throw EngineError.invalidArgument("\(model.path) has no PSM heads (psm.recall.*): it is a bare encoder; run `psm train`")
        }
        let n = recallInfo.shape.first ?? 0
        guard recallInfo.shape.count == 1, RecallFeatures.loadableCounts.contains(n) else {
            throw EngineError.invalidArgument(
                "\(model.path): recall head of shape \(recallInfo.shape), expected one of \(RecallFeatures.loadableCounts.map { "[\($0)]" }.joined(separator: ", "))")
        }
        func f(_ name: String, _ shape: [Int]) throws -> [Double] {
            do { return try model.f32(name, shape).map(Double.init) } catch { throw EngineError.invalidArgument("\(model.path): \(error)") }
        }
        let w = try f(PSMPolicy.tensorNames.weights, [n]), b = try f(PSMPolicy.tensorNames.bias, [1])
        let mean = try f(PSMPolicy.tensorNames.mean, [n]), scale = try f(PSMPolicy.tensorNames.scale, [n])
        guard scale.allSatisfy({ $0 > 0 && $0.isFinite }), w.allSatisfy(\.isFinite), mean.allSatisfy(\.isFinite), b[0].isFinite else {
            throw EngineError.invalidArgument("\(model.path): recall head has non-finite values or a non-positive scale")
        }
        recall = LinearHead(weights: w, bias: b[0], mean: mean, scale: scale)
        modelID = Decider.bytes(hex: model.id)
        /// An optional i8 [1] flag, 0 or 1 (absent = 0).
        func flag(_ name: String) throws -> Bool {
            guard model.tensors[name] != nil else { return false }
            let c = try model.i8(name, [1])
            guard c[0] == 0 || c[0] == 1 else { throw EngineError.invalidArgument("\(model.path): \(name) is \(c[0]), not 0 or 1") }
            return c[0] == 1
        }
        readsContext = try flag(PSMPolicy.contextTensor)
        spacedReinforcement = try flag(PSMPolicy.spacedTensor)
        consolidatesRecurrences = try flag(PSMPolicy.recurrenceTensor)
        interferenceFactsOnly = try flag(PSMPolicy.factsOnlyTensor)
        /// An optional f32 [1] tensor, refused outside `range`.
        func scalar(_ name: String, _ what: String, unit: String = "", in range: ClosedRange<Int>) throws -> Double? {
            guard model.tensors[name] != nil else { return nil }
            let x = try f(name, [1])[0]
            guard x.isFinite, x >= Double(range.lowerBound), x <= Double(range.upperBound) else {
                throw EngineError.invalidArgument("\(model.path): \(what) \(x)\(unit) outside \(range)")
            }
            return x
        }
        fusionConstant = try scalar(PSMPolicy.fusionTensor, "fusion constant", in: 0...1000) ?? CandidateQuery.defaultFusionConstant
        episodicLifespan = try scalar(PSMPolicy.lifespanTensor, "episodic lifespan", unit: " days", in: 1...3650).map { UInt64(($0 * 86_400).rounded()) }
        if model.tensors[RecallSpread.tensor] != nil {
            let v = try f(RecallSpread.tensor, [3])
            guard v.allSatisfy(\.isFinite), RecallSpread.betaRange.contains(v[0]), v[1] == v[1].rounded(), v[2] == v[2].rounded(),
                RecallSpread.windowRange.contains(Int(v[1])), RecallSpread.topRange.contains(Int(v[2]))
            else {
                throw EngineError.invalidArgument(
                    "\(model.path): \(RecallSpread.tensor) is \(v): expected beta in \(RecallSpread.betaRange), a whole window in \(RecallSpread.windowRange) and a whole top in \(RecallSpread.topRange)")
            }
            spread = RecallSpread(beta: v[0], window: Int(v[1]), top: Int(v[2]))
        } else {
            spread = nil
        }
        if model.tensors[PSMPolicy.stabilityScaleTensor] != nil {
            let x = try f(PSMPolicy.stabilityScaleTensor, [1])[0]
            guard x.isFinite, PSMPolicy.stabilityScaleRange.contains(x) else {
                throw EngineError.invalidArgument("\(model.path): \(PSMPolicy.stabilityScaleTensor) is \(x), outside \(PSMPolicy.stabilityScaleRange)")
            }
            stabilityScale = x
        } else {
            stabilityScale = 1
        }
        base = RuleBaseline(readsContext: readsContext, fusion: fusionConstant, episodicLifespan: episodicLifespan)
        /// The width of a head over ``GateFeatures`` in the file: hidden + 5 for one trained before the novelty
        /// feature (recipes 11 to 15), else hidden + 6, which the shape checks then expect.
        func gateWidth(_ weights: String) -> Int {
            let d = model.config.hidden
            return model.tensors[weights]?.shape.last == GateFeatures.countWithoutNovelty(dimension: d)
                ? GateFeatures.countWithoutNovelty(dimension: d) : GateFeatures.count(dimension: d)
        }
        /// An optional one-row head over ``GateFeatures`` (weights, mean and scale [hidden + 6], or [hidden + 5]
        /// without novelty; bias [1]).
        func gateFeaturesHead(_ what: String, _ names: (weights: String, bias: String, mean: String, scale: String)) throws -> LinearHead? {
            guard let info = model.tensors[names.weights] else { return nil }
            let d = model.config.hidden, m = gateWidth(names.weights)
            guard info.shape == [m] else {
                throw EngineError.invalidArgument(
                    "\(model.path): \(what) head of shape \(info.shape), expected [\(GateFeatures.count(dimension: d))] or, without novelty, [\(GateFeatures.countWithoutNovelty(dimension: d))]")
            }
            let w = try f(names.weights, [m]), b = try f(names.bias, [1]), mean = try f(names.mean, [m]), scale = try f(names.scale, [m])
            guard scale.allSatisfy({ $0 > 0 && $0.isFinite }), w.allSatisfy(\.isFinite), mean.allSatisfy(\.isFinite), b[0].isFinite else {
                throw EngineError.invalidArgument("\(model.path): \(what) head has non-finite values or a non-positive scale")
            }
            return LinearHead(weights: w, bias: b[0], mean: mean, scale: scale)
        }
        gateHead = try gateFeaturesHead("gate", PSMPolicy.gateNames)
        /// An optional head of `k` rows over `m` features sharing one standardization.
        func rowsHead(_ what: String, _ names: (weights: String, bias: String, mean: String, scale: String), rows k: Int, width m: Int) throws -> [LinearHead]? {
            guard let info = model.tensors[names.weights] else { return nil }
            guard info.shape == [k, m] else { throw EngineError.invalidArgument("\(model.path): \(what) head of shape \(info.shape), expected [\(k), \(m)]") }
            let rw = try f(names.weights, [k, m]), rb = try f(names.bias, [k])
            let rm = try f(names.mean, [m]), rs = try f(names.scale, [m])
            guard rs.allSatisfy({ $0 > 0 && $0.isFinite }), rw.allSatisfy(\.isFinite), rm.allSatisfy(\.isFinite), rb.allSatisfy(\.isFinite) else {
                throw EngineError.invalidArgument("\(model.path): \(what) head has non-finite values or a non-positive scale")
            }
            return (0..<k).map { LinearHead(weights: Array(rw[($0 * m)..<(($0 + 1) * m)]), bias: rb[$0], mean: rm, scale: rs) }
        }
        if model.tensors[PSMPolicy.gateTypeNames.weights] != nil, gateHead == nil {
            throw EngineError.invalidArgument("\(model.path): a type head (psm.gate.type.*) needs the gate head")
        }
        gateTypeHeads = try rowsHead("type", PSMPolicy.gateTypeNames, rows: PSMPolicy.gateTypes.count, width: gateWidth(PSMPolicy.gateTypeNames.weights))
        if model.tensors[PSMPolicy.emotionNames.weights] != nil, gateHead == nil {
            throw EngineError.invalidArgument("\(model.path): an emotion head (psm.gate.emotion.*) needs the gate head")
        }
        emotionHead = try gateFeaturesHead("emotion", PSMPolicy.emotionNames)
        /// An optional pairwise head over ``InterferenceFeatures`` with its threshold.
        func pairHead(
            _ what: String, _ names: (weights: String, bias: String, mean: String, scale: String, threshold: String)
        ) throws -> (LinearHead, Double)? {
            guard let info = model.tensors[names.weights] else { return nil }
            let m = info.shape.first ?? 0
            guard info.shape.count == 1, m == InterferenceFeatures.count(dimension: model.config.hidden) else {
                throw EngineError.invalidArgument("\(model.path): \(what) head of shape \(info.shape), expected [\(InterferenceFeatures.count(dimension: model.config.hidden))]")
            }
            let iw = try f(names.weights, [m]), ib = try f(names.bias, [1])
            let im = try f(names.mean, [m]), isc = try f(names.scale, [m])
            let t = try f(names.threshold, [1])
            guard isc.allSatisfy({ $0 > 0 && $0.isFinite }), iw.allSatisfy(\.isFinite), im.allSatisfy(\.isFinite), ib[0].isFinite, t[0].isFinite else {
                throw EngineError.invalidArgument("\(model.path): \(what) head has non-finite values or a non-positive scale")
            }
            return (LinearHead(weights: iw, bias: ib[0], mean: im, scale: isc), t[0])
        }
        let i = try pairHead("interference", PSMPolicy.interferenceNames)
        interference = i?.0
        interferenceThreshold = i?.1 ?? .infinity
        let names = PSMPolicy.relationNames, k = PSMPolicy.relations.count
        if model.tensors[names.weights] != nil, i != nil {
            throw EngineError.invalidArgument("\(model.path): has both the two-way interference head (psm.interference.*) and the relation head; expected one")
        }
        relationHeads = try rowsHead(
            "relation", (names.weights, names.bias, names.mean, names.scale), rows: k, width: InterferenceFeatures.count(dimension: model.config.hidden))
        if relationHeads != nil {
            let t = try f(names.threshold, [k])
            guard t.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw EngineError.invalidArgument("\(model.path): relation head's thresholds \(t) must be finite and ≥ 0")
            }
            relationThresholds = t
        } else {
            relationThresholds = []
        }
        let c = try pairHead("consolidation", PSMPolicy.consolidationNames)
        consolidation = c?.0
        consolidationThreshold = c?.1 ?? .infinity
    }

    /// The training manifest stored in the model file (JSON), if any.
    public static func manifest(_ model: ModelFile) -> String? {
        guard let info = model.tensors[manifestTensor], let bytes = try? model.i8(manifestTensor, info.shape) else { return nil }
        return String(decoding: bytes.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The rule baseline's keep/drop (a turn with fewer than three content terms is dropped), with type,
    /// confidence and stability from the gate head when the model has one.
    public func gate(_ input: GateInput) -> GateDecision {
        var g = gateBeforeScaling(input)
        g.stability = scaled(g.stability)
        return g
    }

    /// A stability the model sets, times the stability scale: rounded to whole seconds, at least an hour
    /// (the weakening rules' floor) and at most ``MemoryEvent/maxStability``; unchanged at scale 1.
    func scaled(_ s: UInt64) -> UInt64 {
        guard stabilityScale != 1 else { return s }
        return min(MemoryEvent.maxStability, max(3_600, UInt64((Double(s) * stabilityScale).rounded())))
    }

    func gateBeforeScaling(_ input: GateInput) -> GateDecision {
        var g = base.gate(input)
        guard let head = gateHead, let v = input.vector else { return g }
        // Every head weighs its first features: those of recipes 11 to 15 ignore the novelty at the end.
        let novelty = GateFeatures.novelty(input.neighbours)
        let x = GateFeatures.vector(v, text: input.text, novelty: novelty)
        let p = 1 / (1 + DeterministicMath.exp(-head.score(x)))
        let fact = p >= 0.5
        let typeScores = fact ? gateTypeHeads?.map { $0.score(x) } : nil
        g.type = fact ? (typeScores.map { PSMPolicy.gateType(scores: $0) } ?? .fact) : .smallTalk
        g.confidence = Fixed(p)
        g.stability = fact ? PSMPolicy.factStability : PSMPolicy.chatStability
        g.scores.append(Fixed(p))
        // With the type head, the decision also records each type's score (clamped as recall weights are).
        for s in typeScores ?? [] { g.scores.append(Fixed(max(-1e6, min(1e6, s)))) }
        if let e = emotionHead {
            // The emotional weight, recorded as the decision's last score; a felt memory lasts longer.
            let w = Fixed(1 / (1 + DeterministicMath.exp(-e.score(x))))
            g.emotionalWeight = w
            g.stability = PSMPolicy.emotionalStability(g.stability, weight: w)
            g.scores.append(w)
        }
        // A gate head that weighs novelty (recipe 16) records it last, so the decision shows what it saw.
        if head.weights.count == GateFeatures.count(dimension: v.values.count) { g.scores.append(Fixed(novelty)) }
        return g
    }

    /// The neighbour the new memory interferes with, and how (SPEC.md §12.7). With the relation head:
    /// for each scored neighbour the row with the highest score (the first on a tie); a relation holds
    /// when its score exceeds unrelated's by at least its threshold, and among those the neighbour whose
    /// excess over the threshold is largest wins (ties: the smaller memory id); the recorded score is the
    /// relation's softmax probability. With the two-way head (files trained before the relation head): the best-scoring
    /// neighbour at or above the threshold supersedes, its score the logistic of the head's.
    /// With ``interferenceFactsOnly`` only facts of the same speaker are scored.
    public func interference(_ input: GateInput, gate: GateDecision, neighbours: [(candidate: Candidate, vector: QuantizedVector?)]) -> Interference? {
        guard relationHeads != nil || interference != nil, let v = input.vector else { return nil }
        let factsOnly = interferenceFactsOnly
        if factsOnly { guard gate.type != .smallTalk, !input.speaker.isEmpty else { return nil } }
        var best: (relation: Interference.Relation, memory: ID128, margin: Double, probability: Double)? = nil
        for (c, nv) in neighbours {
            guard let nv, nv.values.count == v.values.count, c.view.record.isValid else { continue }
            if factsOnly { guard c.view.record.type != .smallTalk, c.view.record.speaker == input.speaker else { continue } }
            let x = InterferenceFeatures.vector(
                new: v, old: nv, sameSpeaker: !input.speaker.isEmpty && input.speaker == c.view.record.speaker, newText: input.text, oldText: c.view.record.text)
            let found: (Interference.Relation, Double, Double)
            if let rows = relationHeads {
                let scores = rows.map { $0.score(x) }
                var k = 0
                for (j, s) in scores.enumerated() where s > scores[k] { k = j }
                guard let relation = PSMPolicy.relations[k] else { continue }
                let margin = scores[k] - scores[0] - relationThresholds[k]
                guard margin >= 0 else { continue }
                let top = scores[k]
                var sum = 0.0
                for s in scores { sum += DeterministicMath.exp(s - top) }
                found = (relation, margin, 1 / sum)
            } else if let head = interference {
                let s = head.score(x)
                guard s >= interferenceThreshold else { continue }
                found = (.supersedes, s - interferenceThreshold, 1 / (1 + DeterministicMath.exp(-s)))
            } else {
                continue
            }
            if let b = best, found.1 < b.margin || (found.1 == b.margin && c.memory >= b.memory) { continue }
            best = (found.0, c.memory, found.1, found.2)
        }
        return best.map { Interference(relation: $0.relation, memory: $0.memory, score: Fixed($0.probability)) }
    }

    /// A stability lengthened by an emotional weight w (0…1): s × (1 + w), rounded to whole seconds, at
    /// most ``MemoryEvent/maxStability``: integer arithmetic on w's fixed-point value (ten-thousandths),
    /// so the result depends on nothing but the two inputs.
    public static func emotionalStability(_ s: UInt64, weight w: Fixed) -> UInt64 {
        let one = UInt64(Fixed.scale), raw = UInt64(max(0, min(Fixed.scale, w.raw)))
        let capped = min(s, MemoryEvent.maxStability)
        return min(MemoryEvent.maxStability, (capped * (one + raw) + one / 2) / one)
    }

    /// Whether the recall head weighs a token-matching feature (a non-zero weight on one).
    public var matchesTokens: Bool {
        RecallFeatures.tokenFeatures.contains { name in
            RecallFeatures.names.firstIndex(of: name).map { $0 < recall.weights.count && recall.weights[$0] != 0 } ?? false
        }
    }

    public func weigh(_ candidates: [Candidate], query: String, at: Int64) -> [Fixed] {
        let q = RecallFeatures.query(query, candidates)
        return PSMPolicy.weights(
            candidates.map { recall.score(RecallFeatures.vector($0, q, at: at)) }, spread: spread, slots: candidates.map(\.slot),
            sessions: candidates.map(\.view.record.session), pooled: candidates.map(RecallFeatures.inPool))
    }

    /// The head's scores after the model's spreading (if any), clamped to ±10⁶ and made fixed-point: the
    /// weights recall ranks by. The trainer measures its held-out metrics with this same function.
    public static func weights(_ scores: [Double], spread: RecallSpread?, slots: [UInt32], sessions: [String], pooled: [Bool]) -> [Fixed] {
        let spread = spread.map { $0.apply(scores, slots: slots, sessions: sessions, pooled: pooled) } ?? scores
        return spread.map { Fixed(max(-1e6, min(1e6, $0))) }
    }

    /// The rule baseline's feedback, except that with spaced reinforcement `helped` raises stability s by
    /// the seconds Δ since the strength was last anchored (creation, reinforcement, weakening): s + min(Δ, s),
    /// capped like the rule. A memory helped again right away gains little; one helped after a gap of
    /// its stability doubles it, as the rule always does (SPEC.md §12.7).
    public func feedback(_ kind: FeedbackKind, on memory: MemoryView) -> MemoryEvent? {
        guard spacedReinforcement, kind == .helped else { return base.feedback(kind, on: memory) }
        let s = memory.record.stability
        let elapsed = UInt64(max(0, memory.at - memory.record.anchorTime) / 1_000_000)
        let d = MemoryEvent.Decision(
            model: modelID, inputDigest: digest { $0.uint(1, UInt64(kind.rawValue)); $0.id(2, memory.record.id); $0.uint(3, elapsed) })
        return .reinforced(.init(decision: d, memory: memory.record.id, boost: Fixed(0.2), stability: min(MemoryEvent.maxStability, s + min(elapsed, s))))
    }
    /// The rule baseline's sleep; with a consolidation head, an episode joins a seed's group when the head
    /// scores the pair (seed as new, episode as old) at or above its threshold, instead of cosine ≥ 0.9.
    public func sleep(_ input: SleepInput) -> [MemoryEvent] {
        sleepBeforeScaling(input).map { e in
            guard case .consolidated(var c) = e, stabilityScale != 1 else { return e }
            c.stability = scaled(c.stability)
            return .consolidated(c)
        }
    }

    func sleepBeforeScaling(_ input: SleepInput) -> [MemoryEvent] {
        let recurrence = consolidatesRecurrences
        /// Whether the pair may be one recurring thing at all (always, without the recurrence flag).
        func recurs(_ seed: MemoryView, _ other: MemoryView) -> Bool {
            guard recurrence else { return true }
            let a = seed.record, b = other.record
            return a.type != .smallTalk && b.type != .smallTalk && (a.session.isEmpty || a.session != b.session)
        }
        guard consolidation != nil || recurrence else { return base.sleep(input) }
        let threshold = consolidationThreshold
        return base.sleep(input) { seed, sv, other, ov in
            guard recurs(seed, other) else { return false }
            guard let head = consolidation else { return RuleBaseline.joins(sv, ov) }
            guard sv.values.count == ov.values.count else { return false }
            let x = InterferenceFeatures.vector(
                new: sv, old: ov, sameSpeaker: !seed.record.speaker.isEmpty && seed.record.speaker == other.record.speaker,
                newText: seed.record.text, oldText: other.record.text)
            return head.score(x) >= threshold
        }
    }
}

/// The policy a model file implies: the PSM when it has heads, else the rule baseline over its encoder.
public func memoryPolicy(for file: ModelFile) throws -> any MemoryPolicy {
    file.tensors[PSMPolicy.tensorNames.weights] != nil ? try PSMPolicy(model: file) : RuleBaseline()
}
