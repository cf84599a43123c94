import Foundation
import Journal
import Testing
import Projections

/// Golden scenarios: hand-written event files in Fixtures/scenarios with the projections expected
/// after each prefix (`expect_*` lines). Each expectation is checked on the live store (incremental
/// fold) and on an as-of fold of the user's stream at that point, and the invariants after every event.
@Suite struct ScenarioTests {
    static let files = ["knowledge-update", "consolidation", "decay-reinforcement", "archival", "erasure"]

    @Test(arguments: files)
    func scenario(_ name: String) throws {
        let lines = try String(contentsOfFile: fixture("scenarios/\(name).jsonl"), encoding: .utf8).split(separator: "\n")
        let h = try Harness()
        defer { h.close() }
        var lastTime: [String: Int64] = [:]
        var expectations = 0
        for (n, line) in lines.enumerated() where !line.hasPrefix("#") && !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let at = "\(name).jsonl:\(n + 1)"
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(at): not a JSON object")
            let kind = try #require(obj["event"] as? String, "\(at): no event")
            let userName = try #require(obj["user"] as? String, "\(at): no user")
            let user = try UserRef(tenant: "fixtures", user: userName)
            if kind.hasPrefix("expect") {
                try h.projections.catchUp(h.journal)
                let time = try obj["at"].map { try parseTime($0, at) } ?? lastTime[userName] ?? t0
                let end = try h.journal.stats().lastPosition
                let asOf = try AsOf.position(end).fold(user, journal: h.journal)
                try h.projections.read { kv in try check(kind, obj, user, UserReader(kv: kv, user: user.key), time, "\(at) (live)") }
                try check(kind, obj, user, UserReader(kv: asOf, user: user.key), time, "\(at) (as-of)")
                if kind == "expect_candidates" {
                    try checkCandidates(obj, user, h.projections, time, at)
                }
                expectations += 1
                continue
            }
            let time = try parseTime(try #require(obj["at"], "\(at): no time"), at)
            lastTime[userName] = time
            let event = try parseEvent(kind, obj, at)
            let id = named((obj["id"] as? String) ?? "\(name)-line-\(n + 1)")
            let cause = (obj["cause"] as? String).map(named) ?? .zero
            try h.append(user, event, id: id, time: time, causation: cause)
            let report = try h.projections.catchUp(h.journal)
            let anomalies = try h.projections.anomalies()
            #expect(report.anomalies == 0, "\(at): \(anomalies)")
            let problems = try h.projections.read { kv in try Invariants.check(kv, user: user.key) }
            #expect(problems.isEmpty, "\(at): \(problems)")
        }
        #expect(expectations >= 3, "\(name) checks too little")
        #expect(try h.projections.anomalies().isEmpty)
    }

