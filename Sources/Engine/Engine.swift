import Crypto
import Foundation
import Inference
import Journal
import Projections

public enum EngineError: Error, Sendable, CustomStringConvertible {
    case invalidArgument(String)
    case notFound(String)
    case conflict(String)

    public var description: String {
        switch self {
        case .invalidArgument(let m): "invalid argument: \(m)"
        case .notFound(let m): "not found: \(m)"
        case .conflict(let m): "conflict: \(m)"
        }
    }
}

/// The memory engine: what apps, auditors and operators use. It writes commands and the policy's
/// decisions to the journal (one stream per user, each command and its decisions in one atomic append)
/// and answers every read from the projections, current or as of a past position or time.
///
/// Thread-safe. Appends go through the journal's single writer thread; concurrent writers to one user
/// are ordered by the stream's expected revision and retried.
public final class Engine: @unchecked Sendable {
    public let directory: String
    public let journal: Journal
    public let encoder: Encoder?
    public let policy: any MemoryPolicy
    /// Makes every decision (shared with the replayer).
    public let decider: Decider
    private let projectionsLock = NSLock()
    private var _projections: ProjectionStore
    private var _record: (any RecordJournal)?

    /// The journal of record when it is not `journal` (a cluster node, SPEC.md §15.5); set once,
    /// before the engine is used. Then `journal` (the store's LMDB journal) stays empty: as-of reads
    /// and history go through ``withAsOf(_:_:_:)`` and ``historyOfRecord(_:_:)``, and what else reads
    /// the journal itself (rebuild) is refused.
    public var record: (any RecordJournal)? {
        get { projectionsLock.withLock { _record } }
        set { projectionsLock.withLock { _record = newValue } }
    }

    /// Appends to the journal of record.
    private func appendRecord(_ request: AppendRequest) async throws -> AppendResult {
        if let record { return try await record.append(request) }
        return try await journal.append(request)
    }

    /// Folds what the projections lack of `stream` (all of the local journal without a record journal).
    private func catchUp(_ stream: ID128) async throws {
        if let record { try await record.catchUp(stream) } else { try projections.catchUp(journal) }
    }

    /// Folds what the projections lack of the user's stream in the journal of record (a cluster
    /// engine that does not own the user's partition, e.g. `psm mcp --journal`); nothing to do for a
    /// store's own journal, whose reads catch up by themselves.
    public func refresh(_ user: UserRef) async throws {
        if let record { try await record.catchUp(user.key) }
    }

    /// A user's state as of a past point folded ahead of a synchronous read, on a cluster node (whose
    /// journal of record is read asynchronously): see ``withAsOf(_:_:_:)``.
    @TaskLocal static var prefolded: (user: UserRef, asOf: AsOf, state: MemoryKV)?

    /// Runs `body`, in which as-of reads of `user` at `asOf` work on a cluster node too: the user's
    /// stream is read from the journal of record and folded first. (Without a record journal it only
    /// runs `body`.)
    public func withAsOf<T>(_ user: UserRef, _ asOf: AsOf?, _ body: () async throws -> T) async throws -> T {
        guard let asOf, let record else { return try await body() }
        let fetched = try await record.stream(user.key)
        let state = try asOf.fold(user, events: fetched.events, source: fetched)
        return try await Engine.$prefolded.withValue((user, asOf, state)) { try await body() }
    }

    /// The user's state as of `asOf`: folded from the local journal, or prefolded by ``withAsOf(_:_:_:)``.
    private func asOfState(_ user: UserRef, _ asOf: AsOf) throws -> MemoryKV {
        if let p = Engine.prefolded, p.user == user, p.asOf == asOf { return p.state }
        try requireLocalJournal("a read as of a past point (outside withAsOf)")
        return try asOf.fold(user, journal: journal)
    }

    /// Refuses what a cluster node cannot answer yet.
    private func requireLocalJournal(_ what: String) throws {
        if record != nil { throw EngineError.invalidArgument("\(what) is not available on a cluster node yet (it reads the journal itself); ask a single-machine store or psm verify --journal") }
    }

