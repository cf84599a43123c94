import Crypto
import Foundation
import Journal
import LMDB

/// The projections of one store: every table of SPEC.md §11.3 in an LMDB environment next to the
/// journal, with the position of the last folded event (the checkpoint). It may use weaker sync than
/// the journal because it can always be rebuilt from it.
///
/// Writes happen only in ``catchUp(_:pageSize:progress:)``, which folds journal events after the
/// checkpoint in one transaction per page; callers serialize through an internal lock.
public final class ProjectionStore: @unchecked Sendable {
    public static let formatMarker = "psm-projections/3"
    /// The most events one catch-up transaction folds.
    static let transactionEvents = 16384
    /// Tables of earlier formats, dropped when an outdated store is reset.
    static let retiredTables = ["vectors", "postings"]

    public let directory: String
    let env: Environment
    let tables: LMDBTables
    private let writeLock = NSLock()
    private let cacheLock = ReadWriteLock()
    private var caches: [ID128: UserIndex] = [:]
    private var streamNames: [ID128: StreamName] = [:]

    /// Opens (creating if needed) the store in `directory`. A store of an earlier projection format
    /// is refused, or with `resetOutdated` emptied in one transaction (checkpoint 0), so the next
    /// catch-up refolds the journal into the current format; nothing is lost, since projections are
    /// a function of the journal.
    public init(directory: String, resetOutdated: Bool = false) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var o = Environment.Options()
        o.noSync = true
        o.maxDatabases = UInt32(Table.allCases.count + 2)
        o.mapSize = 64 << 20
        env = try Environment(path: directory, options: o)
        do {
            tables = try LMDBTables(env: env)
            let meta = tables[.meta]
            try env.write { txn in
                if let marker = try txn.get(meta, Array("format".utf8)) {
                    let found = String(decoding: marker, as: UTF8.self)
                    guard found != ProjectionStore.formatMarker else { return }
                    guard resetOutdated, found.hasPrefix("psm-projections/") else {
                        throw ProjectionError.corrupt("\(directory) holds \(found), not \(ProjectionStore.formatMarker); run `psm rebuild`")
                    }
                    for t in Table.allCases { try txn.empty(tables[t]) }
                    for name in ProjectionStore.retiredTables {
                        if let db = try txn.openDatabaseIfPresent(name) { try txn.drop(db) }
                    }
                    try txn.put(meta, Array("format".utf8), Array(ProjectionStore.formatMarker.utf8))
                } else {
                    try txn.put(meta, Array("format".utf8), Array(ProjectionStore.formatMarker.utf8))
                }
            }
        } catch {
            env.close()
            throw error
        }
    }

    deinit { env.close() }

    public func close() { env.close() }

    /// A consistent, compacted copy of the projection store in the empty directory `path`.
    public func backup(to path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try env.copy(to: path, compact: true)
    }

    /// The position of the last event folded (0 before the first).
    public func checkpoint() throws -> Position {
        try read { kv in try kv.get(.meta, Array("checkpoint".utf8)).map { $0.be(0, UInt64.self) } ?? 0 }
    }

    /// The store's active model (id and name) from the last model activation, if any.
    public func activeModel() throws -> (id: [UInt8], name: String)? {
        try read { kv in
            guard let v = try kv.get(.meta, Array("active_model".utf8)), v.count >= 32 else { return nil }
            return (Array(v[0..<32]), String(decoding: v[32...], as: UTF8.self))
        }
    }

    /// Runs `body` in a read transaction over the current state.
    public func read<T>(_ body: (LMDBReader<ReadTransaction>) throws -> T) throws -> T {
        try env.read { txn in try body(LMDBReader(txn: txn, tables: tables)) }
    }

    public struct CatchUpReport: Sendable {
        public var applied: Int = 0
        public var skipped: Int = 0
        public var anomalies: Int = 0
        public var checkpoint: Position = 0
    }

    /// Folds every journal event after the checkpoint (up to `through`). `progress` gets (checkpoint, end).
    ///
    /// With more than one page to fold, a second thread reads and decodes the next pages (payloads
    /// decrypted, decompressed and decoded; the index entries of the memories they create encoded)
    /// while this one folds into LMDB, and releases what this one has folded. Decoding is a pure
    /// function of the journal, so the read-ahead changes when work happens, never what is folded.
    /// A transaction spans pages up to ``transactionEvents``; an error anywhere in it (a journal read,
    /// a payload) rolls the whole transaction back and is thrown, and the checkpoint stays before it.
    @discardableResult
    public func catchUp(
        _ journal: Journal, through: Position = .max, pageSize: Int = 4096, progress: ((Position, Position) -> Void)? = nil
    ) throws -> CatchUpReport {
        writeLock.lock()
        defer { writeLock.unlock() }
        var report = CatchUpReport()
        let end = min(through, try journal.stats().lastPosition)
        let start = try checkpoint() + 1
        report.checkpoint = start - 1
        guard start <= end else { return report }
        let pages = ReadAhead(journal: journal, from: start, through: end, pageSize: pageSize, threaded: end - start + 1 > UInt64(pageSize))
        defer { pages.stop() }
        let prepared = PreparedEntries()
        var exhausted = false
        while !exhausted {
            // One transaction folds pages as they arrive until it holds `transactionEvents` events:
            // fewer, larger commits write each touched LMDB page once rather than once per page.
            var batch: [ReadAhead.Page] = []
            var changes: [IndexChange] = []
            var local = CatchUpReport()
            try writeWithGrowth { w in
                changes.removeAll()
                local = CatchUpReport()
                let users = UserRecords()
                defer { users.records.removeAll() }
                func fold(_ page: ReadAhead.Page) throws {
                    for (position, entry) in page.entries { prepared.entries[position] = entry }
                    try ProjectionStore.fold(
                        page.events, page.decoded, journal, w, names: &streamNames, changes: &changes, report: &local, prepared: prepared,
                        users: users)
                }
                for page in batch { try fold(page) }  // again, after the map grew
                var events = batch.reduce(0) { $0 + $1.events.count }
                while events < ProjectionStore.transactionEvents {
                    guard let page = try pages.next() else {
                        exhausted = true
                        break
                    }
                    batch.append(page)
                    events += page.events.count
                    try fold(page)
                }
                try users.flush(w)
                prepared.entries.removeAll(keepingCapacity: true)  // those of refused events
            }
            report.applied += local.applied
            report.skipped += local.skipped
            report.anomalies += local.anomalies
            apply(changes)
            guard let last = batch.last?.events.last else { break }
            report.checkpoint = last.position
            progress?(last.position, end)
            pages.discard([batch, changes])
            batch = []
            changes = []
        }
        return report
    }

    private func writeWithGrowth(_ body: (LMDBWriter) throws -> Void) throws {
        while true {
            do {
                try env.write { txn in try body(LMDBWriter(txn: txn, tables: tables)) }
                return
            } catch let e as LMDBError where e.isMapFull {
                try env.growMap()
            }
        }
    }

    /// Folds `events` (consecutive, in position order) into `kv` and, with `checkpoint`, sets the
    /// checkpoint to the last. The one loop behind catch-up, rebuild, a cluster node's stream folds and
    /// the tests' reference folds.
    static func fold(
        _ events: [StoredEvent], _ journal: some EventSource, _ kv: some KVWriting, names: inout [ID128: StreamName], changes: inout [IndexChange],
        report: inout CatchUpReport, checkpoint: Bool = true
    ) throws {
        try fold(events, decode(events, journal), journal, kv, names: &names, changes: &changes, report: &report, checkpoint: checkpoint)
    }

    /// What the fold makes of one journal event, decided from the event alone (so it can be computed
    /// ahead, on another thread).
    enum Decoded {
        /// Not a memory event type (tests, benchmarks): skipped.
        case other
        /// The payload was crypto-shredded (the user was erased and the key destroyed, SPEC.md §4.7): skipped.
        case shredded
        /// A known type whose payload decodes to nothing the fold applies: ignored.
        case ignored
        case event(MemoryEvent)
        /// A payload that does not decode: recorded as an anomaly.
        case malformed(String)
        /// Reading the payload failed (a journal error): the fold stops there and throws it.
        case failed(any Error)
    }

    static func decode(_ e: StoredEvent, _ source: some EventSource) -> Decoded {
        guard MemoryEventType(rawValue: e.header.eventType) != nil else { return .other }
        do {
            guard let payload = try source.readablePayload(of: e) else { return .shredded }
            guard let event = try MemoryEvent.decode(type: e.header.eventType, payload: payload) else { return .ignored }
            return .event(event)
        } catch let m as ProjectionError {
            guard case .malformed(let reason) = m else { return .failed(m) }
            return .malformed(reason)
        } catch {
            return .failed(error)
        }
    }

    static func decode(_ events: [StoredEvent], _ source: some EventSource) -> [Decoded] { events.map { decode($0, source) } }

    /// ``fold(_:_:_:names:changes:report:checkpoint:)`` over events already decoded; `prepared` holds
    /// index entries encoded ahead.
    static func fold(
        _ events: [StoredEvent], _ decoded: [Decoded], _ journal: some EventSource, _ kv: some KVWriting, names: inout [ID128: StreamName],
        changes: inout [IndexChange], report: inout CatchUpReport, checkpoint: Bool = true, prepared: PreparedEntries? = nil,
        users: UserRecords? = nil
    ) throws {
        for (e, d) in zip(events, decoded) {
            let event: MemoryEvent
            switch d {
            case .other, .shredded:
                report.skipped += 1
                continue
            case .ignored: continue
            case .failed(let error): throw error
            case .malformed(let reason):
                try kv.put(.anomalies, Keys.position(e.position), Array(reason.utf8))
                report.anomalies += 1
                continue
            case .event(let m): event = m
            }
            let ctx = EventContext(
                position: e.position, time: e.header.eventTime, id: e.header.eventID, causation: e.header.causationID, stream: e.header.streamID)
            do {
                if case .modelActivation = event, e.header.streamID != UserRef.modelStream.id {
                    throw FoldAnomaly(reason: "model_activation outside the model stream")
                }
                let sid = e.header.streamID
                try Fold.apply(
                    event, ctx, kv,
                    name: {
                        if let n = names[sid] { return n }
                        let n = try journal.streamName(sid)
                        names[sid] = n
                        return n
                    }, changes: &changes, prepared: prepared, users: users)
                report.applied += 1
            } catch let a as FoldAnomaly {
                try kv.put(.anomalies, Keys.position(e.position), Array(a.reason.utf8))
                report.anomalies += 1
            } catch let m as ProjectionError {
                guard case .malformed(let reason) = m else { throw m }
                try kv.put(.anomalies, Keys.position(e.position), Array(reason.utf8))
                report.anomalies += 1
            }
        }
        if checkpoint, let last = events.last { try kv.put(.meta, Array("checkpoint".utf8), bigEndianBytes(last.position)) }
    }

    // MARK: - Streams folded from another journal (a cluster node, SPEC.md §15.5)

    static func revisionKey(_ stream: ID128) -> [UInt8] { Array("rev".utf8) + stream.bytes }

    /// The next revision of `stream` to fold here (0 when none was).
    public func foldedRevision(_ stream: ID128) throws -> UInt64 {
        try read { kv in try kv.get(.meta, ProjectionStore.revisionKey(stream)).map { try ProjectionStore.u64BE($0) } ?? 0 }
    }

    /// Folds events of whole streams read from a journal of record elsewhere (a cluster node's
    /// partitions): each stream's folded revision is kept in `meta` ("rev" ‖ stream id) in the same
    /// transaction as the fold, so an event below it was folded before and is skipped (exactly once
    /// across restarts and repeated feeds), an event at it is folded, and one above it is a gap the
    /// caller must fill by reading the stream from ``foldedRevision(_:)`` first (thrown, nothing of the
    /// page written). The checkpoint is not used.
    @discardableResult
    public func applyStreamEvents(_ events: [StoredEvent], source: some EventSource) throws -> CatchUpReport {
        writeLock.lock()
        defer { writeLock.unlock() }
        var report = CatchUpReport()
        var changes: [IndexChange] = []
        try writeWithGrowth { w in
            changes.removeAll()
            report = CatchUpReport()
            var next: [ID128: UInt64] = [:]
            for e in events {
                let sid = e.header.streamID
                let key = ProjectionStore.revisionKey(sid)
                let expected = try next[sid] ?? w.get(.meta, key).map { try ProjectionStore.u64BE($0) } ?? 0
                if e.header.revision < expected {
                    report.skipped += 1
                    continue
                }
                guard e.header.revision == expected else {
                    throw ProjectionError.gap(stream: sid, expected: expected, found: e.header.revision)
                }
                try ProjectionStore.fold([e], source, w, names: &streamNames, changes: &changes, report: &report, checkpoint: false)
                next[sid] = expected + 1
                try w.put(.meta, key, bigEndianBytes(expected + 1))
            }
        }
        apply(changes)
        return report
    }

    /// SHA-256 over one user's entries in every per-user table (all but `meta` and `anomalies`), in
    /// the order of ``stateHash()``: equal on every node that folded the same stream.
    public func userStateHash(_ user: ID128) throws -> [UInt8] {
        try digest(tables: Table.allCases.filter { $0 != .meta && $0 != .anomalies }, prefix: user.bytes)
    }

    static func u64BE(_ b: [UInt8]) throws -> UInt64 {
        guard b.count == 8 else { throw ProjectionError.corrupt("a revision entry of \(b.count) bytes, not 8") }
        return b.be(0, UInt64.self)
    }

    /// Folds the whole journal up to `position` into `fold`'s memory (a reference rebuild).
    public static func foldJournal(_ journal: Journal, through position: Position = .max, into fold: InMemoryFold) throws {
        var from: Position = 1
        while true {
            let page = try journal.read(from: from, limit: 4096).filter { $0.position <= position }
            guard let last = page.last else { return }
            try fold.apply(page, journal: journal)
            from = last.position + 1
        }
    }

    /// The state hash of any store (``stateHash()`` for the live one).
    public static func stateHash(of kv: some KVReading) throws -> [UInt8] { try hash(kv) }

    private func apply(_ changes: [IndexChange]) {
        guard !changes.isEmpty else { return }
        cacheLock.write {
            for c in changes {
                switch c {
                case .add(let user, let slot, let entry):
                    guard let index = caches[user] else { continue }
                    // The entry was encoded by the fold just now; should it not decode, the index is
                    // dropped and reloaded from the store on next use rather than left stale.
                    guard let e = try? IndexEntry(decoding: entry) else {
                        caches[user] = nil
                        continue
                    }
                    index.apply(slot: slot, memory: e.memory, terms: e.terms, length: e.length, vector: e.vector)
                case .dropUser(let user):
                    caches[user] = nil
                }
            }
        }
    }

    // MARK: - Reads

    /// Candidates for `query` over the current state, from the in-memory index (loaded on first use).
    public func candidates(_ user: UserRef, _ query: CandidateQuery) throws -> [Candidate] {
        try index(for: user.key)
        return try cacheLock.read {
            guard let index = caches[user.key] else { throw ProjectionError.notFound("user \(user)") }
            let (lexical, dense) = index.lists(query)
            return try read { kv in
                let reader = UserReader(kv: kv, user: user.key)
                _ = try reader.liveUser(user.description)
                return try Scoring.fuse(lexical: lexical, dense: dense, at: query.at, fusion: query.fusion) { slot in
                    guard Int(slot) < index.memories.count, let m = try reader.memoryRecord(index.memories[Int(slot)]) else {
                        throw ProjectionError.corrupt("index slot \(slot) of \(user) names no memory")
                    }
                    return reader.view(m, at: query.at)
                }
            }
        }
    }

    private func index(for user: ID128) throws {
        if cacheLock.read({ caches[user] != nil }) { return }
        // Loading holds the write lock so no fold commits between the load and its registration.
        writeLock.lock()
        defer { writeLock.unlock() }
        if cacheLock.read({ caches[user] != nil }) { return }
        let index = try read { kv in try UserIndex.load(kv, user: user) }
        cacheLock.write { caches[user] = index }
    }

    /// SHA-256 over every table in a fixed order (SPEC.md §11.6): for each table its name, a 0 byte
    /// and the SHA-256 of its entries as length-prefixed key and value. Equal hashes mean equal
    /// projection states. The tables' digests are computed on two threads, each in its own read
    /// transaction; both begin under the write lock, so they see one snapshot.
    public func stateHash() throws -> [UInt8] { try digest(tables: Table.allCases, prefix: []) }

    private func digest(tables: [Table], prefix: [UInt8]) throws -> [UInt8] {
        writeLock.lock()
        var locked = true
        defer { if locked { writeLock.unlock() } }
        return try env.read { first in
            try env.read { second in
                writeLock.unlock()
                locked = false
                let work = TableDigests(tables: tables)
                nonisolated(unsafe) let txns = [first, second]  // one per worker, never shared
                DispatchQueue.concurrentPerform(iterations: 2) { worker in
                    while let (i, t) = work.take() {
                        work.finish(i, Result { try ProjectionStore.tableDigest(txns[worker], self.tables[t], prefix: prefix) })
                    }
                }
                return ProjectionStore.combine(zip(tables, try work.results()).map { ($0, $1) })
            }
        }
    }

    /// SHA-256 over `tables` in order: each table's name, a 0 byte and the digest of its entries
    /// under `prefix` (any store; the live one computes the same in parallel).
    static func hash(_ kv: some KVReading, tables: [Table] = Table.allCases, prefix: [UInt8] = []) throws -> [UInt8] {
        try combine(tables.map { t in
            var h = SHA256()
            try kv.scan(t, prefix: prefix) { k, v in
                k.withUnsafeBytes { k in v.withUnsafeBytes { v in entry(&h, k, v) } }
                return true
            }
            return (t, Array(h.finalize()))
        })
    }

    static func combine(_ digests: [(Table, [UInt8])]) -> [UInt8] {
        var h = SHA256()
        for (t, d) in digests {
            h.update(data: Array(t.description.utf8) + [0])
            h.update(data: d)
        }
        return Array(h.finalize())
    }

    @inline(__always)
    static func entry(_ h: inout SHA256, _ k: UnsafeRawBufferPointer, _ v: UnsafeRawBufferPointer) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 2) { lengths in
            lengths[0] = UInt32(k.count).littleEndian
            lengths[1] = UInt32(v.count).littleEndian
            h.update(bufferPointer: UnsafeRawBufferPointer(lengths))
        }
        h.update(bufferPointer: k)
        h.update(bufferPointer: v)
    }

    /// The digest of one table's entries under `prefix`, read straight from LMDB's pages.
    static func tableDigest(_ txn: ReadTransaction, _ db: Database, prefix: [UInt8]) throws -> [UInt8] {
        var h = SHA256()
        try txn.withCursor(db) { c in
            var e = prefix.isEmpty ? try c.first() : try c.seek(atLeast: prefix)
            while let (k, v) = e, k.starts(with: prefix) {
                entry(&h, k, v)
                e = try c.next()
            }
        }
        return Array(h.finalize())
    }

    /// Events the fold refused, by position.
    public func anomalies(limit: Int = 100) throws -> [(position: Position, reason: String)] {
        try read { kv in
            var out: [(Position, String)] = []
            try kv.scan(.anomalies, prefix: []) { k, v in
                out.append((k.be(0, UInt64.self), String(decoding: v, as: UTF8.self)))
                return out.count < limit
            }
            return out
        }
    }

    public struct Counts: Sendable, Codable {
        public var entries: [String: Int]
        public var bytes: Int
    }

    /// Entries per table and the size of the environment's used pages.
    public func counts() throws -> Counts {
        let info = try env.info()
        return try env.read { txn in
            var entries: [String: Int] = [:]
            for t in Table.allCases { entries[t.description] = try txn.count(tables[t]) }
            return Counts(entries: entries, bytes: info.usedPages * info.pageSize)
        }
    }
}