    func check(_ kind: String, _ o: [String: Any], _ user: UserRef, _ r: UserReader<some KVReading>, _ time: Int64, _ at: String) throws {
        switch kind {
        case "expect_memory":
            let name = try #require(o["memory"] as? String)
            let v = try #require(try r.memory(named(name), at: time), "\(at): memory \(name) missing")
            let m = v.record
            if let t = o["tier"] as? String { #expect(m.tier.description == t, "\(at): tier") }
            if let s = o["strength"] as? Double { #expect(abs(v.strength - s) < 5e-4, "\(at): strength \(v.strength), expected \(s)") }
            if let valid = o["valid"] as? Bool { #expect(m.isValid == valid, "\(at): valid") }
            if let s = o["superseded_by"] as? String { #expect(m.supersededBy == named(s), "\(at): superseded_by") }
            if let s = o["supersedes"] as? String { #expect(m.supersedes == named(s), "\(at): supersedes") }
            if let c = o["recall_count"] as? Int { #expect(m.recallCount == UInt64(c), "\(at): recall count \(m.recallCount)") }
            if let obs = o["observations"] as? [String] { #expect(m.observations == obs.map(named).sorted(), "\(at): observations") }
            if let ids = o["source_ids"] as? [String] { #expect(m.sourceIDs == ids, "\(at): source ids \(m.sourceIDs)") }
            if let c = o["consolidated_into"] as? String { #expect(m.consolidatedInto == named(c), "\(at): consolidated into") }
            if let p = o["pruned"] as? Bool { #expect(m.pruned == p, "\(at): pruned") }
            if let text = o["text"] as? String { #expect(m.text == text, "\(at): text") }
            if let h = o["helped"] as? Int { #expect(m.helped == UInt64(h), "\(at): helped") }
            if let c = o["corrected"] as? Int { #expect(m.corrected == UInt64(c), "\(at): corrected") }
            if let f = o["flags"] as? [String] { #expect(m.flags.count == f.count && zip(m.flags, f).allSatisfy { $0.hasPrefix($1) }, "\(at): flags \(m.flags)") }
            if let d = o["decay_per_day"] as? Double { #expect(abs(v.decayPerDay - d) < 5e-4, "\(at): decay per day \(v.decayPerDay)") }
        case "expect_tiers":
            let listing = try r.tiers(at: time, name: user.description)
            for tier in Tier.allCases {
                guard let want = o[tier.description] as? [String] else { continue }
                let got: Set<ID128> = tier == .sensory ? Set(listing.sensory.map(\.id)) : Set((listing.memories[tier] ?? []).map(\.record.id))
                #expect(got == Set(want.map(named)), "\(at): tier \(tier) has \(got.count) entries, expected \(want)")
            }
        case "expect_provenance":
            let name = try #require(o["memory"] as? String)
            let p = try #require(try r.provenance(named(name)), "\(at): no provenance for \(name)")
            if let obs = o["observations"] as? [String] { #expect(p.observations == obs.map(named).sorted(), "\(at): observations") }
            if let ids = o["source_ids"] as? [String] { #expect(p.sourceIDs == ids, "\(at): source ids") }
            if let d = o["derived"] as? [String] { #expect(p.derived == d.map(named).sorted(), "\(at): derived") }
            if let leaves = o["leaves"] as? Int { #expect(countLeaves(p.root) == leaves, "\(at): leaves") }
        case "expect_history":
            let name = try #require(o["memory"] as? String)
            let want = try #require(o["events"] as? [String])
            let got = try r.history(named(name)).map { MemoryEventType(rawValue: $0.type)?.description ?? "?" }
            #expect(got == want, "\(at): history \(got)")
        case "expect_erased":
            #expect(throws: ProjectionError.self, "\(at): erased user readable") { try r.tiers(at: time, name: user.description) }
            #expect(try r.userRecord()?.erased == true, "\(at): user record not erased")
        case "expect_candidates":
            let want = try #require(o["top"] as? [String])
            let got = try r.candidates(CandidateQuery(text: try #require(o["query"] as? String), vector: nil, at: time), name: user.description)
            #expect(Array(got.prefix(want.count).map(\.memory)) == want.map(named), "\(at): candidates \(got.map(\.view.record.text))")
        default:
            Issue.record("\(at): unknown expectation \(kind)")
        }
    }

    func checkCandidates(_ o: [String: Any], _ user: UserRef, _ p: ProjectionStore, _ time: Int64, _ at: String) throws {
        let q = CandidateQuery(text: o["query"] as! String, vector: nil, at: time)
        let fast = try p.candidates(user, q)
        let slow = try p.read { kv in try UserReader(kv: kv, user: user.key).candidates(q, name: user.description) }
        #expect(fast == slow, "\(at): in-memory index and store disagree")
    }

    func countLeaves(_ n: ProvenanceNode) -> Int { n.children.isEmpty ? 1 : n.children.map(countLeaves).reduce(0, +) }
}

func parseTime(_ v: Any, _ at: String) throws -> Int64 {
    let s = try #require(v as? String, "\(at): time must be an ISO 8601 string")
    let f = ISO8601DateFormatter()
    let d = try #require(f.date(from: s), "\(at): bad time \(s)")
    return Int64(d.timeIntervalSince1970) * 1_000_000
}

func parseEvent(_ kind: String, _ o: [String: Any], _ at: String) throws -> MemoryEvent {
    let d = MemoryEvent.Decision.baseline
    func s(_ k: String) -> String { o[k] as? String ?? "" }
    func id(_ k: String) throws -> ID128 { named(try #require(o[k] as? String, "\(at): \(k) missing")) }
    func fx(_ k: String, _ def: Double) -> Fixed { Fixed((o[k] as? Double) ?? def) }
    func days(_ k: String, _ def: Double) -> UInt64 { UInt64(((o[k] as? Double) ?? def) * 86_400) }
    func vector() -> QuantizedVector? { (o["vector"] as? [Double]).map { QuantizedVector(normalizing: $0.map(Float.init)) } }
    func tier(_ k: String) throws -> Tier { try #require(Tier(name: s(k)), "\(at): tier \(s(k))") }
    func type() throws -> MemoryType { try #require(MemoryType(name: o["type"] as? String ?? "fact"), "\(at): type") }
    switch kind {
    case "observation":
        return .observation(.init(text: s("text"), session: s("session"), speaker: s("speaker"), role: s("role"), sourceID: s("source_id")))
    case "gated":
        let kept = o["kept"] as? Bool ?? true
        return .gated(
            .init(
                decision: d, observation: try id("observation"), kept: kept, memory: kept ? try id("memory") : .zero,
                tier: kept ? try tier("tier") : .episodic, type: try type(), emotionalWeight: fx("emotional", 0), confidence: fx("confidence", 1),
                strength: fx("strength", 1), stability: days("stability_days", 30), vector: vector(),
                context: o["context"] == nil ? .zero : try id("context"), dated: o["dated"] as? Bool ?? false))
    case "encoded": return .encoded(.init(decision: d, memory: try id("memory"), tier: try tier("tier")))
    case "reinforced": return .reinforced(.init(decision: d, memory: try id("memory"), boost: fx("boost", 0.2), stability: days("stability_days", 60)))
    case "weakened": return .weakened(.init(decision: d, memory: try id("memory"), factor: fx("factor", 0.5), stability: days("stability_days", 10)))
    case "superseded": return .superseded(.init(decision: d, old: try id("old"), new: try id("new")))
    case "flagged":
        return .flagged(.init(decision: d, memory: try id("memory"), related: o["related"] == nil ? .zero : try id("related"), reason: s("reason")))
    case "consolidated":
        let sources = try #require(o["sources"] as? [String], "\(at): sources").map(named)
        return .consolidated(
            .init(
                decision: d, memory: try id("memory"), text: s("text"), type: try type(), confidence: fx("confidence", 0.9),
                strength: fx("strength", 1), stability: days("stability_days", 180), sources: sources, vector: vector()))
    case "archived": return .archived(.init(decision: d, memory: try id("memory"), into: o["into"] == nil ? .zero : try id("into")))
    case "pruned": return .pruned(.init(decision: d, memory: try id("memory"), strength: fx("strength", 0.01)))
    case "recall_request": return .recallRequest(.init(query: s("query"), k: UInt32(o["k"] as? Int ?? 5)))
    case "recalled":
        let items = try #require(o["items"] as? [[Any]], "\(at): items").map { pair in
            MemoryEvent.Recalled.Item(memory: named(pair[0] as! String), weight: Fixed(pair[1] as! Double))
        }
        return .recalled(.init(decision: d, request: try id("request"), items: items))
    case "feedback":
        return .feedback(.init(recall: try id("recall"), memory: try id("memory"), kind: try #require(FeedbackKind(name: s("kind")), "\(at): kind")))
    case "sleep_request": return .sleepRequest(.init(reason: s("reason")))
    case "erasure_request": return .erasureRequest(.init(reason: s("reason")))
    default: throw ProjectionError.invalidArgument("\(at): unknown event \(kind)")
    }
}

/// Events the fold must refuse (SPEC.md §11.5): each becomes exactly one anomaly naming why, and
/// writes nothing else — the user's state hash (every per-user table) is unchanged by it.
@Suite struct ContextIndexTests {
    /// A contextual gate decision indexes the memory after its date and the turn it names as context,
    /// so a question in the words of that turn finds the answer; a plain one indexes the text alone.
    @Test func contextualMemoriesAreIndexedWithTheirContextAndDate() throws {
        let h = try Harness()
        defer { h.close() }
        let user = try UserRef(tenant: "fixtures", user: "ana")
        let lines = [
            #"{"event":"observation","id":"q","text":"What did you think of the pottery class?","speaker":"Ben","session":"s1"}"#,
            #"{"event":"observation","id":"a","text":"Loved it, I'm going back next week!","speaker":"Ana","session":"s1"}"#,
            #"{"event":"gated","id":"ga","observation":"a","memory":"ma","tier":"working","context":"q","dated":true}"#,
            #"{"event":"observation","id":"b","text":"Loved it, I'm going back next week!","speaker":"Ana","session":"s1"}"#,
            #"{"event":"gated","id":"gb","observation":"b","memory":"mb","tier":"working"}"#,
        ]
        var time = t0
        for line in lines {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            time += 1_000_000
            try h.append(user, try parseEvent(o["event"] as! String, o, line), id: named(o["id"] as! String), time: time)
        }
        #expect(try h.projections.catchUp(h.journal).anomalies == 0)
        let ma = try #require(try h.projections.read { kv in try UserReader(kv: kv, user: user.key).memory(named("ma"), at: time) })
        #expect(ma.record.indexContext == "1 January 2026 What did you think of the pottery class?")
        #expect(Fold.indexedText(ma.record) == "1 January 2026 What did you think of the pottery class? Ana: Loved it, I'm going back next week!")
        for query in ["pottery class", "January 2026"] {
            let c = try h.projections.candidates(user, CandidateQuery(text: query, vector: nil, at: time))
            #expect(c.map(\.memory) == [named("ma")], "\(query): \(c.map(\.memory))")
        }
        let problems = try h.projections.read { kv in try Invariants.check(kv, user: user.key) }
        #expect(problems.isEmpty, "\(problems)")
        let rebuilt = try ProjectionStore.rebuild(journal: h.journal, directory: h.dir.path + "/rebuilt")
        #expect(rebuilt.stateHash == (try h.projections.stateHash()))
    }
}

@Suite struct RefusedEventTests {
    static let base: [String] = [
        #"{"event":"observation","id":"o1","text":"I keep bees in the garden.","speaker":"Ana"}"#,
        #"{"event":"gated","id":"g1","observation":"o1","memory":"m1","tier":"episodic","vector":[1,0,0,0]}"#,
        #"{"event":"observation","id":"o2","text":"The hives are painted blue.","speaker":"Ana"}"#,
        #"{"event":"gated","id":"g2","observation":"o2","memory":"m2","tier":"episodic","vector":[0,1,0,0]}"#,
        #"{"event":"observation","id":"o3","text":"A third observation, still pending."}"#,
        #"{"event":"recall_request","id":"r1","query":"bees"}"#,
        #"{"event":"recalled","id":"rd1","request":"r1","items":[["m1",0.9]]}"#,
        #"{"event":"superseded","id":"s1","old":"m1","new":"m2"}"#,
    ]
    static let refused: [(line: String, reason: String)] = [
        (#"{"event":"gated","id":"x1","observation":"nobody","memory":"m9","tier":"episodic"}"#, "unknown observation"),
        (#"{"event":"gated","id":"x2","observation":"o1","memory":"m9","tier":"episodic"}"#, "already kept"),
        (#"{"event":"gated","id":"x3","observation":"o3","memory":"m1","tier":"episodic","vector":[0,0,1,0]}"#, "already exists"),
        (#"{"event":"gated","id":"x4","observation":"o3","memory":"m9","tier":"episodic","vector":[0,0,1,0,1]}"#, "dimension"),
        (#"{"event":"consolidated","id":"x5","memory":"m9","text":"bees","sources":["m1","nothing"]}"#, "unknown memory"),
        (#"{"event":"consolidated","id":"x6","memory":"m2","text":"bees","sources":["m1"]}"#, "already exists"),
        (#"{"event":"feedback","id":"x7","recall":"r1","memory":"m2","kind":"helped"}"#, "was not surfaced"),
        (#"{"event":"encoded","id":"x8","memory":"nothing","tier":"semantic"}"#, "unknown memory"),
        (#"{"event":"superseded","id":"x9","old":"m1","new":"m2"}"#, "already superseded"),
        (#"{"event":"recalled","id":"x10","request":"r1","items":[["m2",0.5]]}"#, "already answered"),
        (#"{"event":"gated","id":"x11","observation":"o3","memory":"m9","tier":"episodic","context":"nobody"}"#, "is not an earlier observation"),
        (#"{"event":"gated","id":"x12","observation":"o3","memory":"m9","tier":"episodic","context":"o3"}"#, "is not an earlier observation"),
    ]

    @Test func refusedEventsWriteNothing() throws {
        let h = try Harness()
        defer { h.close() }
        let user = try UserRef(tenant: "fixtures", user: "ana")
        var time = t0
        func append(_ line: String) throws {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            time += 1_000_000
            try h.append(user, try parseEvent(o["event"] as! String, o, line), id: named(o["id"] as! String), time: time)
        }
        for line in Self.base { try append(line) }
        #expect(try h.projections.catchUp(h.journal).anomalies == 0)
        #expect(try h.projections.anomalies().isEmpty)
        for (n, r) in Self.refused.enumerated() {
            let before = try h.projections.userStateHash(user.key)
            try append(r.line)
            let report = try h.projections.catchUp(h.journal)
            #expect(report.anomalies == 1 && report.applied == 0, "\(r.line)")
            #expect(try h.projections.userStateHash(user.key) == before, "\(r.line) changed the user's state")
            let anomalies = try h.projections.anomalies()
            #expect(anomalies.count == n + 1)
            #expect(anomalies.last?.reason.contains(r.reason) == true, "\(r.line): \(anomalies.last?.reason ?? "none")")
        }
        let problems = try h.projections.read { kv in try Invariants.check(kv, user: user.key) }
        #expect(problems.isEmpty, "\(problems)")
    }
}
