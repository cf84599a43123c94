import Journal
import Projections

/// A seeded stream of valid memory events over several users: observations, gating, tier moves,
/// reinforcement, supersession, consolidation, archival, recalls and feedback, sleep, and (rarely)
/// erasure. For property tests and the projections benchmark; never on the product path.
public struct MemoryEventGenerator {
    public struct Step {
        public var user: UserRef
        public var event: MemoryEvent
        public var id: EventID
        public var time: Int64
        public var causation: EventID
    }

    struct UserState {
        var pending: [EventID] = []
        /// The observation before each one (for contextual gate decisions).
        var before: [EventID: EventID] = [:]
        var lastObservation: EventID = .zero
        var memories: [ID128] = []
        var tier: [ID128: Tier] = [:]
        var valid: Set<ID128> = []
        var supersedes: Set<ID128> = []
        var pendingRecalls: [EventID] = []
        var answered: [(EventID, [ID128])] = []
        var erased = false
    }

    public let users: [UserRef]
    public let dimension: Int
    public var erasureRate: Double
    public var textBytes: Int
    /// Kept gate decisions name the user's previous observation as their context and index their date,
    /// as a contextual model's do (SPEC.md §11.4). Off by default; consumes no randomness, so the stream
    /// is otherwise the same.
    public var contextual = false
    var rng: SplitMix64
    var text: SampleConversation
    var states: [UserState]
    var time: Int64
    var counter: UInt64 = 0
    var queue: [Step] = []

    /// `startTime` (µs since the epoch) is the first event's time; event ids are time-ordered, so
    /// generators that must not share ids start at different times.
    public init(
        seed: UInt64, users: Int, dimension: Int = 8, tenant: String = "gen", erasureRate: Double = 0.001, textBytes: Int = 120,
        startTime: Int64 = 1_767_225_600_000_000
    ) {
        self.users = (0..<users).map { try! UserRef(tenant: tenant, user: "u\($0)") }
        self.dimension = dimension
        self.erasureRate = erasureRate
        self.textBytes = textBytes
        rng = SplitMix64(seed: seed)
        text = SampleConversation(seed: seed ^ 0x9E37_79B9_7F4A_7C15)
        states = Array(repeating: UserState(), count: users)
        time = startTime
    }

    mutating func nextID() -> EventID {
        counter += 1
        return ID128.timeOrdered(timeMicros: time, entropy: (rng.next(), counter))
    }

    mutating func unit() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
    mutating func fixed(_ lo: Double, _ hi: Double) -> Fixed { Fixed(lo + (hi - lo) * unit()) }
    mutating func vector() -> QuantizedVector {
        QuantizedVector(normalizing: (0..<dimension).map { _ in Float(unit() * 2 - 1) })
    }

