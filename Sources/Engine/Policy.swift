import Crypto
import Journal
import Projections

/// What the gate sees about one observation.
public struct GateInput: Sendable {
    public var text: String
    public var session: String
    public var speaker: String
    /// The observation's vector, when an encoder is loaded.
    public var vector: QuantizedVector?
    /// The user's closest existing memories (by dense or lexical similarity), for novelty.
    public var neighbours: [Candidate]
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
    /// Sleep-time decisions for one user (tier moves, pruning, consolidation).
    func sleep(_ tiers: TierListing, at: Int64) -> [MemoryEvent]
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
/// - sleep: moves working memories to episodic and prunes non-semantic memories whose strength fell below 0.02.
public struct RuleBaseline: MemoryPolicy {
    public let modelID = [UInt8](repeating: 0, count: 32)
    public init() {}

    public func gate(_ input: GateInput) -> GateDecision {
        let terms = Analyzer.terms(input.text)
        let duplicate = input.neighbours.first.map { $0.dense >= 0.95 } ?? false
        return GateDecision(
            kept: terms.count >= 3, tier: .working, type: .other, emotionalWeight: .zero, confidence: Fixed(0.5),
            strength: Fixed(duplicate ? 0.3 : 0.6), stability: 14 * 86_400, scores: [Fixed(raw: Int64(terms.count) * Fixed.scale)])
    }

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

    public func sleep(_ tiers: TierListing, at: Int64) -> [MemoryEvent] {
        var out: [MemoryEvent] = []
        for m in tiers.memories[.working] ?? [] {
            out.append(.encoded(.init(decision: .init(model: modelID, inputDigest: digest { $0.id(1, m.record.id) }), memory: m.record.id, tier: .episodic)))
        }
        for tier in [Tier.working, .episodic] {
            for m in tiers.memories[tier] ?? [] where m.strength < 0.02 {
                let d = MemoryEvent.Decision(model: modelID, inputDigest: digest { $0.id(1, m.record.id); $0.int(2, Fixed(m.strength).raw) })
                out.append(.pruned(.init(decision: d, memory: m.record.id, strength: Fixed(m.strength))))
            }
        }
        return out
    }
}
