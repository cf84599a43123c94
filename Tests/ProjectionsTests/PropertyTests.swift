import Foundation
import Journal
import Testing
import Workloads
import Projections

/// Properties over a long seeded random event sequence (several users, every event kind).
@Suite struct PropertyTests {
    /// Rebuild from empty equals the incrementally maintained state at every prefix, and the
    /// invariants hold after every event.
    /// With `contextual`, kept memories are indexed after their date and the observation before them.
    @Test(arguments: [false, true]) func rebuildEqualsIncrementalAtEveryPrefix(contextual: Bool) throws {
        let h = try Harness()
        defer { h.close() }
        var gen = MemoryEventGenerator(seed: 7, users: 3, erasureRate: 0.002)
        gen.contextual = contextual
        let reference = InMemoryFold()
        var kinds = Set<MemoryEventType>()
        var last: [UInt8] = []
        for _ in 0..<1500 {
            let s = gen.next()
            let p = try h.append(s.user, s.event, id: s.id, time: s.time, causation: s.causation)
            kinds.insert(s.event.type)
            let r = try h.projections.catchUp(h.journal)
            #expect(r.anomalies == 0 && r.applied == 1, "position \(p): \(s.event.type)")
            let problems = try h.projections.read { kv in try Invariants.check(kv, user: s.user.key) }
            #expect(problems.isEmpty, "after position \(p) (\(s.event.type)): \(problems)")
            // The reference folds from empty, one event at a time, in memory: after i events it holds
            // exactly the rebuild of the i-event prefix.
            try reference.apply(try h.journal.read(from: p, limit: 1), journal: h.journal)
            last = try h.projections.stateHash()
            #expect(try reference.stateHash() == last, "prefix through \(p) differs")
        }
        #expect(kinds.count >= 14, "the sequence covers only \(kinds.map(\.description).sorted())")
        // A from-scratch fold of the whole journal, and one of a middle prefix.
        let whole = InMemoryFold()
        try ProjectionStore.foldJournal(h.journal, into: whole)
        #expect(try whole.stateHash() == last)
        // And a real rebuild into a new LMDB environment.
        let dir = h.dir.path + "/rebuilt"
        let report = try ProjectionStore.rebuild(journal: h.journal, directory: dir)
        #expect(report.stateHash == last)
        #expect(report.anomalies == 0)
    }

    /// Catch-up over a long backlog (read ahead on a second thread, transactions of many pages, user
    /// and observation records written once per transaction, erasures in the middle of one) reaches
    /// the state of the event-by-event reference fold, for several page sizes.
    @Test(arguments: [(97, false), (4096, false), (4096, true)]) func backlogCatchUpEqualsTheReference(pageSize: Int, contextual: Bool) throws {
        let h = try Harness()
        defer { h.close() }
        var gen = MemoryEventGenerator(seed: 23, users: 4, erasureRate: 0.004)
        gen.contextual = contextual
        var requests: [AppendRequest] = []
        var erasures = 0
        for _ in 0..<20_000 {
            let s = gen.next()
            if case .erasureRequest = s.event { erasures += 1 }
            let data = EventData(id: s.id, type: s.event.type.rawValue, time: s.time, causation: s.causation, payload: s.event.payload())
            requests.append(AppendRequest(stream: s.user.stream, events: [data]))
        }
        #expect(erasures >= 2, "the sequence should erase users mid-backlog (got \(erasures))")
        for chunk in stride(from: 0, to: requests.count, by: 1000) {
            _ = try h.journal.appendBlocking(Array(requests[chunk..<min(chunk + 1000, requests.count)]))
        }
        let reference = InMemoryFold()
        try ProjectionStore.foldJournal(h.journal, into: reference)
        let r = try h.projections.catchUp(h.journal, pageSize: pageSize)
        #expect(r.applied + r.skipped + r.anomalies == 20_000)
        #expect(r.anomalies == 0)
        #expect(try h.projections.stateHash() == reference.stateHash())
        for u in gen.users {
            let problems = try h.projections.read { kv in try Invariants.check(kv, user: u.key) }
            #expect(problems.isEmpty, "\(u): \(problems)")
        }
    }

    struct Snapshot {
        var user: UserRef
        var position: Position
        var time: Int64
        var tiers: TierListing
        var candidates: [Candidate]
        var query: CandidateQuery
    }

