import Engine
import Foundation
import Journal
import Projections

/// Request bodies of the HTTP API and arguments of the MCP tools (docs/openapi.json).
public enum Requests {
    public struct Observation: Codable, Sendable {
        public var text: String
        public var session: String?
        public var speaker: String?
        public var role: String?
        public var source_id: String?
        /// Event time (ISO 8601); default: the server's clock.
        public var at: String?
        /// Event id (32 hex digits) for exactly-once retries.
        public var id: String?
        public init(text: String, session: String? = nil, speaker: String? = nil, role: String? = nil, source_id: String? = nil, at: String? = nil, id: String? = nil) {
            self.text = text; self.session = session; self.speaker = speaker; self.role = role; self.source_id = source_id; self.at = at; self.id = id
        }
    }
    public struct Batch: Codable, Sendable {
        public var observations: [Observation]
        public init(observations: [Observation]) { self.observations = observations }
    }
    public struct Recall: Codable, Sendable {
        public var query: String
        public var k: Int?
        public var session: String?
        public var at: String?
        /// A journal position (as a string of digits) or an event time: answer as of then, write nothing.
        public var as_of: String?
        /// Answer now without journaling the recall.
        public var peek: Bool?
        public init(query: String, k: Int? = nil, session: String? = nil, at: String? = nil, as_of: String? = nil, peek: Bool? = nil) {
            self.query = query; self.k = k; self.session = session; self.at = at; self.as_of = as_of; self.peek = peek
        }
    }
    public struct Feedback: Codable, Sendable {
        public var recall: String
        public var memory: String
        /// helped, irrelevant or corrected.
        public var kind: String
        public var note: String?
        public var at: String?
        public init(recall: String, memory: String, kind: String, note: String? = nil, at: String? = nil) {
            self.recall = recall; self.memory = memory; self.kind = kind; self.note = note; self.at = at
        }
    }
    public struct Sleep: Codable, Sendable {
        public var at: String?
        public init(at: String? = nil) { self.at = at }
    }
    public struct Erase: Codable, Sendable {
        public var reason: String?
        public var at: String?
        public init(reason: String? = nil, at: String? = nil) { self.reason = reason; self.at = at }
    }
}

/// Limits the interfaces enforce before any work is done.
public struct Limits: Sendable {
    public var maxBodyBytes = 1 << 20
    public var maxBatch = 1000
    public var maxTextBytes = 64 * 1024
    public var maxQueryBytes = 4096
    public var maxK = 100
    public var maxConcurrentRequests = 64
    public var maxJournalPage = 1000
    public init() {}
}

/// The operations behind the HTTP API and the MCP tools: parsing and checking of requests into engine
/// calls, and the engine's answers into wire shapes. The caller has already authorised the user ref.
public final class MemoryService: Sendable {
    public let engine: Engine
    public let limits: Limits

    public init(engine: Engine, limits: Limits = Limits()) {
        self.engine = engine
        self.limits = limits
    }

    // MARK: Argument checks

    static func time(_ s: String?, _ field: String) throws -> Int64 {
        guard let s else { return WireTime.now() }
        guard let t = WireTime.parse(s) else { throw APIError.badRequest("\(field) \"\(s)\" is not an ISO 8601 time (e.g. 2026-03-01T12:00:00Z)") }
        return t
    }

    static func id(_ s: String, _ field: String) throws -> ID128 {
        guard let id = WireTime.id(s) else { throw APIError.badRequest("\(field) \"\(s.prefix(80))\" is not 32 hexadecimal digits") }
        return id
    }

    public static func asOf(_ s: String?) throws -> AsOf? {
        guard let s, !s.isEmpty else { return nil }
        if let p = UInt64(s) {
            guard p > 0 else { throw APIError.badRequest("as_of position must be at least 1, got 0") }
            return .position(p)
        }
        guard let t = WireTime.parse(s) else { throw APIError.badRequest("as_of \"\(s.prefix(80))\" is neither a journal position nor an ISO 8601 time") }
        return .time(t)
    }