    public var projections: ProjectionStore {
        projectionsLock.lock()
        defer { projectionsLock.unlock() }
        return _projections
    }

    public var journalPath: String { directory + "/journal" }
    public var projectionsPath: String { directory + "/projections" }

    /// Opens (creating if needed) the store in `directory` and folds any journal events the
    /// projections have not seen yet.
    public init(directory: String, encoder: Encoder? = nil, policy: any MemoryPolicy = RuleBaseline()) throws {
        self.directory = directory
        self.encoder = encoder
        self.policy = policy
        decider = Decider(policy: policy, encoder: encoder)
        journal = try Journal(directory: directory + "/journal")
        do {
            _projections = try ProjectionStore(directory: directory + "/projections", resetOutdated: true)
            try _projections.catchUp(journal)
        } catch {
            journal.close()
            throw error
        }
        // An erasure interrupted after its event and before its key was destroyed is finished now.
        for stream in try journal.dataKeys.streams() {
            if let u = try _projections.read({ kv in try UserReader(kv: kv, user: stream).userRecord() }), u.erased { try finishErasure(stream) }
        }
    }

    public func close() {
        projections.close()
        journal.close()
    }

    /// The model the store's decisions are made with (SPEC.md §11.8): the first engine with an encoder
    /// journals a model activation; later ones must bring the same model, or adopt a new one explicitly.
    /// Returns true when this call activated it.
    @discardableResult
    public func ensureActiveModel(name: String, adopt: Bool = false, at time: Int64) async throws -> Bool {
        guard encoder != nil else { return false }
        if record != nil { try await catchUp(UserRef.modelStream.id) }
        let mine = decider.modelID
        if let active = try projections.activeModel() {
            if active.id == mine { return false }
            guard adopt else {
                throw EngineError.conflict(
                    "the store's active model is \(hexBytes(active.id).prefix(16))… (\(active.name)), this engine has \(hexBytes(mine).prefix(16))…; pass that model, or adopt this one (psm adopt)")
            }
        }
        let event = MemoryEvent.modelActivation(.init(model: mine, name: name))
        let id = ID128.derived(domain: "psm.activation.v1", mine + withUnsafeBytes(of: time.bigEndian) { Array($0) })
        _ = try await appendRecord(
            AppendRequest(stream: UserRef.modelStream, events: [EventData(id: id, type: event.type.rawValue, time: time, payload: event.payload())]))
        try await catchUp(UserRef.modelStream.id)
        return true
    }

    // MARK: - Writes

    public struct ObserveResult: Sendable {
        public var observation: EventID
        public var position: Position
        public var kept: Bool
        public var memory: ID128?
        public var tier: Tier?
        public var wasDuplicate: Bool
        /// How the new memory relates to an older one (interference, SPEC.md §12.7): nil when unrelated,
        /// when the model has no interference head, and on a retry (`wasDuplicate`).
        public var relation: Interference? = nil
    }

    /// Records an observation and the gate's decision on it (one atomic append), then folds them.
    /// `id` makes retries exactly-once; by default it is derived from the time and content.
    public func observe(_ user: UserRef, _ observation: MemoryEvent.Observation, at time: Int64, id: EventID? = nil) async throws -> ObserveResult {
        guard !observation.text.isEmpty, observation.text.utf8.count <= MemoryEvent.maxTextBytes else {
            throw EngineError.invalidArgument("observation text must be 1 to \(MemoryEvent.maxTextBytes) bytes, got \(observation.text.utf8.count)")
        }
        let obsID = id ?? ID128.timeOrdered(timeMicros: time, entropy: contentEntropy(user, time, observation.text))
        let command = EventData(id: obsID, type: MemoryEventType.observation.rawValue, time: time, payload: MemoryEvent.observation(observation).payload())
        if let original = try await committed(command, user) {
            try await catchUp(user.key)
            let o = try projections.read { kv in try UserReader(kv: kv, user: user.key).observation(obsID) }
            return ObserveResult(
                observation: obsID, position: original, kept: o?.status == .kept, memory: o.flatMap { $0.memory.isZero ? nil : $0.memory },
                tier: nil, wasDuplicate: true)
        }
        // Embedded before the write lock; observe checks the context is still the state's.
        if decider.policy.readsContext { try await catchUp(user.key) }
        let reading = try decider.read(user, observation, state: projections)
        return try await withRetries(user, at: time) { revision in
            let (decisions, g, memory, relation) = try self.decider.observe(user, observation, id: obsID, at: time, state: self.projections, reading: reading)
            let r = try await self.appendRecord(AppendRequest(stream: user.stream, expected: revision, events: [command] + decisions, encrypted: true))
            return ObserveResult(
                observation: obsID, position: r.positions[0], kept: g.kept, memory: g.kept ? memory : nil, tier: g.kept ? g.tier : nil,
                wasDuplicate: r.wasDuplicate, relation: r.wasDuplicate ? nil : relation)
        }
    }

