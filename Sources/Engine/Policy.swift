import Crypto
import Journal
import Projections

/// What sleep-time reorganisation sees about one user.
public struct SleepInput: Sendable {
    public var tiers: TierListing
    public var vectors: [ID128: QuantizedVector]
    /// Event time of the sleep.
    public var at: Int64
    /// Event time of the user's previous sleep (0 if none).
    public var previousSleep: Int64
}

/// What the gate sees about one observation.
public struct GateInput: Sendable {
    public var text: String
    public var session: String
    public var speaker: String
    /// The observation's vector, when an encoder is loaded.
    public var vector: QuantizedVector?
    /// The user's closest existing memories (by dense or lexical similarity), for novelty.
    public var neighbours: [Candidate]
    /// The text of the turn before it in the same session, for a contextual policy (else empty).
    public var context: String = ""
}

/// The gate's answer (without ids; the engine assigns them).
public struct GateDecision: Sendable, Equatable {
    public var kept: Bool
    public var tier: Tier
    public var type: MemoryType
    public var emotionalWeight: Fixed
    public var confidence: Fixed
    public var strength: Fixed
    public var stability: UInt64
    public var scores: [Fixed]
}

/// How a new memory interferes with an existing one (SPEC.md §12.7), and the score (a probability,
/// the logistic of the deciding head's score). Unrelated is no interference at all.
public struct Interference: Sendable, Equatable {
    public enum Relation: String, Sendable, CaseIterable, Codable {
        /// The same fact again: the old memory is reinforced (a `reinforced` decision, as `helped` feedback).
        case reinforces
        /// A detail added to the old memory's fact: the new memory is flagged `refines:<old>`.
        case refines
        /// A new value for the old memory's fact (a knowledge update or contradiction): `superseded`.
        case supersedes
    }
    public var relation: Relation
    public var memory: ID128
    public var score: Fixed
    public init(relation: Relation, memory: ID128, score: Fixed) {
        self.relation = relation; self.memory = memory; self.score = score
    }
}

/// Decides memory operations. The PSM (issue 6) implements this with learned heads; ``RuleBaseline``
/// is the hand-written baseline it is measured against. Every method is a pure function of its
/// arguments, so the decisions it writes can be replayed.
public protocol MemoryPolicy: Sendable {
    /// SHA-256 of the model file, or 32 zero bytes for the rule baseline.
    var modelID: [UInt8] { get }
    func gate(_ input: GateInput) -> GateDecision
    /// One weight per candidate (same order); the engine surfaces the k best (ties by memory id).
    func weigh(_ candidates: [Candidate], query: String, at: Int64) -> [Fixed]
    /// The decision answering feedback on a memory (reinforced or weakened), or nil for none.
    func feedback(_ kind: FeedbackKind, on memory: MemoryView) -> MemoryEvent?
    /// For a memory just kept (its input and vector) and its nearest existing memories with their
    /// vectors: the one neighbour it interferes with and how (it reinforces, refines or supersedes it),
    /// with the score, or nil when it is unrelated to all of them.
    /// `gate` is the gate's decision on it.
    func interference(_ input: GateInput, gate: GateDecision, neighbours: [(candidate: Candidate, vector: QuantizedVector?)]) -> Interference?
    /// Sleep-time decisions for one user (tier moves, consolidation, pruning), given its memories by
    /// tier, the vectors of its working and episodic memories, and the time of its previous sleep.
    func sleep(_ input: SleepInput) -> [MemoryEvent]
    /// Whether observations are read in context (SPEC.md §11.4): embedded together with the turn before
    /// them in their session, and indexed after their date and that turn. A property of the model version.
    var readsContext: Bool { get }
    /// The reciprocal-rank fusion constant candidates are ordered with (SPEC.md §11.4).
    var fusionConstant: Double { get }
    /// Whether ``weigh(_:query:at:)`` reads ``Candidate/tokenMatch``, which the engine then fills with
    /// its encoder (``TokenMatcher``) before weighing.
    var matchesTokens: Bool { get }
}

extension MemoryPolicy {
    public var readsContext: Bool { false }
    public var fusionConstant: Double { CandidateQuery.defaultFusionConstant }
    public var matchesTokens: Bool { false }
}

extension MemoryPolicy {
    /// SHA-256 of a canonical payload: what a decision records as "the inputs the model saw".
    public func digest(_ build: (inout PayloadWriter) -> Void) -> [UInt8] {
        var w = PayloadWriter()
        build(&w)
        return Array(SHA256.hash(data: w.bytes))
    }
}

