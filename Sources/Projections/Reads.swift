import Journal

/// A memory as a reader sees it at a moment: the record plus values computed for that moment.
public struct MemoryView: Sendable, Equatable {
    public var record: MemoryRecord
    /// The event time (µs) the computed values are for.
    public var at: Int64
    public var strength: Double
    public var decayPerDay: Double
}

/// Where a memory came from: its direct sources, down to observations and the app's source ids.
public struct ProvenanceNode: Sendable, Equatable {
    public enum Kind: String, Sendable { case memory, observation }
    public var kind: Kind
    public var id: ID128
    public var text: String
    /// For observations: the app's source id, session, speaker, event time.
    public var sourceID: String = ""
    public var session: String = ""
    public var speaker: String = ""
    public var time: Int64 = 0
    public var tier: Tier? = nil
    public var children: [ProvenanceNode] = []
}

public struct Provenance: Sendable, Equatable {
    public var root: ProvenanceNode
    /// Memories derived from this one (consolidations), transitively.
    public var derived: [ID128]
    /// The observations the memory stands on, and their app source ids.
    public var observations: [EventID]
    public var sourceIDs: [String]
}

/// One entry of a user's tier listing.
public struct TierListing: Sendable, Equatable {
    public var sensory: [ObservationRecord] = []
    public var memories: [Tier: [MemoryView]] = [:]
    public var user: UserRecord
}

/// Reads over any ``KVReading`` (the live LMDB store or an as-of fold), scoped to one user.
public struct UserReader<KV: KVReading> {
    public let kv: KV
    public let user: ID128

    public init(kv: KV, user: ID128) { self.kv = kv; self.user = user }

    public func userRecord() throws -> UserRecord? {
        try kv.get(.users, Keys.user(user)).map { try UserRecord(decoding: $0) }
    }

    /// The user's record; throws for an unknown or erased user.
    func liveUser(_ name: String) throws -> UserRecord {
        guard let r = try userRecord() else { throw ProjectionError.notFound("user \(name) has no events") }
        if r.erased { throw ProjectionError.erased("user \(name) was erased at position \(r.erasedAt)") }
        return r
    }

    public func memoryRecord(_ id: ID128) throws -> MemoryRecord? {
        try kv.get(.memories, Keys.pair(user, id)).map { try MemoryRecord(decoding: $0) }
    }

    public func memory(_ id: ID128, at time: Int64) throws -> MemoryView? {
        try memoryRecord(id).map { view($0, at: time) }
    }

    func view(_ m: MemoryRecord, at time: Int64) -> MemoryView {
        MemoryView(record: m, at: time, strength: m.strength(at: time), decayPerDay: m.decayPerDay)
    }

    /// The vector of the memory in `slot`, if it has one.
    public func vector(slot: UInt32) throws -> QuantizedVector? {
        try kv.get(.slots, Keys.slot(user, slot)).flatMap { try IndexEntry(decoding: $0).vector }
    }

    public func observation(_ id: EventID) throws -> ObservationRecord? {
        try kv.get(.observations, Keys.pair(user, id)).map { try ObservationRecord(decoding: $0) }
    }

    public func recall(_ id: EventID) throws -> RecallRecord? {
        try kv.get(.recalls, Keys.pair(user, id)).map { try RecallRecord(decoding: $0) }
    }

    /// Positions of every event that touched `memory`, oldest first, with their event types.
    public func history(_ memory: ID128) throws -> [(position: Position, type: UInt16)] {
        var out: [(Position, UInt16)] = []
        try kv.scan(.history, prefix: Keys.pair(user, memory)) { k, v in
            guard k.count == 40, v.count == 2 else { throw ProjectionError.corrupt("history entry of \(k.count)/\(v.count) bytes") }
            out.append((k.withUnsafeBytes { $0.be(32, UInt64.self) }, UInt16(v[0]) | UInt16(v[1]) << 8))
            return true
        }
        return out
    }

    /// Memories derived from `source` (a memory or an observation), direct only.
    public func derived(from source: ID128) throws -> [ID128] {
        try kv.keys(.provenance, prefix: Keys.pair(user, source)).map { ID128(bytes: Array($0[32..<48])) }
    }

    public func provenance(_ id: ID128) throws -> Provenance? {
        guard let m = try memoryRecord(id) else { return nil }
        var seen = Set<ID128>()
        func node(_ m: MemoryRecord, depth: Int) throws -> ProvenanceNode {
            var n = ProvenanceNode(kind: .memory, id: m.id, text: m.text, time: m.createdAt, tier: m.tier)
            n.session = m.session
            n.speaker = m.speaker
            guard depth < 64 else { return n }
            for s in m.sources where seen.insert(s).inserted {
                if let child = try memoryRecord(s) {
                    n.children.append(try node(child, depth: depth + 1))
                } else if let o = try observation(s) {
                    n.children.append(
                        ProvenanceNode(kind: .observation, id: o.id, text: o.text, sourceID: o.sourceID, session: o.session, speaker: o.speaker, time: o.time))
                } else {
                    throw ProjectionError.corrupt("memory \(m.id) names source \(s), which is neither a memory nor an observation")
                }
            }
            return n
        }
        var derivedAll: [ID128] = []
        var frontier = [id], visited: Set<ID128> = [id]
        while let next = frontier.popLast() {
            for d in try derived(from: next) where visited.insert(d).inserted {
                derivedAll.append(d)
                frontier.append(d)
            }
        }
        return Provenance(root: try node(m, depth: 0), derived: derivedAll.sorted(), observations: m.observations, sourceIDs: m.sourceIDs)
    }

    /// Every memory and pending observation of the user, by tier. Memories in slot (creation) order.
    public func tiers(at time: Int64, name: String) throws -> TierListing {
        var listing = TierListing(user: try liveUser(name))
        try kv.scan(.observations, prefix: Keys.user(user)) { _, v in
            let o = try ObservationRecord(decoding: v)
            if o.status == .pending { listing.sensory.append(o) }
            return true
        }
        try kv.scan(.slots, prefix: Keys.user(user)) { _, v in
            let id = try IndexEntry(decoding: v).memory
            guard let m = try memoryRecord(id) else { throw ProjectionError.corrupt("slot names a missing memory \(id)") }
            listing.memories[m.tier, default: []].append(view(m, at: time))
            return true
        }
        return listing
    }
}

extension Array where Element == UInt8 {
    func be<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
        withUnsafeBytes { $0.be(offset, T.self) }
    }
}