    public struct RecalledMemory: Sendable {
        public var candidate: Candidate
        public var weight: Fixed
        public var provenance: Provenance?
    }

    public struct RecallResult: Sendable {
        /// The recall request's event id (for feedback), nil for as-of recalls (which write nothing).
        public var recall: EventID?
        public var position: Position?
        public var memories: [RecalledMemory]
        public var candidatesConsidered: Int
    }

    /// Recalls the `k` memories the policy weighs highest for `query` at event time `time`, and journals
    /// the request and exactly what was surfaced.
    public func recall(_ user: UserRef, query: String, k: Int, at time: Int64, session: String = "", id: EventID? = nil) async throws -> RecallResult {
        guard (1...MemoryEvent.maxItems).contains(k) else { throw EngineError.invalidArgument("k must be 1...\(MemoryEvent.maxItems), got \(k)") }
        guard !query.isEmpty, query.utf8.count <= MemoryEvent.maxTextBytes else { throw EngineError.invalidArgument("query must be 1 to \(MemoryEvent.maxTextBytes) bytes") }
        guard try userExists(user) else { throw EngineError.notFound("user \(user) has no memories") }
        let requestID = id ?? ID128.timeOrdered(timeMicros: time, entropy: contentEntropy(user, time, query))
        let command = EventData(
            id: requestID, type: MemoryEventType.recallRequest.rawValue, time: time,
            payload: MemoryEvent.recallRequest(.init(query: query, k: UInt32(k), session: session)).payload())
        if let original = try await committed(command, user) {
            // A retry: answer with what was surfaced then, not a new ranking.
            try await catchUp(user.key)
            let record = try projections.read { kv in try UserReader(kv: kv, user: user.key).recall(requestID) }
            let memories = try (record?.items ?? []).map { item in
                let v = try memory(user, item.memory, at: time)
                let c = Candidate(memory: item.memory, slot: v.record.slot, lexical: 0, lexicalRank: 0, dense: 0, denseRank: 0, fused: 0, view: v)
                return RecalledMemory(candidate: c, weight: item.weight, provenance: try provenance(user, item.memory))
            }
            return RecallResult(recall: requestID, position: original, memories: memories, candidatesConsidered: 0)
        }
        let request = MemoryEvent.RecallRequest(query: query, k: UInt32(k), session: session)
        return try await withRetries(user, at: time) { revision in
            let (decisions, ranked, considered) = try self.decider.recall(user, request, id: requestID, at: time, state: self.projections)
            let r = try await self.appendRecord(AppendRequest(stream: user.stream, expected: revision, events: [command] + decisions, encrypted: true))
            return RecallResult(
                recall: requestID, position: r.positions[0],
                memories: try ranked.map { RecalledMemory(candidate: $0.0, weight: $0.1, provenance: try self.provenance(user, $0.0.memory)) },
                candidatesConsidered: considered)
        }
    }