    /// Runs a write at the caller's `at`, or else at the server's clock — but never before the user's
    /// last event time (event times of a user never go back, SPEC.md §11.1), and for a retry of a known
    /// event id at that event's original time, so the retry is recognised as exactly-once. A concurrent
    /// writer that got in first with a later time makes the clock-timed write retry with a fresh time.
    func timed<T>(_ user: UserRef, at: String?, id: EventID?, _ body: (Int64) async throws -> T) async throws -> T {
        if let at { return try await body(try Self.time(at, "at")) }
        for attempt in 0..<50 {
            if let id, let e = try engine.journal.event(id: id), e.header.streamID == user.key { return try await body(e.header.eventTime) }
            let last = (try? engine.userRecord(user))?.lastEventTime ?? 0
            do {
                return try await body(max(WireTime.now(), last))
            } catch EngineError.invalidArgument(let m) where m.contains("never go back") && attempt < 49 {
                continue
            } catch where id != nil && attempt < 49 && Self.isIDConflict(error) {
                // A retry raced the original request with the same id: look the id up again.
                continue
            }
        }
        throw APIError(409, "conflict", "user \(user.user): too many concurrent writers")
    }

    static func isIDConflict(_ error: any Error) -> Bool {
        if case JournalError.eventIDConflict = error { return true }
        if case EngineError.conflict(let m) = error, m.contains("already used") { return true }
        return false
    }

    func checkText(_ s: String, _ field: String, max: Int) throws {
        guard !s.isEmpty else { throw APIError.badRequest("\(field) must not be empty") }
        guard s.utf8.count <= max else { throw APIError(413, "too_large", "\(field) is \(s.utf8.count) bytes; the limit is \(max)") }
    }

    // MARK: Writes

    public func observe(_ user: UserRef, _ r: Requests.Observation) async throws -> ObserveJSON {
        try checkText(r.text, "text", max: limits.maxTextBytes)
        let o = MemoryEvent.Observation(text: r.text, session: r.session ?? "", speaker: r.speaker ?? "", role: r.role ?? "", sourceID: r.source_id ?? "")
        let id = try r.id.map { try Self.id($0, "id") }
        return ObserveJSON(try await timed(user, at: r.at, id: id) { t in try await engine.observe(user, o, at: t, id: id) })
    }

    /// Records a batch in order, one atomic append per observation. All are checked before the first is
    /// recorded; a failure part-way reports how many were recorded (a retry with the same ids is exactly-once).
    public func observeBatch(_ user: UserRef, _ b: Requests.Batch) async throws -> [ObserveJSON] {
        guard !b.observations.isEmpty else { throw APIError.badRequest("observations must not be empty") }
        guard b.observations.count <= limits.maxBatch else {
            throw APIError(413, "too_large", "batch of \(b.observations.count) observations; the limit is \(limits.maxBatch)")
        }
        for (i, o) in b.observations.enumerated() {
            do {
                try checkText(o.text, "text", max: limits.maxTextBytes)
                _ = try Self.time(o.at, "at")
                _ = try o.id.map { try Self.id($0, "id") }
            } catch let e as APIError {
                throw APIError(e.status, e.code, "observations[\(i)]: \(e.message)")
            }
        }
        var out: [ObserveJSON] = []
        for (i, o) in b.observations.enumerated() {
            do { out.append(try await observe(user, o)) } catch {
                let e = APIError.from(error)
                throw APIError(e.status, e.code, "observations[\(i)]: \(e.message) (\(i) recorded before it)")
            }
        }
        return out
    }

    public func recall(_ user: UserRef, _ r: Requests.Recall) async throws -> RecallJSON {
        try checkText(r.query, "query", max: limits.maxQueryBytes)
        let k = r.k ?? 5
        guard (1...limits.maxK).contains(k) else { throw APIError.badRequest("k must be 1...\(limits.maxK), got \(k)") }
        if let asOf = try Self.asOf(r.as_of) {
            let at = try r.at.map { try Self.time($0, "at") }
            return try await engine.withAsOf(user, asOf) { RecallJSON(try engine.recall(user, query: r.query, k: k, asOf: asOf, at: at), query: r.query) }
        }
        if r.peek == true {
            let t = try r.at.map { try Self.time($0, "at") } ?? max(WireTime.now(), (try? engine.userRecord(user))?.lastEventTime ?? 0)
            return RecallJSON(try engine.peek(user, query: r.query, k: k, at: t), query: r.query)
        }
        return RecallJSON(try await timed(user, at: r.at, id: nil) { t in try await engine.recall(user, query: r.query, k: k, at: t, session: r.session ?? "") }, query: r.query)
    }

    /// Whether a recall request writes (journals the recall) or only reads.
    public static func recallWrites(_ r: Requests.Recall) -> Bool { r.peek != true && (r.as_of ?? "").isEmpty }

