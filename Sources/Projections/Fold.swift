import Foundation
import Journal

/// Who a memory belongs to. Each user is one journal stream, `tenant` / `user/<user>`.
public struct UserRef: Hashable, Sendable, CustomStringConvertible {
    public let tenant: String
    public let user: String
    public let stream: StreamName

    public static let streamPrefix = "user/"

    public init(tenant: String, user: String) throws(ProjectionError) {
        guard !user.isEmpty, user.utf8.count <= 200, !user.utf8.contains(0) else {
            throw .invalidArgument("user id must be 1 to 200 bytes of UTF-8 without NUL (got \(user.utf8.count) bytes)")
        }
        do { stream = try StreamName(tenant: tenant, name: UserRef.streamPrefix + user) } catch { throw .invalidArgument("\(error)") }
        self.tenant = tenant
        self.user = user
    }

    /// The user of a stream, or nil for streams that are not user streams.
    public init?(stream: StreamName) {
        guard stream.name.hasPrefix(UserRef.streamPrefix) else { return nil }
        guard let u = try? UserRef(tenant: stream.tenant, user: String(stream.name.dropFirst(UserRef.streamPrefix.count))) else { return nil }
        self = u
    }

    /// The key prefix of every per-user table entry (the stream id).
    public var key: ID128 { stream.id }
    public var description: String { "\(tenant)/\(user)" }

    /// The store-wide stream of model activations.
    public static let modelStream = try! StreamName(tenant: "psm", name: "models")
}

/// Where an event sits in the journal; what the fold needs besides its payload.
public struct EventContext: Sendable {
    public var position: Position
    public var time: Int64
    public var id: EventID
    public var causation: EventID
    public var stream: ID128
    public init(position: Position, time: Int64, id: EventID, causation: EventID, stream: ID128) {
        self.position = position; self.time = time; self.id = id; self.causation = causation; self.stream = stream
    }
}

/// A change the fast in-memory candidate index must follow.
enum IndexChange {
    /// A memory's new index entry (its ``IndexEntry`` encoding), decoded only where an index is loaded.
    case add(user: ID128, slot: UInt32, entry: [UInt8])
    case dropUser(ID128)
}

/// An event the fold refused (it would break an invariant). Recorded, never applied in part.
struct FoldAnomaly: Error { let reason: String }

/// Key construction (SPEC.md §11.3). Each key is built in one allocation of its exact size.
enum Keys {
    static func user(_ u: ID128) -> [UInt8] { build(16) { $0.id(u) } }
    static func pair(_ u: ID128, _ id: ID128) -> [UInt8] { build(32) { $0.id(u); $0.id(id) } }
    static func slot(_ u: ID128, _ slot: UInt32) -> [UInt8] { build(20) { $0.id(u); $0.be(slot) } }
    static func provenance(_ u: ID128, _ source: ID128, _ derived: ID128) -> [UInt8] {
        build(48) { $0.id(u); $0.id(source); $0.id(derived) }
    }
    static func history(_ u: ID128, _ memory: ID128, _ position: Position) -> [UInt8] {
        build(40) { $0.id(u); $0.id(memory); $0.be(position) }
    }
    static func position(_ p: Position) -> [UInt8] { bigEndianBytes(p) }

    struct Builder {
        let base: UnsafeMutableRawPointer
        var offset = 0
        mutating func be<T: FixedWidthInteger>(_ v: T) {
            base.storeBytes(of: v.bigEndian, toByteOffset: offset, as: T.self)
            offset += MemoryLayout<T>.size
        }
        mutating func id(_ v: ID128) { be(v.high); be(v.low) }
    }

    @inline(__always)
    static func build(_ count: Int, _ body: (inout Builder) -> Void) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buf, n in
            var b = Builder(base: UnsafeMutableRawPointer(buf.baseAddress!))
            body(&b)
            precondition(b.offset == count)
            n = count
        }
    }
}

/// The fold: applies one memory event to the projection state (SPEC.md §11.5). Deterministic, and the
/// only code that writes projections, whether incrementally, on rebuild or for an as-of read.
public enum Fold {
    /// The analyzed terms of `text` with their frequencies (sorted by term) and the document length.
    public static func termCounts(_ text: String) -> (terms: [(term: String, tf: UInt16)], length: UInt16) {
        let all = Analyzer.analyze(text)
        let terms = all.counted().map { (term: String(decoding: all.bytes[$0.range], as: UTF8.self), tf: $0.tf) }
        return (terms, UInt16(min(all.count, Int(UInt16.max))))
    }