/// Builds the state of one user as of a journal position or event time, by folding that user's
/// stream prefix into memory. The same fold and reads as the live store, so an as-of answer is
/// exactly the answer the live store gave at that point.
public enum AsOf: Sendable, Equatable, CustomStringConvertible {
    case position(Position)
    /// Event time in µs: every event of the user's stream with a time at or before it.
    case time(Int64)

    public var description: String {
        switch self {
        case .position(let p): "position \(p)"
        case .time(let t): "time \(t)"
        }
    }

    /// Folds `user`'s stream up to this point. Throws if the user has no events by then.
    public func fold(_ user: UserRef, journal: Journal) throws -> MemoryKV {
        let kv = MemoryKV()
        var revision: UInt64 = 0
        while true {
            let page = try journal.read(stream: user.key, fromRevision: revision, limit: 1024)
            guard try fold(user, page, source: journal, into: kv) else { break }
            revision = (page.last?.header.revision ?? 0) + 1
            if page.count < 1024 { break }
        }
        return kv
    }

    /// Folds `user`'s events (the stream from revision 0, in order, read from any journal) up to this
    /// point into memory.
    public func fold(_ user: UserRef, events: [StoredEvent], source: some EventSource) throws -> MemoryKV {
        let kv = MemoryKV()
        _ = try fold(user, events, source: source, into: kv)
        return kv
    }