    /// What a recall would surface now, without journaling it (evaluation and previews; an app's
    /// real recalls go through ``recall(_:query:k:at:session:id:)`` so the audit trail is complete).
    public func peek(_ user: UserRef, query: String, k: Int, at time: Int64) throws -> RecallResult {
        guard (1...MemoryEvent.maxItems).contains(k) else { throw EngineError.invalidArgument("k must be 1...\(MemoryEvent.maxItems), got \(k)") }
        if record == nil { try projections.catchUp(journal) }
        let candidates = try projections.candidates(user, decider.recallQuery(query, k: k, at: time))
        let ranked = decider.rank(candidates, query: query, at: time, k: k)
        return try projections.read { kv in
            let reader = UserReader(kv: kv, user: user.key)
            return RecallResult(
                recall: nil, position: nil,
                memories: try ranked.map { RecalledMemory(candidate: $0.0, weight: $0.1, provenance: try reader.provenance($0.0.memory)) },
                candidatesConsidered: candidates.count)
        }
    }

    /// What a recall would have surfaced as of a past point (nothing is written).
    public func recall(_ user: UserRef, query: String, k: Int, asOf: AsOf, at time: Int64? = nil) throws -> RecallResult {
        let kv = try asOfState(user, asOf)
        let reader = UserReader(kv: kv, user: user.key)
        guard let u = try reader.userRecord() else { throw EngineError.notFound("user \(user) had no events as of \(asOf)") }
        let at = time ?? u.lastEventTime
        let candidates = try reader.candidates(decider.recallQuery(query, k: k, at: at), name: user.description)
        let ranked = decider.rank(candidates, query: query, at: at, k: k)
        return RecallResult(
            recall: nil, position: nil,
            memories: try ranked.map { RecalledMemory(candidate: $0.0, weight: $0.1, provenance: try reader.provenance($0.0.memory)) },
            candidatesConsidered: candidates.count)
    }

    /// Records feedback on a memory a recall surfaced, and the policy's answer (reinforce or weaken).
    @discardableResult
    public func feedback(_ user: UserRef, recall: EventID, memory: ID128, kind: FeedbackKind, note: String = "", at time: Int64) async throws -> Position {
        try await withRetries(user, at: time) { revision in
            let (r, m) = try self.projections.read { kv in
                let reader = UserReader(kv: kv, user: user.key)
                return (try reader.recall(recall), try reader.memory(memory, at: time))
            }
            guard let r else { throw EngineError.notFound("recall \(recall) of user \(user)") }
            guard r.items.contains(where: { $0.memory == memory }), m != nil else {
                throw EngineError.invalidArgument("memory \(memory) was not surfaced by recall \(recall)")
            }
            let fid = ID128.timeOrdered(timeMicros: time, entropy: self.contentEntropy(user, time, "feedback \(recall) \(memory) \(kind)"))
            let command = MemoryEvent.Feedback(recall: recall, memory: memory, kind: kind, note: note)
            var events = [
                EventData(id: fid, type: MemoryEventType.feedback.rawValue, time: time, causation: recall, payload: MemoryEvent.feedback(command).payload())
            ]
            events += try self.decider.feedback(user, command, id: fid, at: time, state: self.projections)
            return try await self.appendRecord(AppendRequest(stream: user.stream, expected: revision, events: events, encrypted: true)).positions[0]
        }
    }

    public struct SleepResult: Sendable {
        public var position: Position
        public var decisions: [MemoryEventType: Int]
    }

    /// Sleep-time reorganisation for one user: the policy's tier moves, pruning and consolidation.
    public func sleep(_ user: UserRef, at time: Int64, reason: String = "") async throws -> SleepResult {
        guard try userExists(user) else { throw EngineError.notFound("user \(user) has no memories") }
        return try await withRetries(user, at: time) { revision in
            let listing = try self.projections.read { kv in try UserReader(kv: kv, user: user.key).tiers(at: time, name: user.description) }
            let sid = ID128.timeOrdered(timeMicros: time, entropy: self.contentEntropy(user, time, "sleep \(listing.user.events)"))
            var events = [
                EventData(id: sid, type: MemoryEventType.sleepRequest.rawValue, time: time, payload: MemoryEvent.sleepRequest(.init(reason: reason)).payload())
            ]
            var counts: [MemoryEventType: Int] = [:]
            for d in try self.decider.sleep(user, id: sid, at: time, state: self.projections) {
                counts[MemoryEventType(rawValue: d.type)!, default: 0] += 1
                events.append(d)
            }
            let r = try await self.appendRecord(AppendRequest(stream: user.stream, expected: revision, events: events, encrypted: true))
            return SleepResult(position: r.positions[0], decisions: counts)
        }
    }