    /// What the lexical index sees of a memory: the speaker (when known) and the text, so questions
    /// that name a person find what that person said.
    /// A memory made by a contextual gate decision is indexed after its context: the observation's date
    /// and the text of the turn before it (``MemoryRecord/indexContext``).
    public static func indexedText(_ m: MemoryRecord) -> String {
        let base = indexedText(speaker: m.speaker, text: m.text)
        return m.indexContext.isEmpty ? base : m.indexContext + " " + base
    }
    public static func indexedText(speaker: String, text: String) -> String { speaker.isEmpty ? text : speaker + ": " + text }

    /// English month names, as the index's date text writes them.
    public static let monthNames = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]

    /// The UTC calendar date of an event time (µs since the epoch) as the index holds it: "8 May 2023".
    public static func dateText(_ time: Int64) -> String {
        let d = civilDate(time)
        return "\(d.day) \(monthNames[d.month - 1]) \(d.year)"
    }

    /// The UTC calendar date (year, month 1-12, day 1-31) of an event time in µs since the epoch.
    public static func civilDate(_ time: Int64) -> (year: Int, month: Int, day: Int) {
        // Days since 1970-01-01 to a proleptic Gregorian civil date (Howard Hinnant's days_from_civil inverse).
        let days = time >= 0 ? time / 86_400_000_000 : (time + 1) / 86_400_000_000 - 1
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }

    /// Applies `event`. `name` resolves the stream's name the first time a user is seen.
    /// Throws ``FoldAnomaly`` (having written nothing) when the event cannot be applied.
    static func apply(
        _ event: MemoryEvent, _ ctx: EventContext, _ kv: some KVWriting, name: () throws -> StreamName?, changes: inout [IndexChange],
        prepared: PreparedEntries? = nil, users: UserRecords? = nil
    ) throws {
        if case .modelActivation(let m) = event {
            try kv.put(.meta, Array("active_model".utf8), m.model + Array(m.name.utf8))
            return
        }
        let u = ctx.stream
        var user: UserRecord
        if let cached = users?.records[u] {
            user = cached
        } else if let b = try kv.get(.users, Keys.user(u)) {
            user = try UserRecord(decoding: b)
        } else {
            guard let stream = try name(), let ref = UserRef(stream: stream) else {
                throw FoldAnomaly(reason: "\(event.type) on stream \(u), which is not a user stream")
            }
            // A user's stream starts with an observation; only an erasure may come first, when every
            // event before it was crypto-shredded (its payloads are unreadable, SPEC.md §4.7).
            switch event {
            case .observation, .erasureRequest: break
            default: throw FoldAnomaly(reason: "\(event.type) before the user's first observation")
            }
            user = UserRecord(tenant: ref.tenant, user: ref.user)
        }
        if user.erased { throw FoldAnomaly(reason: "\(event.type) after the user was erased at position \(user.erasedAt)") }

        func memory(_ id: ID128) throws -> MemoryRecord {
            guard let b = try kv.get(.memories, Keys.pair(u, id)) else { throw FoldAnomaly(reason: "\(event.type): unknown memory \(id)") }
            return try MemoryRecord(decoding: b)
        }
        func save(_ m: MemoryRecord) throws {
            var m = m
            m.updatedPosition = ctx.position
            try kv.put(.memories, Keys.pair(u, m.id), m.encoded())
        }
        func history(_ ids: [ID128]) throws {
            var type: [UInt8] = []
            type.appendLE(event.type.rawValue)
            for (i, id) in ids.enumerated() where !ids[..<i].contains(id) { try kv.put(.history, Keys.history(u, id, ctx.position), type) }
        }
        /// Writes a new memory: its record first, and only if no memory has its id (the one check
        /// left after the caller validated everything else, made by the write itself).
        func create(_ m: MemoryRecord, vector: QuantizedVector?) throws {
            var m = m
            m.updatedPosition = ctx.position
            guard try kv.insert(.memories, Keys.pair(u, m.id), m.encoded()) else {
                throw FoldAnomaly(reason: "\(event.type): memory \(m.id) already exists")
            }
            let text = indexedText(m)
            let length: UInt16, entry: [UInt8]
            if let p = prepared?.entries.removeValue(forKey: ctx.position), p.memory == m.id, p.text == text, p.vector == vector {
                (entry, length) = (p.encoded, p.length)
            } else {
                (entry, length) = IndexEntry.encode(memory: m.id, text: text, vector: vector)
            }
            try kv.put(.slots, Keys.slot(u, m.slot), entry)
            user.nextSlot += 1
            user.indexedDocuments += 1
            user.indexedLength += UInt64(length)
            changes.append(.add(user: u, slot: m.slot, entry: entry))
        }
        func checkVector(_ v: QuantizedVector?) throws {
            guard let v else { return }
            guard !v.isEmpty else { throw FoldAnomaly(reason: "\(event.type): empty vector") }
            if user.dimension != 0 && Int(user.dimension) != v.values.count {
                throw FoldAnomaly(reason: "\(event.type): vector of dimension \(v.values.count), the user's vectors have \(user.dimension)")
            }
        }

        switch event {
        case .modelActivation: break
        case .observation(let o):
            let key = Keys.pair(u, ctx.id)
            guard try kv.get(.observations, key) == nil else { throw FoldAnomaly(reason: "observation \(ctx.id) already folded") }
            let r = ObservationRecord(
                id: ctx.id, position: ctx.position, time: ctx.time, text: o.text, session: o.session, speaker: o.speaker, role: o.role,
                sourceID: o.sourceID)
            try kv.put(.observations, key, r.encoded())
            user.observations += 1
            user.lastObservation = ctx.id

        case .gated(let g):
            let key = Keys.pair(u, g.observation)
            guard let ob = try kv.get(.observations, key) else { throw FoldAnomaly(reason: "gated: unknown observation \(g.observation)") }
            var o = try ObservationRecord(decoding: ob)
            guard o.status == .pending else { throw FoldAnomaly(reason: "gated: observation \(g.observation) was already \(o.status)") }
            if g.kept {
                try checkVector(g.vector)
                if let v = g.vector, user.dimension == 0 { user.dimension = UInt32(v.values.count) }
                var m = MemoryRecord(
                    id: g.memory, slot: user.nextSlot, tier: g.tier, type: g.type, text: o.text, createdAt: ctx.time,
                    createdPosition: ctx.position, anchorStrength: g.strength, stability: g.stability, emotionalWeight: g.emotionalWeight,
                    confidence: g.confidence, sources: [o.id], observations: [o.id], sourceIDs: o.sourceID.isEmpty ? [] : [o.sourceID])
                m.validFrom = o.time
                m.session = o.session
                m.speaker = o.speaker
                if g.dated || !g.context.isZero {
                    var context: [String] = g.dated ? [dateText(o.time)] : []
                    if !g.context.isZero {
                        guard g.context != g.observation, let cb = try kv.get(.observations, Keys.pair(u, g.context)) else {
                            throw FoldAnomaly(reason: "gated: context \(g.context) is not an earlier observation of this user")
                        }
                        context.append(try ObservationRecord(decoding: cb).text)
                    }
                    m.indexContext = context.joined(separator: " ")
                }
                try create(m, vector: g.vector)
                try kv.put(.provenance, Keys.provenance(u, o.id, m.id), [])
                o.status = .kept
                o.memory = g.memory
                try history([g.memory])
            } else {
                o.status = .dropped
            }
            try kv.put(.observations, key, o.encoded())

        case .encoded(let e):
            var m = try memory(e.memory)
            guard m.tier != .archival else { throw FoldAnomaly(reason: "encoded: memory \(e.memory) is archived") }
            m.tier = e.tier
            try save(m)
            try history([m.id])

        case .reinforced(let e):
            var m = try memory(e.memory)
            let s = m.strength(at: ctx.time)
            m.anchorStrength = Fixed(min(1, s + e.boost.value))
            m.anchorTime = max(ctx.time, m.anchorTime)
            m.stability = e.stability
            m.reinforcements += 1
            try save(m)
            try history([m.id])

        case .weakened(let e):
            var m = try memory(e.memory)
            let s = m.strength(at: ctx.time)
            m.anchorStrength = Fixed(s * e.factor.value)
            m.anchorTime = max(ctx.time, m.anchorTime)
            m.stability = e.stability
            m.weakenings += 1
            try save(m)
            try history([m.id])

        case .superseded(let e):
            var old = try memory(e.old)
            var new = try memory(e.new)
            guard old.isValid else { throw FoldAnomaly(reason: "superseded: memory \(e.old) was already superseded by \(old.supersededBy)") }
            guard new.supersedes.isZero else { throw FoldAnomaly(reason: "superseded: memory \(e.new) already supersedes \(new.supersedes)") }
            old.validTo = ctx.time
            old.supersededBy = e.new
            new.supersedes = e.old
            try save(old)
            try save(new)
            try history([old.id, new.id])

        case .flagged(let e):
            var m = try memory(e.memory)
            if !e.related.isZero { _ = try memory(e.related) }
            m.flags.append(e.related.isZero ? e.reason : "\(e.reason):\(e.related)")
            try save(m)
            try history([m.id] + (e.related.isZero ? [] : [e.related]))

        case .consolidated(let c):
            try checkVector(c.vector)
            let sources = try c.sources.map { try memory($0) }
            if let v = c.vector, user.dimension == 0 { user.dimension = UInt32(v.values.count) }
            let observations = Set(sources.flatMap(\.observations)).sorted()
            let sourceIDs = Set(sources.flatMap(\.sourceIDs)).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            var m = MemoryRecord(
                id: c.memory, slot: user.nextSlot, tier: .semantic, type: c.type, text: c.text, createdAt: ctx.time,
                createdPosition: ctx.position, anchorStrength: c.strength, stability: c.stability, emotionalWeight: .zero,
                confidence: c.confidence, sources: c.sources, observations: observations, sourceIDs: sourceIDs)
            m.validFrom = sources.map(\.validFrom).min() ?? ctx.time
            var maxEmotion = Fixed.zero
            for s in sources { maxEmotion = max(maxEmotion, s.emotionalWeight) }
            m.emotionalWeight = maxEmotion
            try create(m, vector: c.vector)
            for s in sources { try kv.put(.provenance, Keys.provenance(u, s.id, m.id), []) }
            try history([m.id] + c.sources)

        case .archived(let e):
            var m = try memory(e.memory)
            // An episode that aged into the archive (into nothing, not pruned) may later be consolidated.
            let resting = m.tier == .archival && m.consolidatedInto.isZero && !m.pruned
            guard m.tier != .archival || (resting && !e.into.isZero) else { throw FoldAnomaly(reason: "archived: memory \(e.memory) is already archived") }
            if !e.into.isZero { _ = try memory(e.into) }
            if m.tier != .archival { m.archivedAt = ctx.time }
            m.tier = .archival
            m.consolidatedInto = e.into
            try save(m)
            try history([m.id])

        case .pruned(let e):
            var m = try memory(e.memory)
            guard m.tier != .archival else { throw FoldAnomaly(reason: "pruned: memory \(e.memory) is already archived") }
            m.tier = .archival
            m.archivedAt = ctx.time
            m.pruned = true
            try save(m)
            try history([m.id])

        case .recallRequest(let r):
            let key = Keys.pair(u, ctx.id)
            guard try kv.get(.recalls, key) == nil else { throw FoldAnomaly(reason: "recall \(ctx.id) already folded") }
            try kv.put(.recalls, key, RecallRecord(id: ctx.id, time: ctx.time, query: r.query, k: r.k).encoded())

        case .recalled(let e):
            let key = Keys.pair(u, e.request)
            guard let rb = try kv.get(.recalls, key) else { throw FoldAnomaly(reason: "recalled: unknown recall request \(e.request)") }
            var r = try RecallRecord(decoding: rb)
            guard !r.answered else { throw FoldAnomaly(reason: "recalled: recall \(e.request) was already answered") }
            guard Set(e.items.map(\.memory)).count == e.items.count else { throw FoldAnomaly(reason: "recalled: a memory is listed twice") }
            var ms = try e.items.map { try memory($0.memory) }
            r.items = e.items
            r.answered = true
            try kv.put(.recalls, key, r.encoded())
            for i in ms.indices {
                ms[i].recallCount += 1
                ms[i].lastRecalled = ctx.time
                try save(ms[i])
            }
            try history(e.items.map(\.memory))

        case .feedback(let f):
            guard let rb = try kv.get(.recalls, Keys.pair(u, f.recall)) else { throw FoldAnomaly(reason: "feedback: unknown recall \(f.recall)") }
            let r = try RecallRecord(decoding: rb)
            guard r.items.contains(where: { $0.memory == f.memory }) else {
                throw FoldAnomaly(reason: "feedback: memory \(f.memory) was not surfaced by recall \(f.recall)")
            }
            var m = try memory(f.memory)
            switch f.kind {
            case .helped: m.helped += 1
            case .irrelevant: m.irrelevant += 1
            case .corrected: m.corrected += 1
            }
            try save(m)
            try history([m.id])

        case .sleepRequest:
            user.sleeps += 1
            user.lastSleep = ctx.time

        case .erasureRequest:
            for table in Table.allCases where table != .meta && table != .anomalies {
                for k in try kv.keys(table, prefix: Keys.user(u)) { try kv.delete(table, k) }
            }
            user = UserRecord(tenant: user.tenant, user: user.user)
            user.erased = true
            user.erasedAt = ctx.position
            changes.append(.dropUser(u))
        }
        user.events += 1
        user.lastPosition = ctx.position
        user.lastEventTime = max(user.lastEventTime, ctx.time)
        if let users { users.records[u] = user } else { try kv.put(.users, Keys.user(u), user.encoded()) }
    }
}