    /// The next event. Event times only grow.
    public mutating func next() -> Step {
        if !queue.isEmpty { return queue.removeFirst() }
        time += Int64(rng.next() % 3_600_000_000)  // up to an hour between events
        var ui = Int(rng.next() % UInt64(users.count))
        if states[ui].erased { ui = states.firstIndex(where: { !$0.erased }) ?? ui }
        let u = users[ui]
        let d = MemoryEvent.Decision.baseline
        var s = states[ui]
        defer { states[ui] = s }
        func step(_ e: MemoryEvent, cause: EventID = .zero) -> Step { Step(user: u, event: e, id: nextID(), time: time, causation: cause) }
        let roll = unit()
        let active = s.memories.filter { s.tier[$0] != .archival }
        if s.memories.isEmpty && s.pending.isEmpty || roll < 0.28 {
            let st = step(.observation(.init(text: text.observation(targetBytes: textBytes), session: "s\(time / 86_400_000_000)", speaker: text.speaker(), sourceID: "src-\(counter)")))
            s.pending.append(st.id)
            if !s.lastObservation.isZero { s.before[st.id] = s.lastObservation }
            s.lastObservation = st.id
            return st
        }
        if roll < 0.55, !s.pending.isEmpty {
            let obs = s.pending.removeFirst()
            if unit() < 0.2 { return step(.gated(.init(decision: d, observation: obs, kept: false)), cause: obs) }
            let mem = ID128.derived(domain: "psm.memory.v1", obs.bytes)
            let tier: Tier = unit() < 0.5 ? .working : .episodic
            s.memories.append(mem)
            s.tier[mem] = tier
            s.valid.insert(mem)
            return step(
                .gated(
                    .init(
                        decision: d, observation: obs, kept: true, memory: mem, tier: tier, type: MemoryType(rawValue: UInt8(1 + rng.next() % 6))!,
                        emotionalWeight: fixed(0, 1), confidence: fixed(0.3, 1), strength: fixed(0.2, 1), stability: 3_600 + rng.next() % (90 * 86_400),
                        vector: unit() < 0.9 ? vector() : nil, context: contextual ? s.before[obs] ?? .zero : .zero, dated: contextual)), cause: obs)
        }
        if roll < 0.60, let m = active.first(where: { s.tier[$0] == .working }) {
            s.tier[m] = .episodic
            return step(.encoded(.init(decision: d, memory: m, tier: .episodic)))
        }
        if roll < 0.66, let m = active.randomElement(using: &rng) {
            return step(.reinforced(.init(decision: d, memory: m, boost: fixed(0, 0.5), stability: 86_400 + rng.next() % (180 * 86_400))))
        }
        if roll < 0.69, let m = active.randomElement(using: &rng) {
            return step(.weakened(.init(decision: d, memory: m, factor: fixed(0.1, 0.9), stability: 3_600 + rng.next() % (30 * 86_400))))
        }
        if roll < 0.72 {
            let olds = active.filter { s.valid.contains($0) }, news = active.filter { !s.supersedes.contains($0) }
            if let old = olds.randomElement(using: &rng), let new = news.filter({ $0 != old }).randomElement(using: &rng) {
                s.valid.remove(old)
                s.supersedes.insert(new)
                return step(.superseded(.init(decision: d, old: old, new: new, score: fixed(0.5, 1))))
            }
        }
        if roll < 0.74, let m = active.randomElement(using: &rng) {
            let related = unit() < 0.5 ? (active.randomElement(using: &rng) ?? .zero) : .zero
            return step(.flagged(.init(decision: d, memory: m, related: related == m ? .zero : related, reason: "review", score: fixed(0, 1))))
        }
        if roll < 0.77 {
            let episodes = active.filter { s.tier[$0] == .episodic }
            if episodes.count >= 2 {
                let n = 2 + Int(rng.next() % UInt64(min(3, episodes.count - 1)))
                let sources = Array(episodes.shuffled(using: &rng).prefix(n))
                let mem = ID128.derived(domain: "psm.memory.v1", sources.sorted().flatMap(\.bytes))
                s.memories.append(mem)
                s.tier[mem] = .semantic
                s.valid.insert(mem)
                let c = step(
                    .consolidated(
                        .init(
                            decision: d, memory: mem, text: text.observation(targetBytes: textBytes / 2), type: .fact, confidence: fixed(0.5, 1),
                            strength: fixed(0.5, 1), stability: 30 * 86_400 + rng.next() % (300 * 86_400), sources: sources,
                            vector: unit() < 0.9 ? vector() : nil)))
                for src in sources {
                    s.tier[src] = .archival
                    queue.append(step(.archived(.init(decision: d, memory: src, into: mem)), cause: c.id))
                }
                return c
            }
        }
        if roll < 0.79, let m = active.randomElement(using: &rng) {
            s.tier[m] = .archival
            return step(.pruned(.init(decision: d, memory: m, strength: fixed(0, 0.05))))
        }
        if roll < 0.90, !s.memories.isEmpty {
            let r = step(.recallRequest(.init(query: text.observation(targetBytes: 40), k: 3)))
            let items = Array(s.memories.shuffled(using: &rng).prefix(Int(1 + rng.next() % 3)))
            let answer = step(.recalled(.init(decision: d, request: r.id, items: items.map { .init(memory: $0, weight: fixed(0, 1)) })), cause: r.id)
            s.answered.append((r.id, items))
            queue.append(answer)
            return r
        }
        if roll < 0.95, let (recall, items) = s.answered.randomElement(using: &rng), let m = items.randomElement(using: &rng) {
            return step(.feedback(.init(recall: recall, memory: m, kind: FeedbackKind(rawValue: UInt8(1 + rng.next() % 3))!)))
        }
        if unit() < erasureRate * 100, states.filter({ !$0.erased }).count > 1 {
            s.erased = true
            return step(.erasureRequest(.init(reason: "generated")))
        }
        return step(.sleepRequest(.init()))
    }
}