    /// Folds the events up to this point into `kv`; false once an event lies beyond it.
    private func fold(_ user: UserRef, _ events: [StoredEvent], source: some EventSource, into kv: MemoryKV) throws -> Bool {
        var changes: [IndexChange] = []
        for e in events {
            switch self {
            case .position(let p) where e.position > p: return false
            case .time(let t) where e.header.eventTime > t: return false
            default: break
            }
            let ctx = EventContext(
                position: e.position, time: e.header.eventTime, id: e.header.eventID, causation: e.header.causationID, stream: user.key)
            do {
                guard let payload = try source.readablePayload(of: e),
                    let event = try MemoryEvent.decode(type: e.header.eventType, payload: payload)
                else { continue }
                try Fold.apply(event, ctx, kv, name: { user.stream }, changes: &changes)
            } catch is FoldAnomaly {
                continue
            } catch let m as ProjectionError {
                guard case .malformed = m else { throw m }
                continue
            }
            changes.removeAll()
        }
        return true
    }
}

/// Tables handed out to the state hash's workers, and their digests.
private final class TableDigests: @unchecked Sendable {
    private let lock = NSLock()
    private let tables: [Table]
    private var next = 0
    private var digests: [Result<[UInt8], any Error>?]

    init(tables: [Table]) {
        self.tables = tables
        digests = Array(repeating: nil, count: tables.count)
    }

