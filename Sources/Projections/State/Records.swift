import Journal

// The values stored in the projection store (SPEC.md §11.3). Each is encoded with the canonical
// payload encoding, so the store's bytes — and its state hash — depend only on the events folded.

/// A user: the scope every projection key starts with. Its key is the user's stream id.
public struct UserRecord: Sendable, Equatable {
    public var tenant: String
    public var user: String
    public var events: UInt64 = 0
    public var lastPosition: Position = 0
    public var lastEventTime: Int64 = 0
    public var observations: UInt64 = 0
    /// The slot the next memory gets (slots index the dense and lexical indexes).
    public var nextSlot: UInt32 = 0
    /// Memories in the lexical index and their total analyzed length (BM25's N and avgdl).
    public var indexedDocuments: UInt64 = 0
    public var indexedLength: UInt64 = 0
    /// Dimension of the user's vectors (0 until the first).
    public var dimension: UInt32 = 0
    public var sleeps: UInt64 = 0
    public var lastSleep: Int64 = 0
    public var erased: Bool = false
    public var erasedAt: Position = 0
    /// The user's latest observation (zero before the first): the context a contextual model reads the
    /// next observation of the same session with (SPEC.md §11.4).
    public var lastObservation: EventID = .zero

    public init(tenant: String, user: String) { self.tenant = tenant; self.user = user }

    func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.string(1, tenant); w.string(2, user)
        w.uint(3, events); w.uint(4, lastPosition); w.int(5, lastEventTime); w.uint(6, observations)
        w.uint(7, UInt64(nextSlot)); w.uint(8, indexedDocuments); w.uint(9, indexedLength); w.uint(10, UInt64(dimension))
        w.uint(11, sleeps); w.int(12, lastSleep); w.bool(13, erased); w.uint(14, erasedAt)
        if !lastObservation.isZero { w.id(15, lastObservation) }
        return w.bytes
    }

    init(decoding b: [UInt8]) throws(ProjectionError) {
        var f = try Fields(b, "user record")
        tenant = try f.requiredString(1); user = try f.requiredString(2)
        events = try f.uint(3); lastPosition = try f.uint(4); lastEventTime = try f.int(5); observations = try f.uint(6)
        nextSlot = UInt32(truncatingIfNeeded: try f.uint(7)); indexedDocuments = try f.uint(8); indexedLength = try f.uint(9)
        dimension = UInt32(truncatingIfNeeded: try f.uint(10)); sleeps = try f.uint(11); lastSleep = try f.int(12)
        erased = try f.bool(13); erasedAt = try f.uint(14); lastObservation = try f.id(15)
        try f.finish()
    }
}

public enum ObservationStatus: UInt8, Sendable, CustomStringConvertible {
    /// In the sensory buffer: not gated yet.
    case pending = 0
    case kept = 1
    case dropped = 2
    public var description: String { ["pending", "kept", "dropped"][Int(rawValue)] }
}

/// An observation as the projections keep it: the command's content plus what the gate decided.
public struct ObservationRecord: Sendable, Equatable {
    public var id: EventID
    public var position: Position
    public var time: Int64
    public var text: String
    public var session: String
    public var speaker: String
    public var role: String
    public var sourceID: String
    public var status: ObservationStatus = .pending
    public var memory: ID128 = .zero

    func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 96 + text.utf8.count + session.utf8.count + speaker.utf8.count + sourceID.utf8.count)
        w.id(1, id); w.uint(2, position); w.int(3, time); w.string(4, text)
        if !session.isEmpty { w.string(5, session) }
        if !speaker.isEmpty { w.string(6, speaker) }
        if !role.isEmpty { w.string(7, role) }
        if !sourceID.isEmpty { w.string(8, sourceID) }
        w.uint(9, UInt64(status.rawValue))
        if !memory.isZero { w.id(10, memory) }
        return w.bytes
    }

    init(id: EventID, position: Position, time: Int64, text: String, session: String, speaker: String, role: String, sourceID: String) {
        self.id = id; self.position = position; self.time = time; self.text = text
        self.session = session; self.speaker = speaker; self.role = role; self.sourceID = sourceID
    }

    init(decoding b: [UInt8]) throws(ProjectionError) {
        var f = try Fields(b, "observation record")
        id = try f.requiredID(1); position = try f.uint(2); time = try f.int(3); text = try f.requiredString(4)
        session = try f.string(5); speaker = try f.string(6); role = try f.string(7); sourceID = try f.string(8)
        let s = try f.uint(9)
        guard s <= 2, let status = ObservationStatus(rawValue: UInt8(s)) else { throw .malformed("observation status \(s)") }
        self.status = status
        memory = try f.id(10)
        try f.finish()
    }
}

