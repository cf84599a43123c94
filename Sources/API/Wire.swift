import Engine
import Foundation
import Journal
import Projections

// The JSON shapes shared by the CLI's --json output, the HTTP API (docs/openapi.json) and the MCP
// tools. Field names are snake_case; times are ISO 8601 UTC with microseconds (``WireTime``); ids are
// 32 lower-case hexadecimal digits. Numbers derived from fixed-point values are rounded for display;
// the journal holds the exact values.

/// One memory with all its metadata.
public struct MemoryJSON: Codable, Sendable, Equatable {
    public var id, tier, type, text: String
    public var strength, decay_per_day: Double
    public var strength_at: String
    public var stability_s: UInt64
    public var recall_count: UInt64
    public var last_recalled: String?
    public var emotional_weight, confidence: Double
    public var valid_from: String
    public var valid_to: String?
    public var superseded_by, supersedes, consolidated_into: String?
    public var sources, observations, source_ids, flags: [String]
    public var session, speaker: String
    public var created_at: String
    public var created_position, updated_position: UInt64
    public var reinforcements, weakenings, helped, irrelevant, corrected: UInt64
    public var archived_at: String?
    public var pruned: Bool
    /// What the lexical index holds before the speaker and text (date and context turn, SPEC.md §11.4).
    public var index_context: String?

    public init(_ v: MemoryView) {
        let m = v.record
        func opt(_ id: ID128) -> String? { id.isZero ? nil : id.description }
        func time(_ t: Int64) -> String? { t == 0 ? nil : WireTime.format(t) }
        id = m.id.description; tier = m.tier.description; type = m.type.description; text = m.text
        strength = (v.strength * 1e6).rounded() / 1e6; decay_per_day = (v.decayPerDay * 1e6).rounded() / 1e6; strength_at = WireTime.format(v.at)
        stability_s = m.stability; recall_count = m.recallCount; last_recalled = time(m.lastRecalled)
        emotional_weight = m.emotionalWeight.value; confidence = m.confidence.value
        valid_from = WireTime.format(m.validFrom); valid_to = time(m.validTo)
        superseded_by = opt(m.supersededBy); supersedes = opt(m.supersedes); consolidated_into = opt(m.consolidatedInto)
        sources = m.sources.map(\.description); observations = m.observations.map(\.description); source_ids = m.sourceIDs; flags = m.flags
        session = m.session; speaker = m.speaker; created_at = WireTime.format(m.createdAt)
        created_position = m.createdPosition; updated_position = m.updatedPosition
        reinforcements = m.reinforcements; weakenings = m.weakenings; helped = m.helped; irrelevant = m.irrelevant; corrected = m.corrected
        archived_at = time(m.archivedAt); pruned = m.pruned
        index_context = m.indexContext.isEmpty ? nil : m.indexContext
    }
}

/// One event that touched a memory.
public struct HistoryEntryJSON: Codable, Sendable {
    public var position: UInt64
    public var time: String
    public var type: String
    public var event_id: String
    public var causation: String?
    public var model: String?
    public var input_digest: String?
    public var summary: String

    public init(_ h: Engine.HistoryEntry) {
        let d = EventSummary.decision(h.event)
        position = h.position; time = WireTime.format(h.time); type = h.event.type.description; event_id = h.eventID.description
        causation = h.causation.isZero ? nil : h.causation.description; model = d.map { hexBytes($0.model) }
        input_digest = d.map { hexBytes($0.inputDigest) }; summary = EventSummary.text(h.event)
    }
}

/// A provenance tree: memory → source memories → observations.
public struct ProvenanceJSON: Codable, Sendable {
    public struct Node: Codable, Sendable {
        public var kind, id, text: String
        public var tier: String?
        public var source_id: String?
        public var session: String?
        public var speaker: String?
        public var time: String
        public var sources: [Node]
        public init(_ n: ProvenanceNode) {
            kind = n.kind.rawValue; id = n.id.description; text = n.text; tier = n.tier?.description
            source_id = n.sourceID.isEmpty ? nil : n.sourceID; session = n.session.isEmpty ? nil : n.session
            speaker = n.speaker.isEmpty ? nil : n.speaker; time = WireTime.format(n.time); sources = n.children.map(Node.init)
        }
    }
    public var memory: Node
    public var observations: [String]
    public var source_ids: [String]
    public var derived: [String]
    /// With `proof`: for each source observation, its inclusion in the tenant's Merkle tree (SPEC.md §8.1).
    public var proofs: [InclusionProofJSON]?