    func take() -> (Int, Table)? {
        lock.withLock {
            guard next < tables.count else { return nil }
            defer { next += 1 }
            return (next, tables[next])
        }
    }

    func finish(_ i: Int, _ r: Result<[UInt8], any Error>) { lock.withLock { digests[i] = r } }

    func results() throws -> [[UInt8]] { try digests.map { try $0!.get() } }
}

/// A pthread read-write lock.
final class ReadWriteLock: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    init() { pthread_rwlock_init(lock, nil) }
    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }
    func read<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
    func write<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}

extension ProjectionStore {
    public struct RebuildReport: Sendable {
        public var applied: Int
        public var skipped: Int
        public var anomalies: Int
        public var checkpoint: Position
        public var stateHash: [UInt8]
    }

    /// Rebuilds the projections of `journal` from empty into `directory`, replacing what is there.
    /// The new state is built beside it and swapped in by rename, so a crash leaves either the old
    /// or the new store. Nothing may have `directory` open.
    public static func rebuild(
        journal: Journal, directory: String, progress: ((Position, Position) -> Void)? = nil
    ) throws -> RebuildReport {
        let fm = FileManager.default
        let building = directory + ".rebuild", old = directory + ".old"
        try? fm.removeItem(atPath: building)
        try? fm.removeItem(atPath: old)
        let store = try ProjectionStore(directory: building)
        let r: CatchUpReport
        let hash: [UInt8]
        do {
            r = try store.catchUp(journal, pageSize: 2048, progress: progress)
            hash = try store.stateHash()
            store.close()
        } catch {
            store.close()
            try? fm.removeItem(atPath: building)
            throw error
        }
        if fm.fileExists(atPath: directory) { try fm.moveItem(atPath: directory, toPath: old) }
        try fm.moveItem(atPath: building, toPath: directory)
        try? fm.removeItem(atPath: old)
        return RebuildReport(applied: r.applied, skipped: r.skipped, anomalies: r.anomalies, checkpoint: r.checkpoint, stateHash: hash)
    }
}