/// Hand-written rules: the baseline until the PSM's learned heads exist, and the reference they must beat.
///
/// - gate: drops turns with fewer than three content terms (small talk), keeps the rest in working
///   memory with neutral metadata, and marks a near-duplicate of an existing memory (cosine ≥ 0.95);
/// - weigh: the fused rank (reciprocal-rank fusion of BM25 and dense), halved for superseded memories;
/// - feedback: helped reinforces (+0.2, stability ×2), irrelevant weakens (×0.8, stability ×0.8),
///   corrected weakens hard (×0.3, stability ÷4);
/// - sleep: moves working memories to episodic, consolidates groups of near-identical episodes (cosine ≥ 0.9,
///   seeded by episodes new since the previous sleep) into semantic memories and archives them into it,
///   prunes non-semantic memories whose strength fell below 0.02, and (with an episodic lifespan)
///   archives episodes inactive for longer than it.
public struct RuleBaseline: MemoryPolicy {
    public let modelID = [UInt8](repeating: 0, count: 32)
    public let readsContext: Bool
    public let fusionConstant: Double
    /// Seconds an episode stays in the working and episodic tiers without activity (creation,
    /// reinforcement or recall) before sleep archives it; nil: until its strength falls below the floor.
    public let episodicLifespan: UInt64?
    public init() { readsContext = false; fusionConstant = CandidateQuery.defaultFusionConstant; episodicLifespan = nil }
    /// The baseline with a model's reading, fusion and lifespan: what a PSM file falls back to for the
    /// decisions it has no head for, and what training collects candidates with. Used alone its
    /// decisions record the encoder's id like the plain baseline's, so it is not for stores meant to be replayed.
    public init(readsContext: Bool, fusion: Double, episodicLifespan: UInt64? = nil) {
        self.readsContext = readsContext; fusionConstant = fusion; self.episodicLifespan = episodicLifespan
    }

    public func gate(_ input: GateInput) -> GateDecision {
        let terms = Analyzer.terms(input.text)
        let duplicate = input.neighbours.first.map { $0.dense >= 0.95 } ?? false
        return GateDecision(
            kept: terms.count >= 3, tier: .working, type: .other, emotionalWeight: .zero, confidence: Fixed(0.5),
            strength: Fixed(duplicate ? 0.3 : 0.6), stability: 45 * 86_400, scores: [Fixed(raw: Int64(terms.count) * Fixed.scale)])
    }

    /// The rule baseline relates no memory to another: interference needs the learned heads.
    public func interference(_ input: GateInput, gate: GateDecision, neighbours: [(candidate: Candidate, vector: QuantizedVector?)]) -> Interference? { nil }

    public func weigh(_ candidates: [Candidate], query: String, at: Int64) -> [Fixed] {
        candidates.map { c in
            var w = c.fused * 30
            if !c.view.record.isValid { w *= 0.5 }
            return Fixed(w)
        }
    }

    public func feedback(_ kind: FeedbackKind, on memory: MemoryView) -> MemoryEvent? {
        let d = MemoryEvent.Decision(model: modelID, inputDigest: digest { $0.uint(1, UInt64(kind.rawValue)); $0.id(2, memory.record.id) })
        let s = memory.record.stability
        let cap = MemoryEvent.maxStability
        switch kind {
        case .helped: return .reinforced(.init(decision: d, memory: memory.record.id, boost: Fixed(0.2), stability: min(cap, s * 2)))
        case .irrelevant: return .weakened(.init(decision: d, memory: memory.record.id, factor: Fixed(0.8), stability: max(3_600, s * 4 / 5)))
        case .corrected: return .weakened(.init(decision: d, memory: memory.record.id, factor: Fixed(0.3), stability: max(3_600, s / 4)))
        }
    }

    /// Cosine at or above which two episodes are the same recurring thing.
    public static let consolidationThreshold = 0.9

    public func sleep(_ input: SleepInput) -> [MemoryEvent] {
        sleep(input) { _, sv, _, ov in Self.joins(sv, ov) }
    }

    /// The rule's grouping test: two episodes are one recurring thing when their cosine reaches the threshold.
    static func joins(_ a: QuantizedVector, _ b: QuantizedVector) -> Bool { cosine(a, b) >= consolidationThreshold }