/// Index entries encoded ahead of the fold (by ``ReadAhead``'s thread), by the position of the event
/// that creates the memory. The fold uses one only when it names the same memory, text and vector it
/// is about to index, so a prepared entry is byte for byte the one it would encode.
final class PreparedEntries {
    struct Entry {
        var memory: ID128
        var text: String
        var vector: QuantizedVector?
        var length: UInt16
        var encoded: [UInt8]
    }
    var entries: [Position: Entry] = [:]
}

/// A bounded map: entries age out after two generations of `limit` insertions (an observation the
/// gate dropped is never taken).
struct Generations<Key: Hashable, Value> {
    let limit: Int
    private var current: [Key: Value] = [:]
    private var previous: [Key: Value] = [:]

    init(limit: Int) { self.limit = limit }

    mutating func insert(_ key: Key, _ value: Value) {
        current[key] = value
        if current.count >= limit {
            previous = current
            current = [:]
        }
    }

    mutating func take(_ key: Key) -> Value? { current.removeValue(forKey: key) ?? previous.removeValue(forKey: key) }
}

/// User records the fold has changed in the current transaction and not yet written: every event
/// changes its user's record, so a transaction writes each user's record once, at ``flush(_:)``,
/// instead of once per event. Only for one transaction: a retried transaction starts a new one.
final class UserRecords {
    var records: [ID128: UserRecord] = [:]