/// Folds one user's stream from empty, event by event, showing the state after each: what an audit
/// report needs to draw a memory's strength and tier over time.
public enum UserStreamWalk {
    /// Calls `body` after each event of `user`'s stream with the event, its decoded memory event (nil for
    /// events that are not memory events) and a reader of the state after it.
    public static func walk(_ user: UserRef, journal: Journal, _ body: (StoredEvent, MemoryEvent?, UserReader<MemoryKV>) throws -> Void) throws {
        var walk = Walk(user)
        var revision: UInt64 = 0
        while true {
            let page = try journal.read(stream: user.key, fromRevision: revision, limit: 1024)
            for e in page {
                revision = e.header.revision + 1
                try walk.step(e, journal, body)
            }
            if page.count < 1024 { break }
        }
    }

    /// The same walk over a stream read ahead (a cluster's journal of record, SPEC.md §15.5).
    public static func walk(_ user: UserRef, stream: FetchedEvents, _ body: (StoredEvent, MemoryEvent?, UserReader<MemoryKV>) throws -> Void) throws {
        var walk = Walk(user)
        for e in stream.events where e.header.streamID == user.key { try walk.step(e, stream, body) }
    }

    struct Walk {
        let user: UserRef
        let kv = MemoryKV()
        let reader: UserReader<MemoryKV>
        var changes: [IndexChange] = []