    public func feedback(_ user: UserRef, _ r: Requests.Feedback) async throws -> FeedbackJSON {
        guard let kind = FeedbackKind(name: r.kind) else { throw APIError.badRequest("kind must be helped, irrelevant or corrected, got \"\(r.kind.prefix(40))\"") }
        if let note = r.note { guard note.utf8.count <= limits.maxTextBytes else { throw APIError(413, "too_large", "note is \(note.utf8.count) bytes; the limit is \(limits.maxTextBytes)") } }
        let m = try Self.id(r.memory, "memory"), recall = try Self.id(r.recall, "recall")
        let (p, time) = try await timed(user, at: r.at, id: nil) { t in (try await engine.feedback(user, recall: recall, memory: m, kind: kind, note: r.note ?? "", at: t), t) }
        let v = try engine.memory(user, m, at: time)
        return FeedbackJSON(position: p, memory: m.description, strength: (v.strength * 1e4).rounded() / 1e4, stability_s: v.record.stability)
    }

    public func sleep(_ user: UserRef, _ r: Requests.Sleep) async throws -> SleepJSON {
        _ = try engine.userRecord(user)
        let s = try await timed(user, at: r.at, id: nil) { t in try await engine.sleep(user, at: t) }
        return SleepJSON(user: user.user, position: s.position, decisions: Dictionary(uniqueKeysWithValues: s.decisions.map { ($0.key.description, $0.value) }))
    }

    public struct EraseJSON: Codable, Sendable { public var user: String; public var position: UInt64 }

    public func erase(_ user: UserRef, _ r: Requests.Erase) async throws -> EraseJSON {
        EraseJSON(user: user.user, position: try await timed(user, at: r.at, id: nil) { t in try await engine.erase(user, reason: r.reason ?? "", at: t) })
    }

    // MARK: Reads

    public func memory(_ user: UserRef, _ id: String, asOf: String?, at: String?) async throws -> MemoryJSON {
        let (m, point, t) = (try Self.id(id, "memory id"), try Self.asOf(asOf), try at.map { try Self.time($0, "at") })
        return try await engine.withAsOf(user, point) { MemoryJSON(try engine.memory(user, m, asOf: point, at: t)) }
    }

    public func history(_ user: UserRef, _ id: String) async throws -> [HistoryEntryJSON] {
        try await engine.historyOfRecord(user, try Self.id(id, "memory id")).map(HistoryEntryJSON.init)
    }

    public func provenance(_ user: UserRef, _ id: String, asOf: String?, proof: Bool = false) async throws -> ProvenanceJSON {
        let (m, point) = (try Self.id(id, "memory id"), try Self.asOf(asOf))
        let p = try await engine.withAsOf(user, point) { try engine.provenance(user, m, asOf: point) }
        var out = ProvenanceJSON(p)
        if proof { out.proofs = try await inclusionProofs(user, p.observations) }
        return out
    }

    /// Inclusion proofs of the observations' records in the user's tenant tree at its current size:
    /// the store's journal's, or on a cluster node the journal of record's (SPEC.md §15.4).
    public func inclusionProofs(_ user: UserRef, _ observations: [EventID]) async throws -> [InclusionProofJSON] {
        let (leaves, positions): ([[UInt8]], [Position])
        if let record = engine.record { (leaves, positions) = try await record.tenantLeaves(user.tenant) } else { (leaves, positions) = try engine.journal.tenantLeaves(user.tenant) }
        let root = hexBytes(Merkle.root(leaves[...]))
        var index: [Position: Int] = [:]
        for (i, p) in positions.enumerated() { index[p] = i }
        var out: [InclusionProofJSON] = []
        for o in observations {
            let e: StoredEvent?
            if let record = engine.record { e = try await record.committedEvent(o)?.event } else { e = try engine.journal.event(id: o) }
            guard let e, e.header.streamID == user.key, let i = index[e.position] else { continue }
            out.append(
                InclusionProofJSON(
                    observation: o.description, position: e.position, leaf_index: i, leaf_hash: hexBytes(leaves[i]), tree_size: leaves.count, root: root,
                    path: Merkle.inclusionProof(i, leaves[...]).map(hexBytes)))
        }
        return out
    }

    public func tiers(_ user: UserRef, asOf: String?, at: String?, limit: Int) async throws -> TiersJSON {
        guard (1...100_000).contains(limit) else { throw APIError.badRequest("limit must be 1...100000, got \(limit)") }
        let (point, t) = (try Self.asOf(asOf), try at.map { try Self.time($0, "at") })
        if point != nil {
            return try await engine.withAsOf(user, point) { TiersJSON(user, try engine.tiers(user, asOf: point, at: t), limit: limit) }
        }
        var out = TiersJSON(user, try engine.tiers(user, asOf: nil, at: t), limit: limit)
        out.state_hash = hexBytes(try engine.projections.userStateHash(user.key))
        return out
    }

