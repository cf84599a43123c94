import Journal

/// Event type codes of the memory model (SPEC.md §11.1). Commands are 0x01xx, decisions 0x02xx.
public enum MemoryEventType: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case observation = 0x0101
    case recallRequest = 0x0102
    case feedback = 0x0103
    case sleepRequest = 0x0104
    case modelActivation = 0x0105
    case erasureRequest = 0x0106

    case gated = 0x0201
    case encoded = 0x0202
    case reinforced = 0x0203
    case weakened = 0x0204
    case superseded = 0x0205
    case flagged = 0x0206
    case consolidated = 0x0207
    case archived = 0x0208
    case pruned = 0x0209
    case recalled = 0x020A

    public var isDecision: Bool { rawValue >> 8 == 0x02 }

    public var description: String {
        switch self {
        case .observation: "observation"
        case .recallRequest: "recall_request"
        case .feedback: "feedback"
        case .sleepRequest: "sleep_request"
        case .modelActivation: "model_activation"
        case .erasureRequest: "erasure_request"
        case .gated: "gated"
        case .encoded: "encoded"
        case .reinforced: "reinforced"
        case .weakened: "weakened"
        case .superseded: "superseded"
        case .flagged: "flagged"
        case .consolidated: "consolidated"
        case .archived: "archived"
        case .pruned: "pruned"
        case .recalled: "recalled"
        }
    }

    public init?(name: String) {
        guard let t = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = t
    }
}

/// Memory tiers (SPEC.md §11.2). The raw values are stored.
public enum Tier: UInt8, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case sensory = 0
    case working = 1
    case episodic = 2
    case semantic = 3
    case archival = 4

    public static func < (a: Tier, b: Tier) -> Bool { a.rawValue < b.rawValue }
    public var description: String { ["sensory", "working", "episodic", "semantic", "archival"][Int(rawValue)] }
    public init?(name: String) {
        guard let t = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = t
    }
}

/// What a memory is about (SPEC.md §11.2). The raw values are stored.
public enum MemoryType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case fact = 1, preference = 2, plan = 3, event = 4, smallTalk = 5, other = 6

    public var description: String { ["", "fact", "preference", "plan", "event", "small_talk", "other"][Int(rawValue)] }
    public init?(name: String) {
        guard let t = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = t
    }
}

public enum FeedbackKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case helped = 1, irrelevant = 2, corrected = 3
    public var description: String { ["", "helped", "irrelevant", "corrected"][Int(rawValue)] }
    public init?(name: String) {
        guard let t = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = t
    }
}

/// A fixed-point score: `raw / 10_000`. Every score and weight in an event is one (SPEC.md §11.1),
/// so decisions never depend on floating-point formatting or rounding modes.
public struct Fixed: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let scale: Int64 = 10_000
    public var raw: Int64
    public init(raw: Int64) { self.raw = raw }
    /// Rounds half away from zero.
    public init(_ value: Double) { raw = Int64((value * Double(Fixed.scale)).rounded()) }
    public var value: Double { Double(raw) / Double(Fixed.scale) }
    public static let zero = Fixed(raw: 0)
    public static let one = Fixed(raw: scale)
    public static func < (a: Fixed, b: Fixed) -> Bool { a.raw < b.raw }
    public var description: String { String(value) }
}

/// A quantized embedding: `value[i] = Double(q[i]) * scale`. Vectors are L2-normalized before
/// quantization, so the dot product of two is their cosine similarity (SPEC.md §11.4).
public struct QuantizedVector: Hashable, Sendable {
    public var scale: Float
    public var values: [Int8]
    public init(scale: Float, values: [Int8]) { self.scale = scale; self.values = values }
    public var isEmpty: Bool { values.isEmpty }
    public static let maxDimension = 4096

    /// Quantizes `v` (normalized first) to int8 with one scale: max |v| maps to 127.
    public init(normalizing v: [Float]) {
        var norm: Double = 0
        for x in v { norm += Double(x) * Double(x) }
        let inv = norm > 0 ? 1 / norm.squareRoot() : 0
        var maxAbs: Double = 0
        for x in v { maxAbs = max(maxAbs, abs(Double(x) * inv)) }
        let s = maxAbs > 0 ? maxAbs / 127 : 1
        values = v.map { Int8(clamping: Int((Double($0) * inv / s).rounded())) }
        scale = Float(s)
    }

    /// 4-byte little-endian IEEE scale followed by the int8 values.
    public var encoded: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 4 + values.count) { buf, count in
            let bits = scale.bitPattern
            for k in 0..<4 { buf[k] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k))) }
            values.withUnsafeBytes { v in
                if !v.isEmpty { UnsafeMutableRawBufferPointer(start: buf.baseAddress! + 4, count: v.count).copyMemory(from: v) }
            }
            count = 4 + values.count
        }
    }

    public init(encoded b: [UInt8]) throws(ProjectionError) {
        guard b.count >= 4, b.count - 4 <= QuantizedVector.maxDimension else {
            throw .malformed("vector of \(b.count) bytes (need a 4-byte scale and at most \(QuantizedVector.maxDimension) values)")
        }
        let s = Float(bitPattern: UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24)
        guard s.isFinite, s > 0 else { throw .malformed("vector scale \(s) is not a positive finite number") }
        scale = s
        values = [Int8](unsafeUninitializedCapacity: b.count - 4) { buf, count in
            b.withUnsafeBytes { src in
                if b.count > 4 { UnsafeMutableRawBufferPointer(buf).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[4...])) }
            }
            count = b.count - 4
        }
    }
}

