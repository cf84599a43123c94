import Journal

/// Structural invariants of one user's projection state (ARCHITECTURE.md, "Projections"). Checked
/// after every applied event in tests and by `psm verify --projections`; a violation names the entry.
public enum Invariants {
    public static func check(_ kv: some KVReading, user u: ID128) throws -> [String] {
        var problems: [String] = []
        guard let ub = try kv.get(.users, Keys.user(u)) else { return [] }
        let user = try UserRecord(decoding: ub)
        let prefix = Keys.user(u)
        if user.erased {
            for t in Table.allCases where t != .meta && t != .anomalies && t != .users {
                if !(try kv.keys(t, prefix: prefix).isEmpty) { problems.append("erased user \(user.user) still has \(t) entries") }
            }
            return problems
        }
        let reader = UserReader(kv: kv, user: u)
        var memories: [ID128: MemoryRecord] = [:]
        try kv.scan(.memories, prefix: prefix) { _, v in
            let m = try MemoryRecord(decoding: v)
            memories[m.id] = m
            return true
        }
        if memories.count != Int(user.nextSlot) { problems.append("\(memories.count) memories but next slot \(user.nextSlot)") }
        if user.indexedDocuments != UInt64(user.nextSlot) { problems.append("indexed documents \(user.indexedDocuments) vs slots \(user.nextSlot)") }
        var length: UInt64 = 0
        var bySlot: [UInt32: ID128] = [:]
        for (id, m) in memories {
            bySlot[m.slot] = id
            if m.tier == .sensory { problems.append("memory \(id) in the sensory tier") }
            if !(0...Fixed.scale).contains(m.anchorStrength.raw) { problems.append("memory \(id) strength \(m.anchorStrength)") }
            if !m.supersededBy.isZero {
                if memories[m.supersededBy]?.supersedes != id { problems.append("memory \(id) superseded by \(m.supersededBy), which does not say so") }
                if m.validTo == 0 { problems.append("memory \(id) superseded but still valid") }
            } else if m.validTo != 0 {
                problems.append("memory \(id) has an end of validity but no successor")
            }
            if !m.supersedes.isZero, memories[m.supersedes]?.supersededBy != id { problems.append("memory \(id) supersedes \(m.supersedes), which does not say so") }
            if !m.consolidatedInto.isZero, memories[m.consolidatedInto] == nil { problems.append("memory \(id) consolidated into a missing memory") }
            if (m.tier == .archival) != (m.archivedAt != 0) { problems.append("memory \(id) tier \(m.tier) with archivedAt \(m.archivedAt)") }
            for s in m.sources {
                if memories[s] == nil, try reader.observation(s) == nil { problems.append("memory \(id) source \(s) missing") }
                if try kv.get(.provenance, Keys.provenance(u, s, id)) == nil { problems.append("no provenance edge \(s) → \(id)") }
            }
            for o in m.observations where try reader.observation(o) == nil { problems.append("memory \(id) observation \(o) missing") }
            if m.observations != m.observations.sorted() { problems.append("memory \(id) observations not sorted") }
            let hist = try reader.history(id)
            if hist.isEmpty || hist[0].position != m.createdPosition { problems.append("memory \(id) history does not start at its creation") }
        }
        var slots: UInt32 = 0
        try kv.scan(.slots, prefix: prefix) { k, v in
            let slot = k.be(16, UInt32.self)
            guard slot == slots else {
                problems.append("slot \(slots) missing (next entry is slot \(slot))")
                return false
            }
            slots += 1
            let e = try IndexEntry(decoding: v)
            guard let m = bySlot[slot].flatMap({ memories[$0] }), m.id == e.memory else {
                problems.append("slot \(slot) names \(e.memory), memory says \(bySlot[slot].map { "\($0)" } ?? "none")")
                return true
            }
            length += UInt64(e.length)
            let analyzed = Fold.termCounts(Fold.indexedText(m))
            if e.length != analyzed.length || !e.terms.elementsEqual(analyzed.terms, by: { $0.term == $1.term && $0.tf == $1.tf }) {
                problems.append("slot \(slot): indexed terms differ from the analysis of memory \(m.id)'s text")
            }
            if let q = e.vector, q.values.count != Int(user.dimension) { problems.append("vector of slot \(slot) has dimension \(q.values.count)") }
            return true
        }
        if slots != user.nextSlot { problems.append("\(slots) index entries but next slot \(user.nextSlot)") }
        if length != user.indexedLength { problems.append("indexed length \(user.indexedLength), index entries total \(length)") }
        try kv.scan(.observations, prefix: prefix) { _, v in
            let o = try ObservationRecord(decoding: v)
            switch o.status {
            case .kept:
                if memories[o.memory]?.sources != [o.id] { problems.append("observation \(o.id) kept as \(o.memory), which does not name it") }
            case .pending, .dropped:
                if !o.memory.isZero { problems.append("observation \(o.id) is \(o.status) but names memory \(o.memory)") }
            }
            return true
        }
        return problems
    }
}