/// A memory and its metadata. Strength is not stored as a number that changes with time: it is
/// `anchorStrength` at `anchorTime`, decaying with `stability` (see ``strength(at:)``).
public struct MemoryRecord: Sendable, Equatable {
    public var id: ID128
    public var slot: UInt32
    public var tier: Tier
    public var type: MemoryType
    public var text: String
    public var createdAt: Int64
    public var createdPosition: Position
    public var anchorStrength: Fixed
    public var anchorTime: Int64
    /// Seconds for the strength to fall to 1/e.
    public var stability: UInt64
    public var recallCount: UInt64 = 0
    public var lastRecalled: Int64 = 0
    public var emotionalWeight: Fixed
    public var confidence: Fixed
    public var validFrom: Int64
    /// End of validity (set when superseded); 0 while valid.
    public var validTo: Int64 = 0
    public var supersededBy: ID128 = .zero
    public var supersedes: ID128 = .zero
    /// Direct sources: the observation for an episode, the source memories for a consolidated one.
    public var sources: [ID128]
    /// Every observation this memory derives from, transitively, in id order.
    public var observations: [EventID]
    /// The app's source ids of those observations, sorted.
    public var sourceIDs: [String]
    public var session: String = ""
    public var speaker: String = ""
    public var reinforcements: UInt64 = 0
    public var weakenings: UInt64 = 0
    public var helped: UInt64 = 0
    public var irrelevant: UInt64 = 0
    public var corrected: UInt64 = 0
    /// Review flags, in the order they were raised ("reason" or "reason:related-id").
    public var flags: [String] = []
    /// The semantic memory this one was consolidated into.
    public var consolidatedInto: ID128 = .zero
    public var archivedAt: Int64 = 0
    public var pruned: Bool = false
    public var updatedPosition: Position
    /// What the lexical index holds before the speaker and text (the date and the context turn a
    /// contextual gate decision named, SPEC.md §11.4); empty for most memories.
    public var indexContext: String = ""

    /// Strength at `time` (µs): exponential decay from the anchor. Before the anchor it is the anchor.
    public func strength(at time: Int64) -> Double {
        let dt = Double(max(0, time - anchorTime)) / 1_000_000
        return anchorStrength.value * DeterministicMath.exp(-dt / Double(stability))
    }

    /// Fraction of strength lost per day without reinforcement.
    public var decayPerDay: Double { 1 - DeterministicMath.exp(-86_400 / Double(stability)) }

    public var isValid: Bool { validTo == 0 }

    func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 192 + text.utf8.count + indexContext.utf8.count + 20 * (sources.count + observations.count) + sourceIDs.reduce(0) { $0 + 4 + $1.utf8.count })
        w.id(1, id); w.uint(2, UInt64(slot)); w.uint(3, UInt64(tier.rawValue)); w.uint(4, UInt64(type.rawValue))
        w.string(5, text); w.int(6, createdAt); w.uint(7, createdPosition); w.int(8, anchorStrength.raw); w.int(9, anchorTime)
        w.uint(10, stability); w.uint(11, recallCount); w.int(12, lastRecalled); w.int(13, emotionalWeight.raw)
        w.int(14, confidence.raw); w.int(15, validFrom); w.int(16, validTo)
        if !supersededBy.isZero { w.id(17, supersededBy) }
        if !supersedes.isZero { w.id(18, supersedes) }
        for s in sources { w.id(19, s) }
        for o in observations { w.id(20, o) }
        for s in sourceIDs { w.string(21, s) }
        if !session.isEmpty { w.string(22, session) }
        if !speaker.isEmpty { w.string(23, speaker) }
        w.uint(24, reinforcements); w.uint(25, weakenings); w.uint(26, helped); w.uint(27, irrelevant); w.uint(28, corrected)
        for fl in flags { w.string(29, fl) }
        if !consolidatedInto.isZero { w.id(30, consolidatedInto) }
        w.int(31, archivedAt); w.bool(32, pruned); w.uint(33, updatedPosition)
        if !indexContext.isEmpty { w.string(34, indexContext) }
        return w.bytes
    }

    init(
        id: ID128, slot: UInt32, tier: Tier, type: MemoryType, text: String, createdAt: Int64, createdPosition: Position,
        anchorStrength: Fixed, stability: UInt64, emotionalWeight: Fixed, confidence: Fixed, sources: [ID128],
        observations: [EventID], sourceIDs: [String]
    ) {
        self.id = id; self.slot = slot; self.tier = tier; self.type = type; self.text = text; self.createdAt = createdAt
        self.createdPosition = createdPosition; self.anchorStrength = anchorStrength; self.anchorTime = createdAt
        self.stability = stability; self.emotionalWeight = emotionalWeight; self.confidence = confidence
        self.validFrom = createdAt; self.sources = sources; self.observations = observations; self.sourceIDs = sourceIDs
        self.updatedPosition = createdPosition
    }

    init(decoding b: [UInt8]) throws(ProjectionError) {
        var f = try Fields(b, "memory record")
        id = try f.requiredID(1); slot = UInt32(truncatingIfNeeded: try f.uint(2))
        let t = try f.uint(3), mt = try f.uint(4)
        guard t <= 4, let tier = Tier(rawValue: UInt8(t)) else { throw .malformed("memory tier \(t)") }
        guard mt <= 255, let type = MemoryType(rawValue: UInt8(mt)) else { throw .malformed("memory type \(mt)") }
        self.tier = tier; self.type = type
        text = try f.requiredString(5); createdAt = try f.int(6); createdPosition = try f.uint(7)
        anchorStrength = Fixed(raw: try f.int(8)); anchorTime = try f.int(9); stability = try f.uint(10)
        recallCount = try f.uint(11); lastRecalled = try f.int(12); emotionalWeight = Fixed(raw: try f.int(13))
        confidence = Fixed(raw: try f.int(14)); validFrom = try f.int(15); validTo = try f.int(16)
        supersededBy = try f.id(17); supersedes = try f.id(18)
        sources = try f.ids(19); observations = try f.ids(20); sourceIDs = try f.strings(21)
        session = try f.string(22); speaker = try f.string(23)
        reinforcements = try f.uint(24); weakenings = try f.uint(25); helped = try f.uint(26); irrelevant = try f.uint(27)
        corrected = try f.uint(28); flags = try f.strings(29); consolidatedInto = try f.id(30); archivedAt = try f.int(31)
        pruned = try f.bool(32); updatedPosition = try f.uint(33); indexContext = try f.string(34)
        guard stability > 0 else { throw .malformed("memory \(id) has stability 0") }
        try f.finish()
    }
}