        init(_ user: UserRef) {
            self.user = user
            reader = UserReader(kv: kv, user: user.key)
        }

        mutating func step(_ e: StoredEvent, _ source: some EventSource, _ body: (StoredEvent, MemoryEvent?, UserReader<MemoryKV>) throws -> Void) throws {
            let ctx = EventContext(position: e.position, time: e.header.eventTime, id: e.header.eventID, causation: e.header.causationID, stream: user.key)
            var decoded: MemoryEvent?
            do {
                decoded = try source.readablePayload(of: e).flatMap { try MemoryEvent.decode(type: e.header.eventType, payload: $0) }
                if let event = decoded { try Fold.apply(event, ctx, kv, name: { [user] in user.stream }, changes: &changes) }
            } catch is FoldAnomaly {
            } catch let m as ProjectionError {
                guard case .malformed = m else { throw m }
            }
            changes.removeAll()
            try body(e, decoded, reader)
        }
    }
}

/// A fold from empty into memory: the reference a rebuild or an incremental store must equal.
public final class InMemoryFold: @unchecked Sendable {
    public let kv = MemoryKV()
    private var names: [ID128: StreamName] = [:]

    public init() {
        try! kv.put(.meta, Array("format".utf8), Array(ProjectionStore.formatMarker.utf8))
    }

    /// Folds `events` (consecutive, in position order, continuing where the last call ended).
    @discardableResult
    public func apply(_ events: [StoredEvent], journal: some EventSource) throws -> ProjectionStore.CatchUpReport {
        var changes: [IndexChange] = []
        var report = ProjectionStore.CatchUpReport()
        try ProjectionStore.fold(events, journal, kv, names: &names, changes: &changes, report: &report)
        return report
    }

    public func stateHash() throws -> [UInt8] { try ProjectionStore.stateHash(of: kv) }
}