/// The memory model's events as Swift values, with the canonical payload encoding of each (SPEC.md §11.1).
/// The stream gives tenant and user; the record header gives event id, time and causation.
public enum MemoryEvent: Sendable, Equatable {
    case observation(Observation)
    case recallRequest(RecallRequest)
    case feedback(Feedback)
    case sleepRequest(SleepRequest)
    case modelActivation(ModelActivation)
    case erasureRequest(ErasureRequest)
    case gated(Gated)
    case encoded(Encoded)
    case reinforced(Reinforced)
    case weakened(Weakened)
    case superseded(Superseded)
    case flagged(Flagged)
    case consolidated(Consolidated)
    case archived(Archived)
    case pruned(Pruned)
    case recalled(Recalled)

    public struct Observation: Sendable, Equatable {
        public var text: String
        public var session: String
        public var speaker: String
        public var role: String
        public var sourceID: String
        public var metadata: [String: String]
        public init(text: String, session: String = "", speaker: String = "", role: String = "", sourceID: String = "", metadata: [String: String] = [:]) {
            self.text = text; self.session = session; self.speaker = speaker; self.role = role
            self.sourceID = sourceID; self.metadata = metadata
        }
    }
    public struct RecallRequest: Sendable, Equatable {
        public var query: String
        public var k: UInt32
        public var session: String
        public init(query: String, k: UInt32, session: String = "") { self.query = query; self.k = k; self.session = session }
    }
    public struct Feedback: Sendable, Equatable {
        public var recall: EventID
        public var memory: ID128
        public var kind: FeedbackKind
        public var note: String
        public init(recall: EventID, memory: ID128, kind: FeedbackKind, note: String = "") {
            self.recall = recall; self.memory = memory; self.kind = kind; self.note = note
        }
    }
    public struct SleepRequest: Sendable, Equatable {
        public var reason: String
        public init(reason: String = "") { self.reason = reason }
    }
    public struct ModelActivation: Sendable, Equatable {
        public var model: [UInt8]
        public var name: String
        public init(model: [UInt8], name: String) { self.model = model; self.name = name }
    }
    public struct ErasureRequest: Sendable, Equatable {
        public var reason: String
        public init(reason: String = "") { self.reason = reason }
    }