    public init(_ p: Provenance) {
        memory = Node(p.root); observations = p.observations.map(\.description); source_ids = p.sourceIDs; derived = p.derived.map(\.description)
    }
}

/// A record's inclusion in its tenant's Merkle tree: check it with the leaf hash of the record at
/// `position`, against the root of a signed tree head of the same `tree_size` (psm tree-head).
public struct InclusionProofJSON: Codable, Sendable {
    public var observation: String
    public var position: UInt64
    public var leaf_index: Int
    public var leaf_hash: String
    public var tree_size: Int
    public var root: String
    public var path: [String]
}

/// A user's memories by tier.
public struct TiersJSON: Codable, Sendable {
    public struct Observation: Codable, Sendable { public var id, text, time: String; public var source_id: String? }
    public var tenant, user: String
    public var events: UInt64
    public var last_position: UInt64
    public var sensory: [Observation]
    public var tiers: [String: [MemoryJSON]]
    public var counts: [String: Int]
    /// The user's projection state hash (``ProjectionStore/userStateHash(_:)``), for the current state
    /// only: equal on every node that folded the same events (SPEC.md §15.5).
    public var state_hash: String?

    public init(_ ref: UserRef, _ listing: TierListing, limit: Int) {
        tenant = ref.tenant; user = ref.user; events = listing.user.events; last_position = listing.user.lastPosition
        sensory = listing.sensory.prefix(limit).map {
            Observation(id: $0.id.description, text: $0.text, time: WireTime.format($0.time), source_id: $0.sourceID.isEmpty ? nil : $0.sourceID)
        }
        var counts = ["sensory": listing.sensory.count]
        var tiers: [String: [MemoryJSON]] = [:]
        for t in Tier.allCases where t != .sensory {
            counts[t.description] = listing.memories[t]?.count ?? 0
            tiers[t.description] = (listing.memories[t] ?? []).prefix(limit).map(MemoryJSON.init)
        }
        self.counts = counts
        self.tiers = tiers
    }
}

/// The result of recording an observation.
public struct ObserveJSON: Codable, Sendable {
    public var observation: String
    public var position: UInt64
    public var kept: Bool
    public var memory: String?
    public var tier: String?
    public var duplicate: Bool
    /// How the new memory relates to an older one, when it does (absent otherwise and on a retry).
    public var relation: Relation?

    public struct Relation: Codable, Sendable {
        /// `reinforces`, `refines` or `supersedes`.
        public var kind: String
        /// The older memory.
        public var memory: String
        public var score: Double
    }

    public init(_ r: Engine.ObserveResult) {
        observation = r.observation.description; position = r.position; kept = r.kept; memory = r.memory?.description
        tier = r.tier?.description; duplicate = r.wasDuplicate
        relation = r.relation.map { Relation(kind: $0.relation.rawValue, memory: $0.memory.description, score: $0.score.value) }
    }
}

/// A recall's answer: the memories surfaced, best first, with their features and sources.
public struct RecallJSON: Codable, Sendable {
    public struct Item: Codable, Sendable {
        public var memory: String
        public var weight: Double
        public var text: String
        public var tier: String
        public var strength: Double
        public var valid: Bool
        public var lexical: Double
        public var dense: Double
        /// The memory's emotional weight, 0…1, as the gate set it (SPEC.md §12.7).
        public var emotional_weight: Double
        public var source_ids: [String]
        public var observations: [String]
    }
    /// The recall's id (nil when nothing was journaled: as-of and peek).
    public var recall: String?
    public var position: UInt64?
    public var candidates: Int
    /// The dates the query names ("9 November 2022", "May 2023"), which recall weighs as `time_match`.
    public var time_cues: [String]
    public var memories: [Item]