    /// One export line per memory of every tier: the memory with all its metadata and its provenance tree.
    public struct ExportLine: Codable, Sendable { public var memory: MemoryJSON; public var provenance: ProvenanceJSON }

    public func export(_ user: UserRef) throws -> [ExportLine] {
        let listing = try engine.tiers(user)
        var out: [ExportLine] = []
        for t in Tier.allCases where t != .sensory {
            for v in listing.memories[t] ?? [] {
                out.append(ExportLine(memory: MemoryJSON(v), provenance: ProvenanceJSON(try engine.provenance(user, v.record.id))))
            }
        }
        return out
    }

    public struct JournalPageJSON: Codable, Sendable {
        public var events: [JournalEventJSON]
        /// The revision to pass as `from` for the next page, nil at the end of the stream.
        public var next: UInt64?
    }

    /// A page of the user's own journal stream, decoded, from revision `from`.
    public func journal(_ user: UserRef, from: UInt64, limit: Int) async throws -> JournalPageJSON {
        guard (1...limits.maxJournalPage).contains(limit) else { throw APIError.badRequest("limit must be 1...\(limits.maxJournalPage), got \(limit)") }
        // The page of the journal of record: the store's own, or PostgreSQL on a cluster node.
        let page: [StoredEvent]
        let payloadOf: (StoredEvent) throws -> [UInt8]
        if let record = engine.record {
            guard try await record.nextRevision(user.key) != nil else { throw APIError.notFound("user \(user.user) has no events") }
            let fetched = try await record.page(user.key, fromRevision: from, limit: limit + 1)
            page = fetched.events
            payloadOf = { e in
                guard let p = try fetched.readablePayload(of: e) else {
                    throw JournalError.keyUnavailable(position: e.position, stream: e.header.streamID, keyID: e.header.keyID)
                }
                return p
            }
        } else {
            guard try engine.journal.streamInfo(user.key) != nil else { throw APIError.notFound("user \(user.user) has no events") }
            page = try engine.journal.read(stream: user.key, fromRevision: from, limit: limit + 1)
            payloadOf = { e in try self.engine.journal.payload(of: e) }
        }
        let events = try page.prefix(limit).map { e -> JournalEventJSON in
            let payload = try payloadOf(e)
            let event = try MemoryEvent.decode(type: e.header.eventType, payload: payload)
            let d = event.flatMap(EventSummary.decision)
            return JournalEventJSON(
                position: e.position, revision: e.header.revision, event_id: e.header.eventID.description,
                causation: e.header.causationID.isZero ? nil : e.header.causationID.description, time: WireTime.format(e.header.eventTime),
                type: event?.type.description ?? String(format: "0x%04x", e.header.eventType), model: d.map { hexBytes($0.model) },
                input_digest: d.map { hexBytes($0.inputDigest) }, summary: event.map(EventSummary.text) ?? "", payload_hex: hexBytes(payload))
        }
        return JournalPageJSON(events: events, next: page.count > limit ? page[limit].header.revision : nil)
    }

    public struct ReplayJSON: Codable, Sendable {
        public var user: String
        public var commands, checked, divergent: Int
        public var first_divergence: Replayer.Divergence?
        public var model: String
    }

    /// Re-runs the user's decisions and compares them with the journal (SPEC.md §11.7), for this user
    /// only: from the store's journal, or on a cluster node from the user's stream in the journal of record.
    public func replayVerify(_ user: UserRef) async throws -> ReplayJSON {
        let scratch = NSTemporaryDirectory() + "psm-replay-\(getpid())-\(UUID().uuidString)"
        let r: Replayer.Report
        if let record = engine.record {
            let fetched = try await record.stream(user.key)
            guard !fetched.events.isEmpty else { throw APIError.notFound("user \(user.user) has no events") }
            r = try Replayer.verify(stream: fetched, user: user, decider: engine.decider, scratch: scratch)
        } else {
            guard try engine.journal.streamInfo(user.key) != nil else { throw APIError.notFound("user \(user.user) has no events") }
            r = try Replayer.verify(journal: engine.journal, decider: engine.decider, scratch: scratch, only: [user.key])
        }
        return ReplayJSON(user: user.user, commands: r.commands, checked: r.checked, divergent: r.divergent, first_divergence: r.first, model: hexBytes(engine.decider.modelID))
    }
}