    /// Sleep with `joins(seed, seed vector, episode, episode vector)` deciding whether an episode joins a
    /// seed's consolidation group (the rule: cosine ≥ 0.9; a PSM model's consolidation head).
    public func sleep(_ input: SleepInput, joins: (MemoryView, QuantizedVector, MemoryView, QuantizedVector) -> Bool) -> [MemoryEvent] {
        var out: [MemoryEvent] = []
        let tiers = input.tiers
        for m in tiers.memories[.working] ?? [] {
            out.append(.encoded(.init(decision: .init(model: modelID, inputDigest: digest { $0.id(1, m.record.id) }), memory: m.record.id, tier: .episodic)))
        }
        // Consolidation: each episode new since the previous sleep seeds a group of the valid episodes
        // (in slot order) within the cosine threshold; a group of two or more becomes one semantic
        // memory whose text and vector are the seed's (extractive), and its episodes are archived into it.
        // With a lifespan, episodes that aged into the archive still join groups (a theme that recurs
        // over months consolidates), though only new episodes seed them.
        let resting = episodicLifespan == nil ? [] : (tiers.memories[.archival] ?? []).filter { $0.record.consolidatedInto.isZero && !$0.record.pruned }
        let episodes = ((tiers.memories[.working] ?? []) + (tiers.memories[.episodic] ?? []) + resting)
            .filter { $0.record.isValid && input.vectors[$0.record.id] != nil }
            .sorted { $0.record.slot < $1.record.slot }
        var used = Set<ID128>()
        for seed in episodes where seed.record.createdAt > input.previousSleep && !used.contains(seed.record.id) {
            let sv = input.vectors[seed.record.id]!
            var group = [seed]
            for other in episodes where other.record.id != seed.record.id && !used.contains(other.record.id) {
                if joins(seed, sv, other, input.vectors[other.record.id]!) { group.append(other) }
            }
            guard group.count >= 2 else { continue }
            group.sort { $0.record.slot < $1.record.slot }
            for g in group { used.insert(g.record.id) }
            let sources = group.map(\.record.id)
            let id = ID128.derived(domain: "psm.memory.v1", sources.sorted().flatMap(\.bytes))
            let d = MemoryEvent.Decision(model: modelID, inputDigest: digest { w in for s in sources { w.id(1, s) } })
            let strength = group.map(\.strength).max() ?? 0.5
            out.append(
                .consolidated(
                    .init(
                        decision: d, memory: id, text: seed.record.text, type: seed.record.type, confidence: Fixed(0.5 + 0.1 * Double(min(group.count, 5))),
                        strength: Fixed(min(1, strength + 0.2)), stability: 180 * 86_400, sources: sources, vector: sv)))
            for s in sources { out.append(.archived(.init(decision: d, memory: s, into: id))) }
        }
        for tier in [Tier.working, .episodic] {
            for m in tiers.memories[tier] ?? [] where !used.contains(m.record.id) {
                if m.strength < 0.02 {
                    let d = MemoryEvent.Decision(model: modelID, inputDigest: digest { $0.id(1, m.record.id); $0.int(2, Fixed(m.strength).raw) })
                    out.append(.pruned(.init(decision: d, memory: m.record.id, strength: Fixed(m.strength))))
                    continue
                }
                // The episodic store holds days to weeks (the seed's tier table): an episode inactive for
                // longer than the lifespan leaves for the archival tier, where recall still finds it.
                let r = m.record
                let active = max(r.createdAt, r.anchorTime, r.lastRecalled)
                if let life = episodicLifespan, input.at - active > Int64(clamping: life) * 1_000_000 {
                    let d = MemoryEvent.Decision(model: modelID, inputDigest: digest { $0.id(1, r.id); $0.int(3, active) })
                    out.append(.archived(.init(decision: d, memory: r.id, into: .zero)))
                }
            }
        }
        return out
    }

    /// The exact cosine of two quantized vectors: their int8 dot product times both scales, as candidate
    /// generation computes it (SPEC.md §11.4); 0 for vectors of different dimensions.
    public static func cosine(_ a: QuantizedVector, _ b: QuantizedVector) -> Double {
        guard a.values.count == b.values.count else { return 0 }
        var dot: Int64 = 0
        for i in 0..<a.values.count { dot += Int64(a.values[i]) * Int64(b.values[i]) }
        return Double(dot) * Double(a.scale) * Double(b.scale)
    }
}
