import Crypto
import Foundation
import Inference
import Journal
import Projections

/// Computes the decision events that answer a command, from the command and the user's state just
/// before it. Pure: the engine uses it to decide, the replayer to check what was decided
/// (SPEC.md §11.7), so both run exactly this code.
public struct Decider: Sendable {
    public let policy: any MemoryPolicy
    public let encoder: Encoder?
    /// What decisions record as their model: the policy's model id, or for the rule baseline the id of
    /// the encoder whose vectors it used (all zero without one).
    public let modelID: [UInt8]

    /// Token matching for a policy that weighs it (nil without an encoder or when the policy does not).
    public let tokens: TokenMatcher?

    public init(policy: any MemoryPolicy, encoder: Encoder?) {
        self.policy = policy
        self.encoder = encoder
        tokens = policy.matchesTokens ? encoder.map { TokenMatcher(encoder: $0) } : nil
        if policy.modelID.allSatisfy({ $0 == 0 }), let e = encoder {
            modelID = Decider.bytes(hex: e.model.id)
        } else {
            modelID = policy.modelID
        }
    }

    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = hex.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16) ?? 0) }
        return out.count == 32 ? out : [UInt8](repeating: 0, count: 32)
    }

    /// The quantized embedding of `text`, or nil without an encoder.
    public func embed(_ text: String) -> QuantizedVector? {
        encoder.map { QuantizedVector(normalizing: $0.embed([text])[0]) }
    }

    /// What an observation is embedded as: who said it and what (SPEC.md §11.4).
    static func embeddedText(_ o: MemoryEvent.Observation) -> String { Fold.indexedText(speaker: o.speaker, text: o.text) }

    /// An observation's context and vector, computed before the write lock is taken; ``observe`` checks
    /// the context is still the state's and recomputes both if not.
    public struct Reading: Sendable {
        public var context: ObservationRecord?
        public var vector: QuantizedVector?
        /// The token matrix of the observation's text, for a policy that matches tokens (from the same
        /// forward pass as the vector); cached under the memory's id if the gate keeps it.
        public var tokens: TokenMatrix? = nil
    }

    /// The turn a contextual policy reads `o` with: the user's latest observation, when it is of the same
    /// non-empty session (else nil, and always nil for a policy that does not read context).
    public func context(_ user: UserRef, _ o: MemoryEvent.Observation, state: ProjectionStore) throws -> ObservationRecord? {
        guard policy.readsContext, !o.session.isEmpty else { return nil }
        return try state.read { kv in
            let reader = UserReader(kv: kv, user: user.key)
            guard let last = try reader.userRecord()?.lastObservation, !last.isZero, let r = try reader.observation(last) else { return nil }
            return r.session == o.session ? r : nil
        }
    }

    /// The vector of `o`: its embedding alone, or with a context turn the normalized sum of its embedding
    /// alone and of "context speaker: context text\nspeaker: text" (one batch, SPEC.md §11.4).
    public func vector(_ o: MemoryEvent.Observation, context: ObservationRecord?) -> QuantizedVector? { reading(o, context: context).vector }

    /// The reading of `o` with `context`: its vector and, for a policy that matches tokens, its token matrix.
    func reading(_ o: MemoryEvent.Observation, context c: ObservationRecord?) -> Reading {
        guard let encoder else { return Reading(context: c, vector: nil) }
        let own = Decider.embeddedText(o)
        let texts = c.map { [own, Fold.indexedText(speaker: $0.speaker, text: $0.text) + "\n" + own] } ?? [own]
        var matrix: TokenMatrix? = nil
        let e: [[Float]]
        if let tokens {
            let (embeddings, states) = encoder.embedWithStates(texts)
            e = embeddings
            matrix = tokens.memory(states: states[0])
        } else {
            e = encoder.embed(texts)
        }
        let v = e.count == 1 ? QuantizedVector(normalizing: e[0]) : QuantizedVector(normalizing: zip(e[0], e[1]).map { $0 + $1 })
        return Reading(context: c, vector: v, tokens: matrix)
    }

    /// The context and vector of `o` against `state`.
    public func read(_ user: UserRef, _ o: MemoryEvent.Observation, state: ProjectionStore) throws -> Reading {
        try reading(o, context: context(user, o, state: state))
    }

    static func userExists(_ user: UserRef, _ state: ProjectionStore) throws -> Bool {
        try state.read { kv in try UserReader(kv: kv, user: user.key).userRecord() != nil }
    }

    private func decision(_ digest: [UInt8]) -> MemoryEvent.Decision { .init(model: modelID, inputDigest: digest) }

    /// The gate's decision on an observation (one `gated` event), and the memory it creates if kept.
    /// `reading` is what ``read(_:_:state:)`` gave before the lock (nil: compute it now).
    public func observe(
        _ user: UserRef, _ o: MemoryEvent.Observation, id obsID: EventID, at time: Int64, state: ProjectionStore, reading: Reading? = nil
    ) throws -> (events: [EventData], gate: GateDecision, memory: ID128, relation: Interference?) {
        var r = try reading ?? read(user, o, state: state)
        if reading != nil, policy.readsContext {
            let c = try context(user, o, state: state)
            if c?.id != r.context?.id { r = self.reading(o, context: c) }
        }
        let vector = r.vector, context = r.context
        let neighbours = try Decider.userExists(user, state)
            ? try state.candidates(user, CandidateQuery(text: o.text, vector: vector, at: time, perList: 5, fusion: policy.fusionConstant)) : []
        let g = policy.gate(
            GateInput(text: o.text, session: o.session, speaker: o.speaker, vector: vector, neighbours: neighbours, context: context?.text ?? ""))
        let memory = ID128.derived(domain: "psm.memory.v1", obsID.bytes)
        if g.kept, let m = r.tokens { tokens?.remember(memory, m) }
        let digest = policy.digest { w in
            w.string(1, o.text)
            if !o.session.isEmpty { w.string(2, o.session) }
            if let v = vector { w.bytes(3, v.encoded) }
            for n in neighbours { w.id(4, n.memory) }
            if let c = context { w.id(5, c.id) }
        }
        let gated = MemoryEvent.gated(
            .init(
                decision: decision(digest), observation: obsID, kept: g.kept, memory: g.kept ? memory : .zero, tier: g.tier, type: g.type,
                emotionalWeight: g.emotionalWeight, confidence: g.confidence, strength: g.strength, stability: g.stability,
                vector: g.kept ? vector : nil, scores: g.scores, context: g.kept ? context?.id ?? .zero : .zero,
                dated: g.kept && policy.readsContext))
        let event = EventData(
            id: ID128.derived(domain: "psm.decision.v1", obsID.bytes), type: MemoryEventType.gated.rawValue, time: time, causation: obsID,
            payload: gated.payload())
        var events = [event]
        // Interference: does the new memory reinforce, refine or supersede one of its neighbours?
        if g.kept, !neighbours.isEmpty {
            let withVectors = try state.read { kv in
                let reader = UserReader(kv: kv, user: user.key)
                return try neighbours.map { (candidate: $0, vector: try reader.vector(slot: $0.slot)) }
            }
            let input = GateInput(text: o.text, session: o.session, speaker: o.speaker, vector: vector, neighbours: neighbours)
            if let i = policy.interference(input, gate: g, neighbours: withVectors),
                let e = try interferenceEvent(i, user, new: memory, vector: vector, neighbours: withVectors, observation: obsID, at: time, state: state)
            {
                events.append(e)
                return (events, g, memory, i)
            }
        }
        return (events, g, memory, nil)
    }

    /// The decision an interference implies (SPEC.md §12.7), with id derived from the observation id
    /// followed by 0x01 (superseded), 0x02 (reinforced) or 0x03 (flagged `refines`). Its input digest
    /// covers the new vector, the old memory's id and its vector, whatever the relation.
    func interferenceEvent(
        _ i: Interference, _ user: UserRef, new memory: ID128, vector: QuantizedVector?, neighbours: [(candidate: Candidate, vector: QuantizedVector?)],
        observation obsID: EventID, at time: Int64, state: ProjectionStore
    ) throws -> EventData? {
        let d = decision(policy.digest { w in
            if let v = vector { w.bytes(1, v.encoded) }
            w.id(2, i.memory)
            if let ov = neighbours.first(where: { $0.candidate.memory == i.memory })?.vector { w.bytes(3, ov.encoded) }
        })
        let event: MemoryEvent, tag: UInt8
        switch i.relation {
        case .supersedes:
            event = .superseded(.init(decision: d, old: i.memory, new: memory, score: i.score)); tag = 1
        case .reinforces:
            // Stating a fact again reinforces it as `helped` feedback would (the model's spacing rule).
            let old = try state.read { kv in try UserReader(kv: kv, user: user.key).memory(i.memory, at: time) }
            guard let old, case .reinforced(var r)? = policy.feedback(.helped, on: old) else { return nil }
            r.decision = d
            event = .reinforced(r); tag = 2
        case .refines:
            event = .flagged(.init(decision: d, memory: memory, related: i.memory, reason: Interference.Relation.refines.rawValue, score: i.score)); tag = 3
        }
        var idBytes = obsID.bytes
        idBytes.append(tag)
        return EventData(id: ID128.derived(domain: "psm.decision.v1", idBytes), type: event.type.rawValue, time: time, causation: obsID, payload: event.payload())
    }

    /// The ranking for a recall request (one `recalled` event listing what is surfaced).
    public func recall(
        _ user: UserRef, _ r: MemoryEvent.RecallRequest, id requestID: EventID, at time: Int64, state: ProjectionStore
    ) throws -> (events: [EventData], ranked: [(Candidate, Fixed)], considered: Int) {
        let q = recallQuery(r.query, k: Int(r.k), at: time)
        let candidates = try state.candidates(user, q)
        let ranked = rank(candidates, query: r.query, at: time, k: Int(r.k))
        let digest = policy.digest { w in
            w.string(1, r.query)
            w.int(2, time)
            for c in candidates { w.id(3, c.memory) }
        }
        let recalled = MemoryEvent.recalled(.init(decision: decision(digest), request: requestID, items: ranked.map { .init(memory: $0.0.memory, weight: $0.1) }))
        let event = EventData(
            id: ID128.derived(domain: "psm.decision.v1", requestID.bytes), type: MemoryEventType.recalled.rawValue, time: time,
            causation: requestID, payload: recalled.payload())
        return ([event], ranked, candidates.count)
    }

    /// The candidate query of a recall (journaled, peeked or as of a past point alike): `perList`
    /// max(50, k) and the policy's fusion constant.
    public func recallQuery(_ query: String, k: Int, at time: Int64) -> CandidateQuery {
        var vector: QuantizedVector? = nil
        if let tokens, let encoder {
            // One pass gives the query's vector and the token states token matching reads.
            let (e, s) = encoder.embedWithStates([query])
            tokens.note(query: query, states: s[0])
            vector = QuantizedVector(normalizing: e[0])
        } else {
            vector = embed(query)
        }
        return CandidateQuery(text: query, vector: vector, at: time, perList: max(50, k), fusion: policy.fusionConstant)
    }

    /// The policy's ranking of `candidates`: the `k` highest weights, ties by memory id.
    public func rank(_ candidates: [Candidate], query: String, at: Int64, k: Int) -> [(Candidate, Fixed)] {
        var candidates = candidates
        let weights = weigh(&candidates, query: query, at: at)
        return Array(zip(candidates, weights).sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0.memory < $1.0.memory }.prefix(k))
    }

    /// The policy's weight of every candidate, after filling their token matching when the policy
    /// weighs it. A policy that weighs token matching without an encoder to compute it sees 0.
    public func weigh(_ candidates: inout [Candidate], query: String, at: Int64) -> [Fixed] {
        tokens?.fill(&candidates, query: query)
        return policy.weigh(candidates, query: query, at: at)
    }

    /// The answer to feedback (reinforce or weaken), or nothing.
    public func feedback(_ user: UserRef, _ f: MemoryEvent.Feedback, id: EventID, at time: Int64, state: ProjectionStore) throws -> [EventData] {
        let m = try state.read { kv in try UserReader(kv: kv, user: user.key).memory(f.memory, at: time) }
        guard let m, var d = policy.feedback(f.kind, on: m) else { return [] }
        d = d.withModel(modelID)
        return [EventData(id: ID128.derived(domain: "psm.decision.v1", id.bytes), type: d.type.rawValue, time: time, causation: id, payload: d.payload())]
    }

    /// Sleep-time decisions for one user.
    public func sleep(_ user: UserRef, id: EventID, at time: Int64, state: ProjectionStore) throws -> [EventData] {
        let input = try state.read { kv -> SleepInput in
            let reader = UserReader(kv: kv, user: user.key)
            let listing = try reader.tiers(at: time, name: user.description)
            var vectors: [ID128: QuantizedVector] = [:]
            // Resting episodes (aged into the archive, not consolidated or pruned) can still join a group.
            let resting = (listing.memories[.archival] ?? []).filter { $0.record.consolidatedInto.isZero && !$0.record.pruned }
            for m in (listing.memories[.working] ?? []) + (listing.memories[.episodic] ?? []) + resting {
                if let v = try reader.vector(slot: m.record.slot) { vectors[m.record.id] = v }
            }
            return SleepInput(tiers: listing, vectors: vectors, at: time, previousSleep: listing.user.lastSleep)
        }
        return policy.sleep(input).enumerated().map { (i, d) in
            var idBytes = id.bytes
            idBytes.append(contentsOf: withUnsafeBytes(of: UInt32(i).bigEndian) { Array($0) })
            let d = d.withModel(modelID)
            return EventData(id: ID128.derived(domain: "psm.decision.v1", idBytes), type: d.type.rawValue, time: time, causation: id, payload: d.payload())
        }
    }
}

extension MemoryEvent {
    /// The same decision recorded as made by `model`.
    func withModel(_ model: [UInt8]) -> MemoryEvent {
        func m(_ d: Decision) -> Decision { Decision(model: model, inputDigest: d.inputDigest) }
        switch self {
        case .gated(var x): x.decision = m(x.decision); return .gated(x)
        case .encoded(var x): x.decision = m(x.decision); return .encoded(x)
        case .reinforced(var x): x.decision = m(x.decision); return .reinforced(x)
        case .weakened(var x): x.decision = m(x.decision); return .weakened(x)
        case .superseded(var x): x.decision = m(x.decision); return .superseded(x)
        case .flagged(var x): x.decision = m(x.decision); return .flagged(x)
        case .consolidated(var x): x.decision = m(x.decision); return .consolidated(x)
        case .archived(var x): x.decision = m(x.decision); return .archived(x)
        case .pruned(var x): x.decision = m(x.decision); return .pruned(x)
        case .recalled(var x): x.decision = m(x.decision); return .recalled(x)
        default: return self
        }
    }
}