    /// What every decision carries: the model that made it and a digest of exactly its inputs.
    public struct Decision: Sendable, Equatable {
        /// SHA-256 of the model file (32 bytes), or 32 zero bytes for the rule baseline.
        public var model: [UInt8]
        /// SHA-256 of the canonical input the model saw (SPEC.md §11.1).
        public var inputDigest: [UInt8]
        public init(model: [UInt8], inputDigest: [UInt8]) { self.model = model; self.inputDigest = inputDigest }
        public static let baseline = Decision(model: [UInt8](repeating: 0, count: 32), inputDigest: [UInt8](repeating: 0, count: 32))
    }
    public struct Gated: Sendable, Equatable {
        public var decision: Decision
        public var observation: EventID
        public var kept: Bool
        /// The new memory (zero when dropped).
        public var memory: ID128
        public var tier: Tier
        public var type: MemoryType
        public var emotionalWeight: Fixed
        public var confidence: Fixed
        public var strength: Fixed
        /// Seconds for strength to fall to 1/e without reinforcement.
        public var stability: UInt64
        public var vector: QuantizedVector?
        public var scores: [Fixed]
        /// The earlier observation of the same session whose text the memory was embedded with and is
        /// indexed with (zero for none), and whether the index also holds the observation's date
        /// (SPEC.md §11.4). Set by models that read turns in context; the fold indexes what this says.
        public var context: EventID
        public var dated: Bool
        public init(
            decision: Decision, observation: EventID, kept: Bool, memory: ID128 = .zero, tier: Tier = .episodic, type: MemoryType = .other,
            emotionalWeight: Fixed = .zero, confidence: Fixed = .one, strength: Fixed = .one, stability: UInt64 = 30 * 86_400,
            vector: QuantizedVector? = nil, scores: [Fixed] = [], context: EventID = .zero, dated: Bool = false
        ) {
            self.decision = decision; self.observation = observation; self.kept = kept; self.memory = memory; self.tier = tier
            self.type = type; self.emotionalWeight = emotionalWeight; self.confidence = confidence; self.strength = strength
            self.stability = stability; self.vector = vector; self.scores = scores; self.context = context; self.dated = dated
        }
    }
    public struct Encoded: Sendable, Equatable {
        public var decision: Decision
        public var memory: ID128
        public var tier: Tier
        public init(decision: Decision, memory: ID128, tier: Tier) { self.decision = decision; self.memory = memory; self.tier = tier }
    }
    public struct Reinforced: Sendable, Equatable {
        public var decision: Decision
        public var memory: ID128
        /// Added to the strength at the event time (capped at 1).
        public var boost: Fixed
        public var stability: UInt64
        public init(decision: Decision, memory: ID128, boost: Fixed, stability: UInt64) {
            self.decision = decision; self.memory = memory; self.boost = boost; self.stability = stability
        }
    }
    public struct Weakened: Sendable, Equatable {
        public var decision: Decision
        public var memory: ID128
        /// The strength at the event time is multiplied by this (0...1).
        public var factor: Fixed
        public var stability: UInt64
        public init(decision: Decision, memory: ID128, factor: Fixed, stability: UInt64) {
            self.decision = decision; self.memory = memory; self.factor = factor; self.stability = stability
        }
    }
    public struct Superseded: Sendable, Equatable {
        public var decision: Decision
        public var old: ID128
        public var new: ID128
        public var score: Fixed
        public init(decision: Decision, old: ID128, new: ID128, score: Fixed = .one) {
            self.decision = decision; self.old = old; self.new = new; self.score = score
        }
    }
    public struct Flagged: Sendable, Equatable {
        public var decision: Decision
        public var memory: ID128
        public var related: ID128
        public var reason: String
        public var score: Fixed
        public init(decision: Decision, memory: ID128, related: ID128 = .zero, reason: String, score: Fixed = .one) {
            self.decision = decision; self.memory = memory; self.related = related; self.reason = reason; self.score = score
        }
    }
    public struct Consolidated: Sendable, Equatable {
        public var decision: Decision
        public var memory: ID128
        public var text: String
        public var type: MemoryType
        public var confidence: Fixed
        public var strength: Fixed
        public var stability: UInt64
        public var sources: [ID128]
        public var vector: QuantizedVector?
        public init(
            decision: Decision, memory: ID128, text: String, type: MemoryType, confidence: Fixed, strength: Fixed, stability: UInt64,
            sources: [ID128], vector: QuantizedVector? = nil
        ) {
            self.decision = decision; self.memory = memory; self.text = text; self.type = type; self.confidence = confidence
            self.strength = strength; self.stability = stability; self.sources = sources; self.vector = vector
        }
    }
    public struct Archived: Sendable, Equatable {
        public var decision: Decision
        public var memory: ID128
        /// The semantic memory this one was consolidated into, if any.
        public var into: ID128
        public init(decision: Decision, memory: ID128, into: ID128 = .zero) { self.decision = decision; self.memory = memory; self.into = into }
    }
    public struct Pruned: Sendable, Equatable {
        public var decision: Decision
        public var memory: ID128
        /// The strength that fell below the model's threshold.
        public var strength: Fixed
        public init(decision: Decision, memory: ID128, strength: Fixed) { self.decision = decision; self.memory = memory; self.strength = strength }
    }
    public struct Recalled: Sendable, Equatable {
        public struct Item: Sendable, Equatable {
            public var memory: ID128
            public var weight: Fixed
            public init(memory: ID128, weight: Fixed) { self.memory = memory; self.weight = weight }
        }
        public var decision: Decision
        /// The recall request (also the record's causation).
        public var request: EventID
        /// What was surfaced, in rank order: the audit record of what an LLM was shown.
        public var items: [Item]
        public init(decision: Decision, request: EventID, items: [Item]) { self.decision = decision; self.request = request; self.items = items }
    }

    public var type: MemoryEventType {
        switch self {
        case .observation: .observation
        case .recallRequest: .recallRequest
        case .feedback: .feedback
        case .sleepRequest: .sleepRequest
        case .modelActivation: .modelActivation
        case .erasureRequest: .erasureRequest
        case .gated: .gated
        case .encoded: .encoded
        case .reinforced: .reinforced
        case .weakened: .weakened
        case .superseded: .superseded
        case .flagged: .flagged
        case .consolidated: .consolidated
        case .archived: .archived
        case .pruned: .pruned
        case .recalled: .recalled
        }
    }

    /// The memories this event touches (for the history index).
    public var touchedMemories: [ID128] {
        switch self {
        case .gated(let g): g.kept ? [g.memory] : []
        case .encoded(let e): [e.memory]
        case .reinforced(let e): [e.memory]
        case .weakened(let e): [e.memory]
        case .superseded(let e): [e.old, e.new]
        case .flagged(let e): e.related.isZero ? [e.memory] : [e.memory, e.related]
        case .consolidated(let e): [e.memory] + e.sources
        case .archived(let e): [e.memory]
        case .pruned(let e): [e.memory]
        case .recalled(let e): e.items.map(\.memory)
        case .feedback(let f): [f.memory]
        default: []
        }
    }
}