    public init(_ r: Engine.RecallResult, query: String) {
        recall = r.recall?.description; position = r.position; candidates = r.candidatesConsidered
        time_cues = TimeCue.parse(query).map(\.description)
        memories = r.memories.map { m in
            let v = m.candidate.view
            return Item(
                memory: m.candidate.memory.description, weight: m.weight.value, text: v.record.text, tier: v.record.tier.description,
                strength: (v.strength * 1e4).rounded() / 1e4, valid: v.record.isValid, lexical: (m.candidate.lexical * 1e4).rounded() / 1e4,
                dense: (m.candidate.dense * 1e4).rounded() / 1e4, emotional_weight: v.record.emotionalWeight.value, source_ids: m.provenance?.sourceIDs ?? [],
                observations: (m.provenance?.observations ?? []).map(\.description))
        }
    }
}

/// The result of feedback: the memory's strength and stability after it.
public struct FeedbackJSON: Codable, Sendable {
    public var position: UInt64
    public var memory: String
    public var strength: Double
    public var stability_s: UInt64
    public init(position: UInt64, memory: String, strength: Double, stability_s: UInt64) {
        self.position = position; self.memory = memory; self.strength = strength; self.stability_s = stability_s
    }
}

/// What a sleep decided for one user.
public struct SleepJSON: Codable, Sendable {
    public var user: String
    public var position: UInt64
    public var decisions: [String: Int]
    public init(user: String, position: UInt64, decisions: [String: Int]) {
        self.user = user; self.position = position; self.decisions = decisions
    }
}

/// One journal event of a user's stream, decoded (for auditors).
public struct JournalEventJSON: Codable, Sendable {
    public var position: UInt64
    public var revision: UInt64
    public var event_id: String
    public var causation: String?
    public var time: String
    public var type: String
    public var model: String?
    public var input_digest: String?
    public var summary: String
    /// The event's payload as canonical bytes, hexadecimal (SPEC.md §11.1), so it can be re-verified.
    public var payload_hex: String
}

/// Short descriptions of memory events for history, journal reads and reports.
public enum EventSummary {
    public static func decision(_ e: MemoryEvent) -> MemoryEvent.Decision? {
        switch e {
        case .gated(let x): x.decision
        case .encoded(let x): x.decision
        case .reinforced(let x): x.decision
        case .weakened(let x): x.decision
        case .superseded(let x): x.decision
        case .flagged(let x): x.decision
        case .consolidated(let x): x.decision
        case .archived(let x): x.decision
        case .pruned(let x): x.decision
        case .recalled(let x): x.decision
        default: nil
        }
    }

    public static func text(_ e: MemoryEvent) -> String {
        switch e {
        case .observation(let o): "“\(o.text.prefix(60))”"
        case .gated(let g): g.kept ? String(format: "kept in %@ as %@, strength %.2f, stability %.1f d", g.tier.description, g.type.description, g.strength.value, Double(g.stability) / 86_400) : "dropped"
        case .encoded(let x): "moved to \(x.tier)"
        case .reinforced(let x): String(format: "+%.2f strength, stability %.1f d", x.boost.value, Double(x.stability) / 86_400)
        case .weakened(let x): String(format: "×%.2f strength, stability %.1f d", x.factor.value, Double(x.stability) / 86_400)
        case .superseded(let x): "\(x.old) superseded by \(x.new)"
        case .flagged(let x): "flagged \(x.reason)\(x.related.isZero ? "" : " with \(x.related)")"
        case .consolidated(let x): "semantic memory from \(x.sources.count) sources: “\(x.text.prefix(50))”"
        case .archived(let x): x.into.isZero ? "archived" : "archived into \(x.into)"
        case .pruned(let x): String(format: "pruned at strength %.4f", x.strength.value)
        case .recalled(let x): "surfaced \(x.items.count) memories for recall \(x.request)"
        case .recallRequest(let r): "recall “\(r.query.prefix(50))” k=\(r.k)"
        case .feedback(let f): "\(f.kind) for recall \(f.recall)"
        case .sleepRequest: "sleep"
        case .modelActivation(let m): "model \(m.name)"
        case .erasureRequest: "erasure"
        }
    }
}