    /// Records an erasure request: every projection of the user is removed.
    @discardableResult
    /// Erases a user (SPEC.md §4.7, §11.1): journals an erasure request (in clear, with no personal data
    /// but `reason`), destroys the user's data key so every earlier payload of the user is unreadable for
    /// good, and compacts the projection store so no freed page keeps the user's text.
    public func erase(_ user: UserRef, reason: String = "", at time: Int64) async throws -> Position {
        guard try userExists(user) else { throw EngineError.notFound("user \(user) has no events") }
        let position = try await withRetries(user, at: time) { revision in
            let id = ID128.timeOrdered(timeMicros: time, entropy: self.contentEntropy(user, time, "erase"))
            let e = EventData(id: id, type: MemoryEventType.erasureRequest.rawValue, time: time, payload: MemoryEvent.erasureRequest(.init(reason: reason)).payload())
            return try await self.appendRecord(AppendRequest(stream: user.stream, expected: revision, events: [e])).positions[0]
        }
        // Token states are derived from memories' text: none of the erased user's may stay in memory.
        decider.tokens?.forget()
        if let record {
            try await record.destroyKeys(user.key)
            try compactProjections()
        } else {
            try finishErasure(user.key)
        }
        return position
    }

    /// Destroys an erased user's data key and compacts the projections. Idempotent: also run at open for
    /// any erased user whose key survived a crash between the erasure event and this.
    func finishErasure(_ stream: ID128) throws {
        try journal.dataKeys.destroy(stream)
        try compactProjections()
    }

    /// Rewrites the projection store without its free pages (`mdb_env_copy2` with compaction), so data
    /// deleted by an erasure is not left in the file.
    public func compactProjections() throws {
        projectionsLock.lock()
        defer { projectionsLock.unlock() }
        try _projections.catchUp(journal)
        let copy = projectionsPath + ".compact"
        try? FileManager.default.removeItem(atPath: copy)
        try _projections.backup(to: copy)
        _projections.close()
        do {
            guard rename(copy + "/data.mdb", projectionsPath + "/data.mdb") == 0 else {
                throw EngineError.conflict("cannot replace \(projectionsPath)/data.mdb: \(String(cString: strerror(errno)))")
            }
            try? FileManager.default.removeItem(atPath: copy)
            _projections = try ProjectionStore(directory: projectionsPath, resetOutdated: true)
        } catch {
            _projections = try ProjectionStore(directory: projectionsPath, resetOutdated: true)
            throw error
        }
    }

    /// Appends with the stream's current revision as the expectation, after checking that event time
    /// does not go backwards for the user; retries when another writer got there first. Folds after.
    private func withRetries<T>(_ user: UserRef, at time: Int64, _ body: @escaping (ExpectedRevision) async throws -> T) async throws -> T {
        let attempts = 200
        for attempt in 0..<attempts {
            try await catchUp(user.key)
            let next: UInt64?
            if let record { next = try await record.nextRevision(user.key) } else { next = try journal.streamInfo(user.key)?.nextRevision }
            if let u = try projections.read({ kv in try UserReader(kv: kv, user: user.key).userRecord() }) {
                if u.erased { throw ProjectionError.erased("user \(user) was erased at position \(u.erasedAt)") }
                if time < u.lastEventTime {
                    throw EngineError.invalidArgument(
                        "event time \(Engine.iso(time)) is before user \(user)'s last event time \(Engine.iso(u.lastEventTime)); event times of a user never go back")
                }
            }
            let expected: ExpectedRevision = next.map { .exact($0 - 1) } ?? .noStream
            do {
                let result = try await body(expected)
                try await catchUp(user.key)
                return result
            } catch JournalError.wrongExpectedRevision where attempt < attempts - 1 {
                // Another writer appended to this user first: back off briefly and decide again on
                // the new state. (The backoff's randomness never reaches a decision.)
                try await Task.sleep(nanoseconds: UInt64.random(in: 0...UInt64(min(attempt + 1, 20)) * 200_000))
                continue
            }
        }
        throw EngineError.conflict("user \(user): too many concurrent writers")
    }