    func flush(_ kv: some KVWriting) throws {
        for (u, r) in records { try kv.put(.users, Keys.user(u), r.encoded()) }
        records.removeAll()
    }
}

/// Pages of journal events read and decoded ahead of the fold. Threaded, one thread reads page n + 1
/// (and up to two more) while the caller folds page n; otherwise each page is read when asked for.
final class ReadAhead: @unchecked Sendable {
    struct Page {
        var events: [StoredEvent]
        var decoded: [ProjectionStore.Decoded]
        /// Index entries of the memories these events create, where the reader saw their text.
        var entries: [(Position, PreparedEntries.Entry)]
    }

    private let journal: Journal
    private let end: Position
    private let pageSize: Int
    private var from: Position
    private let threaded: Bool
    private let condition = NSCondition()
    private var queue: [Result<Page, any Error>] = []
    private var finished = false
    private var stopped = false
    private var trash: [Any] = []
    private let exited = DispatchSemaphore(value: 0)
    /// Indexed texts and times of observations read, until their gate decision is read.
    private var observed = Generations<EventID, (text: String, time: Int64)>(limit: 1 << 16)
    /// Each stream's last two observations read (id and text), newest first: the context a contextual
    /// gate decision names is the observation before the one it gates.
    private var latest: [ID128: [(id: EventID, text: String)]] = [:]
    static let depth = 3