/// A recall as the projections keep it, so feedback can point at what was surfaced.
public struct RecallRecord: Sendable, Equatable {
    public var id: EventID
    public var time: Int64
    public var query: String
    public var k: UInt32
    /// Set by the `recalled` decision.
    public var items: [MemoryEvent.Recalled.Item] = []
    public var answered: Bool = false

    func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.id(1, id); w.int(2, time); w.string(3, query); w.uint(4, UInt64(k)); w.bool(5, answered)
        for item in items {
            var n = PayloadWriter()
            n.id(1, item.memory); n.int(2, item.weight.raw)
            w.bytes(6, n.bytes)
        }
        return w.bytes
    }

    init(id: EventID, time: Int64, query: String, k: UInt32) { self.id = id; self.time = time; self.query = query; self.k = k }

    init(decoding b: [UInt8]) throws(ProjectionError) {
        var f = try Fields(b, "recall record")
        id = try f.requiredID(1); time = try f.int(2); query = try f.requiredString(3); k = UInt32(truncatingIfNeeded: try f.uint(4))
        answered = try f.bool(5)
        for v in try f.repeated(6) {
            guard case .bytes(let nb) = v else { throw .malformed("recall item") }
            var n = try Fields(nb, "recall item")
            items.append(.init(memory: try n.requiredID(1), weight: Fixed(raw: try n.int(2))))
            try n.finish()
        }
        try f.finish()
    }
}


/// One memory's entry in its user's candidate index, stored under its slot (SPEC.md §11.3): the
/// memory id, what BM25 needs of it (its analyzed terms with their frequencies, sorted by term bytes,
/// and its document length) and its vector. One entry per memory, written once at creation, so a
/// memory costs one index write however many terms it has; the in-memory index inverts the terms.
struct IndexEntry: Sendable {
    var memory: ID128
    var length: UInt16
    var terms: [(term: String, tf: UInt16)]
    var vector: QuantizedVector?

    /// The encoding of the entry of `memory` indexing `text`, straight from the analysis (no term
    /// strings), and its document length. Its terms decode to ``Fold/termCounts(_:)`` of the text (checked by `Invariants`).
    static func encode(memory: ID128, text: String, vector: QuantizedVector?) -> (bytes: [UInt8], length: UInt16) {
        let all = Analyzer.analyze(text)
        let counted = all.counted()
        let length = UInt16(min(all.count, Int(UInt16.max)))
        var w = PayloadWriter(capacity: 32 + all.bytes.count + 6 * counted.count + (vector.map { 8 + $0.values.count } ?? 0))
        w.id(1, memory)
        w.uint(2, UInt64(length))
        all.bytes.withUnsafeBufferPointer { b in
            for t in counted { w.bytes(3, UnsafeBufferPointer(rebasing: b[t.range])) }
        }
        if !counted.isEmpty {
            var tfs: [UInt8] = []
            tfs.reserveCapacity(2 * counted.count)
            for t in counted { tfs.appendLE(t.tf) }
            w.bytes(4, tfs)
        }
        if let v = vector { w.bytes(5, v.encoded) }
        return (w.bytes, length)
    }

    init(decoding b: [UInt8]) throws(ProjectionError) {
        var f = try Fields(b, "index entry")
        memory = try f.requiredID(1)
        let l = try f.uint(2)
        guard l <= UInt64(UInt16.max) else { throw .malformed("index entry: document length \(l)") }
        length = UInt16(l)
        let names = try f.strings(3)
        let tfs = try f.bytes(4) ?? []
        guard tfs.count == 2 * names.count else {
            throw .malformed("index entry: \(names.count) terms but \(tfs.count / 2) frequencies")
        }
        terms = names.indices.map { (names[$0], UInt16(tfs[2 * $0]) | UInt16(tfs[2 * $0 + 1]) << 8) }
        vector = try f.bytes(5).map { b throws(ProjectionError) in try QuantizedVector(encoded: b) }
        try f.finish()
    }
}