    /// The position of `command` if it is already in the journal (a retry), nil if it is new; throws
    /// when its id is taken by a different event.
    private func committed(_ command: EventData, _ user: UserRef) async throws -> Position? {
        let e: StoredEvent
        let payload: [UInt8]?
        if let record {
            guard let found = try await record.committedEvent(command.id) else { return nil }
            (e, payload) = found
        } else {
            guard let found = try journal.event(id: command.id) else { return nil }
            (e, payload) = (found, try journal.payload(of: found))
        }
        let same = e.header.streamID == user.key && e.header.eventType == command.type && e.header.eventTime == command.time && payload == command.payload
        guard same else { throw EngineError.conflict("event id \(command.id) is already used by another event at position \(e.position)") }
        return e.position
    }

    /// The model id of the journal's last model activation, if any.
    public static func activeModel(in journal: Journal) throws -> [UInt8]? {
        guard let info = try journal.streamInfo(UserRef.modelStream.id), info.nextRevision > 0 else { return nil }
        guard let e = try journal.read(stream: UserRef.modelStream.id, fromRevision: info.nextRevision - 1, limit: 1).first,
            case .modelActivation(let m)? = try MemoryEvent.decode(type: e.header.eventType, payload: try journal.payload(of: e))
        else { return nil }
        return m.model
    }