    /// An as-of read at position p (or at the time of p) answers exactly what the live store answered then.
    @Test func asOfAnswersEqualTheLiveAnswersOfThen() throws {
        let h = try Harness()
        defer { h.close() }
        var gen = MemoryEventGenerator(seed: 11, users: 2, erasureRate: 0)
        gen.contextual = true
        var snapshots: [Snapshot] = []
        var rng = SplitMix64(seed: 3)
        for i in 0..<500 {
            let s = gen.next()
            let p = try h.append(s.user, s.event, id: s.id, time: s.time, causation: s.causation)
            try h.projections.catchUp(h.journal)
            if i % 25 == 24 {
                for u in gen.users {
                    guard try h.projections.read({ kv in try UserReader(kv: kv, user: u.key).userRecord() }) != nil else { continue }
                    let q = CandidateQuery(
                        text: "cooking dumplings in Lisbon with my sister", vector: gen.randomVector(&rng), at: s.time + 3_600_000_000, perList: 10)
                    let live = try h.projections.read { kv in try UserReader(kv: kv, user: u.key).tiers(at: q.at, name: u.description) }
                    let c = try h.projections.candidates(u, q)
                    let slow = try h.projections.read { kv in try UserReader(kv: kv, user: u.key).candidates(q, name: u.description) }
                    #expect(c == slow, "in-memory index and store disagree at \(p)")
                    snapshots.append(Snapshot(user: u, position: p, time: s.time, tiers: live, candidates: c, query: q))
                }
            }
        }
        #expect(snapshots.count >= 30)
        #expect(snapshots.filter { !$0.candidates.isEmpty }.count >= snapshots.count / 2)
        for snap in snapshots {
            // As of a time means every event up to that time: equal to the position snapshot only when
            // the user's next event is later (events of one decision share its time).
            let next = try h.journal.read(stream: snap.user.key, fromRevision: 0, limit: 100_000).first { $0.position > snap.position }
            let times = next.map { $0.header.eventTime > snap.time } ?? true ? [AsOf.time(snap.time)] : []
            for asOf in [AsOf.position(snap.position)] + times {
                let kv = try asOf.fold(snap.user, journal: h.journal)
                let r = UserReader(kv: kv, user: snap.user.key)
                #expect(try r.tiers(at: snap.query.at, name: snap.user.description) == snap.tiers, "\(asOf) tiers of \(snap.user) at \(snap.position)")
                #expect(try r.candidates(snap.query, name: snap.user.description) == snap.candidates, "\(asOf) candidates")
            }
        }
    }

    /// Two users with the same words and the same vectors: nothing of one is reachable through the other.
    @Test func usersAreIsolated() throws {
        let h = try Harness()
        defer { h.close() }
        let a = try UserRef(tenant: "t", user: "a"), b = try UserRef(tenant: "t", user: "b")
        let v = QuantizedVector(normalizing: [0.5, 0.5, 0.1, 0.2])
        var memories: [UserRef: ID128] = [:]
        for (i, u) in [a, b].enumerated() {
            let obs = ID128(high: 1, low: UInt64(i + 1))
            try h.append(u, .observation(.init(text: "My passport number is in the blue folder", sourceID: "s\(i)")), id: obs, time: t0)
            let mem = ID128(high: 2, low: UInt64(i + 1))
            try h.append(u, .gated(.init(decision: .baseline, observation: obs, kept: true, memory: mem, vector: v)), id: ID128(high: 3, low: UInt64(i + 1)), time: t0)
            memories[u] = mem
        }
        try h.projections.catchUp(h.journal)
        for (u, other) in [(a, b), (b, a)] {
            let q = CandidateQuery(text: "passport blue folder", vector: v, at: t0)
            let c = try h.projections.candidates(u, q)
            #expect(c.map(\.memory) == [memories[u]!])
            let (m, p, hist, slow) = try h.projections.read { kv throws in
                let r = UserReader(kv: kv, user: u.key)
                return (
                    try r.memory(memories[other]!, at: t0), try r.provenance(memories[other]!), try r.history(memories[other]!),
                    try r.candidates(q, name: u.description)
                )
            }
            #expect(m == nil && p == nil && hist.isEmpty)
            #expect(slow.map(\.memory) == [memories[u]!])
            let asOf = try AsOf.position(.max).fold(u, journal: h.journal)
            #expect(try UserReader(kv: asOf, user: u.key).memory(memories[other]!, at: t0) == nil)
        }
    }
}

extension MemoryEventGenerator {
    func randomVector(_ rng: inout SplitMix64) -> QuantizedVector {
        QuantizedVector(normalizing: (0..<dimension).map { _ in Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) })
    }
}