    init(journal: Journal, from: Position, through end: Position, pageSize: Int, threaded: Bool) {
        self.journal = journal
        self.from = from
        self.end = end
        self.pageSize = pageSize
        self.threaded = threaded
        if threaded {
            let t = Thread { [self] in run() }
            t.name = "psm-fold-read-ahead"
            t.start()
        }
    }

    /// Reads and decodes the next page; nil after `end`.
    private func read() throws -> Page? {
        guard from <= end else { return nil }
        let events = try journal.read(from: from, limit: min(pageSize, Int(clamping: end - from + 1)))
        guard let last = events.last else { return nil }
        from = last.position + 1
        let decoded = ProjectionStore.decode(events, journal)
        var entries: [(Position, PreparedEntries.Entry)] = []
        for (e, d) in zip(events, decoded) {
            guard case .event(let m) = d else { continue }
            func prepare(_ memory: ID128, _ text: String, _ vector: QuantizedVector?) {
                let (bytes, length) = IndexEntry.encode(memory: memory, text: text, vector: vector)
                entries.append((e.position, .init(memory: memory, text: text, vector: vector, length: length, encoded: bytes)))
            }
            switch m {
            case .observation(let o):
                observed.insert(e.header.eventID, (Fold.indexedText(speaker: o.speaker, text: o.text), e.header.eventTime))
                latest[e.header.streamID, default: []].insert((e.header.eventID, o.text), at: 0)
                if latest[e.header.streamID]!.count > 2 { latest[e.header.streamID]!.removeLast() }
            case .gated(let g) where g.kept:
                guard let (text, time) = observed.take(g.observation) else { continue }
                // As the fold builds it (``Fold/indexedText(_:)``): date, context text, then the turn.
                var context: [String] = g.dated ? [Fold.dateText(time)] : []
                if !g.context.isZero {
                    guard let c = latest[e.header.streamID]?.first(where: { $0.id == g.context }) else { continue }
                    context.append(c.text)
                }
                prepare(g.memory, context.isEmpty ? text : context.joined(separator: " ") + " " + text, g.vector)
            case .consolidated(let c): prepare(c.memory, c.text, c.vector)
            default: continue
            }
        }
        return Page(events: events, decoded: decoded, entries: entries)
    }