    /// ISO 8601 (UTC, seconds) for messages.
    static func iso(_ micros: Int64) -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date(timeIntervalSince1970: Double(micros) / 1_000_000))
    }

    public func userExists(_ user: UserRef) throws -> Bool { try Decider.userExists(user, projections) }

    /// Deterministic id entropy from the content, so the same command retried gets the same id.
    private func contentEntropy(_ user: UserRef, _ time: Int64, _ text: String) -> (UInt64, UInt64) {
        let id = ID128.derived(domain: "psm.command.v1", user.key.bytes + withUnsafeBytes(of: time.bigEndian) { Array($0) } + Array(text.utf8))
        return (id.high, id.low)
    }

    /// The quantized embedding of `text`, or nil without an encoder.
    public func embed(_ text: String) -> QuantizedVector? { decider.embed(text) }

    // MARK: - Reads

    /// Runs `body` on the user's state: current, or as of a past point.
    public func withState<T>(_ user: UserRef, asOf: AsOf? = nil, _ body: (UserReader<MemoryKV>?, UserReader<LiveKV>?) throws -> T) throws -> T {
        if let asOf {
            let kv = try asOfState(user, asOf)
            return try body(UserReader(kv: kv, user: user.key), nil)
        }
        return try projections.read { kv in try body(nil, UserReader(kv: kv, user: user.key)) }
    }

    /// The user's record (current or as of), throwing for unknown or erased users.
    public func userRecord(_ user: UserRef, asOf: AsOf? = nil) throws -> UserRecord {
        let r = try withState(user, asOf: asOf) { a, b in try a?.userRecord() ?? b?.userRecord() }
        guard let r else { throw EngineError.notFound("user \(user) has no events\(asOf.map { " as of \($0)" } ?? "")") }
        if r.erased { throw ProjectionError.erased("user \(user) was erased at position \(r.erasedAt)") }
        return r
    }

    /// A memory at event time `time` (default: the user's last event time).
    public func memory(_ user: UserRef, _ id: ID128, asOf: AsOf? = nil, at time: Int64? = nil) throws -> MemoryView {
        let u = try userRecord(user, asOf: asOf)
        let t = time ?? u.lastEventTime
        let v = try withState(user, asOf: asOf) { a, b in try a?.memory(id, at: t) ?? b?.memory(id, at: t) }
        guard let v else { throw EngineError.notFound("memory \(id) of user \(user)") }
        return v
    }

    public func provenance(_ user: UserRef, _ id: ID128, asOf: AsOf? = nil) throws -> Provenance {
        _ = try userRecord(user, asOf: asOf)
        let p = try withState(user, asOf: asOf) { a, b in try a?.provenance(id) ?? b?.provenance(id) }
        guard let p else { throw EngineError.notFound("memory \(id) of user \(user)") }
        return p
    }

    public func tiers(_ user: UserRef, asOf: AsOf? = nil, at time: Int64? = nil) throws -> TierListing {
        let u = try userRecord(user, asOf: asOf)
        let t = time ?? u.lastEventTime
        return try withState(user, asOf: asOf) { a, b in try a?.tiers(at: t, name: user.description) ?? b!.tiers(at: t, name: user.description) }
    }

    public struct HistoryEntry: Sendable {
        public var position: Position
        public var time: Int64
        public var eventID: EventID
        public var causation: EventID
        public var event: MemoryEvent
    }

    /// Every event that touched memory `id`, oldest first, read back from the journal.
    public func history(_ user: UserRef, _ id: ID128) throws -> [HistoryEntry] {
        try requireLocalJournal("a memory's history (outside historyOfRecord)")
        return try historyEntries(user, historyPositions(user, id)) { p in
            guard let e = try journal.read(from: p, limit: 1).first, e.position == p else { return nil }
            return (e, try journal.payload(of: e))
        }
    }

    /// A memory's history read from the journal of record: the store's journal, or on a cluster node
    /// PostgreSQL (by the positions the projections recorded).
    public func historyOfRecord(_ user: UserRef, _ id: ID128) async throws -> [HistoryEntry] {
        guard let record else { return try history(user, id) }
        let positions = try historyPositions(user, id)
        let fetched = try await record.events(at: positions)
        let byPosition = Dictionary(fetched.events.map { ($0.position, $0) }, uniquingKeysWith: { a, _ in a })
        return try historyEntries(user, positions) { p in
            guard let e = byPosition[p] else { return nil }
            guard let payload = try fetched.readablePayload(of: e) else {
                throw JournalError.keyUnavailable(position: p, stream: e.header.streamID, keyID: e.header.keyID)
            }
            return (e, payload)
        }
    }

    /// The positions of the events that touched memory `id`, as the projections recorded them.
    private func historyPositions(_ user: UserRef, _ id: ID128) throws -> [Position] {
        _ = try userRecord(user)
        let positions = try projections.read { kv in try UserReader(kv: kv, user: user.key).history(id) }
        guard !positions.isEmpty else { throw EngineError.notFound("memory \(id) of user \(user)") }
        return positions.map(\.position)
    }

    /// The history entries at `positions`, each event found by `event(position)`.
    private func historyEntries(_ user: UserRef, _ positions: [Position], event: (Position) throws -> (StoredEvent, [UInt8])?) throws -> [HistoryEntry] {
        try positions.map { p in
            guard let (e, payload) = try event(p), e.header.streamID == user.key else {
                throw ProjectionError.corrupt("history names position \(p), which is not an event of user \(user)")
            }
            guard let event = try MemoryEvent.decode(type: e.header.eventType, payload: payload) else {
                throw ProjectionError.corrupt("history names position \(p), which is not a memory event")
            }
            return HistoryEntry(position: e.position, time: e.header.eventTime, eventID: e.header.eventID, causation: e.header.causationID, event: event)
        }
    }

    /// The projections' state hash after folding every journal event (SPEC.md §11.6).
    public func stateHash() throws -> [UInt8] {
        if record == nil { try projections.catchUp(journal) }
        return try projections.stateHash()
    }

    /// Rebuilds the projections from the journal and returns (hash before, report).
    public func rebuild(progress: ((Position, Position) -> Void)? = nil) throws -> (before: [UInt8], report: ProjectionStore.RebuildReport) {
        try requireLocalJournal("rebuild (a node rebuilds a partition by adopting it)")
        projectionsLock.lock()
        defer { projectionsLock.unlock() }
        try _projections.catchUp(journal)
        let before = try _projections.stateHash()
        _projections.close()
        do {
            let report = try ProjectionStore.rebuild(journal: journal, directory: projectionsPath, progress: progress)
            _projections = try ProjectionStore(directory: projectionsPath, resetOutdated: true)
            return (before, report)
        } catch {
            _projections = try ProjectionStore(directory: projectionsPath, resetOutdated: true)
            throw error
        }
    }
}