    /// Hands values the caller is done with (folded pages, index changes) to the reading thread,
    /// which releases them between pages: freeing a transaction's worth of decoded events is work
    /// the folding thread need not do.
    func discard(_ values: [Any]) {
        guard threaded else { return }
        condition.lock()
        if !finished { trash.append(contentsOf: values) }
        condition.unlock()
    }

    private func run() {
        defer {
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
            exited.signal()
        }
        while true {
            condition.lock()
            var garbage = trash
            trash = []
            condition.unlock()
            garbage.removeAll()
            let page: Result<Page, any Error>
            do {
                guard let p = try read() else { return }
                page = .success(p)
            } catch {
                page = .failure(error)
            }
            condition.lock()
            while queue.count >= ReadAhead.depth && !stopped { condition.wait() }
            if stopped {
                condition.unlock()
                return
            }
            queue.append(page)
            condition.broadcast()
            condition.unlock()
            if case .failure = page { return }
        }
    }

    /// The next page, nil after the last; rethrows a read error where it happened.
    func next() throws -> Page? {
        guard threaded else { return try read() }
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !finished { condition.wait() }
        guard !queue.isEmpty else { return nil }
        let page = queue.removeFirst()
        condition.broadcast()
        return try page.get()
    }

    /// Stops the reading thread and waits for it to exit. Call once, when done with the pages.
    func stop() {
        guard threaded else { return }
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
        exited.wait()
    }
}

/// Stream names by id, each read from the journal once (a record carries only the 16-byte stream id).
/// For the walks over a whole journal: replay, learning from utility, reconsolidation.
public final class StreamNames {
    private let journal: Journal
    private var cache: [ID128: StreamName?] = [:]

    public init(_ journal: Journal) { self.journal = journal }

    public func name(_ id: ID128) throws -> StreamName? {
        if let n = cache[id] { return n }
        let n = try journal.streamInfo(id)?.stream
        cache[id] = n
        return n
    }

    /// The user of the stream, or nil for streams that are not user streams.
    public func user(_ id: ID128) throws -> UserRef? { try name(id).flatMap { UserRef(stream: $0) } }
}
