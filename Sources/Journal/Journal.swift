import Crypto
import Foundation
import LMDB

/// The journal: an append-only, verifiable log of events in one LMDB environment.
///
/// - Every event is one v1 record (SPEC.md §4) under a global position; per-stream revisions, an
///   event-id index and a per-stream SHA-256 hash chain are written in the same transaction.
/// - All writes run on one dedicated writer thread that commits whatever is queued as one group;
///   an append returns only after its commit is durable.
/// - Reads run in short read transactions and copy values out; every record read is CRC-checked.
public final class Journal: @unchecked Sendable {
    public struct Options: Sendable {
        public var initialMapSize: Int = 64 << 20
        public var maxMapSize: Int = 1 << 40
        public var compressionLevel: Int32 = Zstd.defaultLevel
        /// Threads a large append's payloads are compressed on (each thread gets at least 256 events;
        /// the bytes stored are the same for any value). The default leaves one processor to the
        /// writer thread: on 2 cores a second compression thread slowed batched appends by about a
        /// tenth (`psm bench journal --compression-threads 2`: 0.40× raw LMDB against 0.43–0.48× with 1).
        public var compressionThreads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount - 1)
        /// Where the per-stream data keys live (default: `datakeys` beside the journal directory).
        public var dataKeysDirectory: String?
        public init() {}
    }

    /// The names of the LMDB databases (SPEC.md §3).
    enum Names {
        static let events = "events"
        static let eventIDs = "event_ids"
        static let streamRuns = "stream_runs"
        static let streams = "streams"
        static let dictionaries = "dictionaries"
        static let meta = "meta"
    }

    /// The layout marker in `meta` (SPEC.md §3). `psm-journal/1` stores (one `stream_revisions`
    /// entry per event) are rewritten to this layout when opened.
    public static let formatMarker = "psm-journal/2"
    static let previousFormatMarker = "psm-journal/1"

    /// The error for a format marker this version cannot open: another version's marker
    /// (`psm-journal/N`) is the caller's mismatch; anything else is a damaged meta table, reported as
    /// corruption (exit 65), not as a usage error. A flipped bit in the marker is the second kind.
    static func unknownFormat(_ found: String, directory: String) -> JournalError {
        let prefix = "psm-journal/"
        if found.hasPrefix(prefix), let n = Int(found.dropFirst(prefix.count)), n > 0 {
            return .invalidArgument("\(directory) holds a \(found) journal; this psm reads \(formatMarker) (and migrates \(previousFormatMarker))")
        }
        return .corruptIndex(position: nil, "the format marker in \(directory) is \(String(found.prefix(64)).debugDescription), not \(formatMarker): the meta table is damaged")
    }

    public let directory: String
    let env: Environment
    let events: Database
    let eventIDs: Database
    let streamRuns: Database
    let streams: Database
    let dictionaries: Database
    let meta: Database
    let options: Options
    let codecs: CodecPool
    var writer: WriterThread!
    /// The per-stream data keys that encrypted payloads are sealed with.
    public let dataKeys: DataKeys
    /// The greatest key of `event_ids` in the writer's open transaction (writer thread only; see
    /// `putEventID`).
    private var greatestEventID: EventID?
    /// Set by the writer thread after a fatal commit error; every later write fails.
    private let poisonLock = NSLock()
    private var poison: String?

    /// Opens (creating if needed) the journal environment in `directory`.
    public init(directory: String, options: Options = Options()) throws {
        self.directory = directory
        self.options = options
        let parent = (URL(fileURLWithPath: directory).standardizedFileURL.deletingLastPathComponent().path as NSString).standardizingPath
        dataKeys = DataKeys(directory: options.dataKeysDirectory ?? parent + "/datakeys")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var envOptions = Environment.Options()
        envOptions.mapSize = options.initialMapSize
        envOptions.maxMapSize = options.maxMapSize
        envOptions.maxDatabases = 8
        let env = try Environment(path: directory, options: envOptions)
        self.env = env
        do {
            // Databases are opened once, on this thread, before the writer thread exists.
            events = try env.openDatabase(Names.events)
            eventIDs = try env.openDatabase(Names.eventIDs)
            streamRuns = try env.openDatabase(Names.streamRuns, flags: [.create, .dupSort, .dupFixed])
            streams = try env.openDatabase(Names.streams)
            dictionaries = try env.openDatabase(Names.dictionaries)
            meta = try env.openDatabase(Names.meta)
            let (events, meta, streamRuns) = (self.events, self.meta, self.streamRuns)
            try env.write { txn in
                if let marker = try txn.get(meta, Array("format".utf8)) {
                    let found = String(decoding: marker, as: UTF8.self)
                    if found == Journal.previousFormatMarker {
                        _ = try Journal.migrateStreamIndex(txn, runs: streamRuns, meta: meta)
                        return
                    }
                    guard found == Journal.formatMarker else { throw Journal.unknownFormat(found, directory: directory) }
                } else {
                    guard try txn.count(events) == 0 else {
                        throw JournalError.corruptIndex(position: nil, "events exist but the format marker is missing")
                    }
                    try txn.put(meta, Array("format".utf8), Array(Journal.formatMarker.utf8))
                }
            }
            let active = try env.read { txn in try txn.get(meta, Array("active_dictionary".utf8)).map { $0.le(0, UInt32.self) } }
            codecs = CodecPool(level: options.compressionLevel)
            if let active, active != 0 {
                codecs.setActive(id: active, bytes: try loadDictionary(active))
            }
        } catch {
            env.close()
            throw error
        }
        writer = WriterThread(name: "psm-journal-writer") { [unowned self] group in self.commit(group) }
    }

    deinit { close() }

    /// Waits for queued appends, stops the writer thread and closes the environment.
    public func close() {
        writer?.stop()
        env.close()
    }

    public var staleReadersCleared: Int32 { env.staleReadersCleared }

    // MARK: - Append

    /// Appends `requests` atomically (all or none) and returns once the commit is durable.
    public func append(_ requests: [AppendRequest]) async throws(JournalError) -> [AppendResult] {
        let result: Result<[AppendResult], JournalError> = await withCheckedContinuation { cont in
            append(requests) { cont.resume(returning: $0) }
        }
        return try result.get()
    }

    public func append(_ request: AppendRequest) async throws(JournalError) -> AppendResult {
        try await append([request])[0]
    }

    /// Queues `requests` and calls `completion` on the writer thread once the commit is durable (or failed).
    /// Lets one caller keep several appends in flight, so preparing the next overlaps committing this one.
    public func append(_ requests: [AppendRequest], completion: @escaping @Sendable (Result<[AppendResult], JournalError>) -> Void) {
        let prepared: [PreparedRequest]
        do { prepared = try prepare(requests) } catch { completion(.failure(error)); return }
        let pending = PendingAppend(requests: prepared, complete: completion)
        if !writer.submit(pending) { pending.finish(.failure(.closed)) }
    }

    /// Blocking form of ``append(_:)-6q1bt`` for threads that are not running Swift tasks.
    public func appendBlocking(_ requests: [AppendRequest]) throws(JournalError) -> [AppendResult] {
        let box = AppendOutcome()
        let sem = DispatchSemaphore(value: 0)
        append(requests) { r in
            box.result = r
            sem.signal()
        }
        sem.wait()
        return try box.result!.get()
    }

    /// Validates and compresses on the caller's thread (a large append on up to
    /// ``Options/compressionThreads`` threads), so the writer thread only assigns positions.
    func prepare(_ requests: [AppendRequest]) throws(JournalError) -> [PreparedRequest] {
        guard !requests.isEmpty else { throw .invalidArgument("an append needs at least one request") }
        var total = 0
        for request in requests { total += request.events.count }
        var seen = Set<EventID>(minimumCapacity: total)
        var flat: [EventData] = []
        flat.reserveCapacity(total)
        for (ri, request) in requests.enumerated() {
            guard !request.events.isEmpty else { throw .invalidArgument("request \(ri) for stream \(request.stream) has no events") }
            for (ei, e) in request.events.enumerated() {
                var at: String { "request \(ri) event \(ei) (id \(e.id))" }
                guard !e.id.isZero else { throw .invalidArgument("\(at): the event id must not be zero") }
                guard e.type != 0 else { throw .invalidArgument("\(at): event type 0 is invalid") }
                guard e.payload.count <= RecordFormat.maxPayloadSize else {
                    throw .invalidArgument("\(at): payload of \(e.payload.count) bytes exceeds \(RecordFormat.maxPayloadSize)")
                }
                guard seen.insert(e.id).inserted else { throw .invalidArgument("\(at): event id repeated within one append") }
                do { try PayloadReader.validate(e.payload) } catch { throw .invalidArgument("\(at): \(error)") }
                flat.append(e)
            }
        }
        let compressed = try codecs.prepareAll(flat, threads: options.compressionThreads)
        var out: [PreparedRequest] = []
        out.reserveCapacity(requests.count)
        var next = 0
        for (ri, request) in requests.enumerated() {
            var events = Array(compressed[next..<(next + request.events.count)])
            next += request.events.count
            if request.encrypted {
                for ei in events.indices {
                    let e = events[ei].data
                    do {
                        let (keyID, key) = try dataKeys.current(for: request.stream.id)
                        let ad = DataKeys.associatedData(stream: request.stream.id, event: e.id, type: e.type, time: e.time, keyID: keyID)
                        events[ei].stored = try DataKeys.sealPayload(events[ei].stored, key: key, ad: ad)[...]
                        events[ei].keyID = keyID
                    } catch let error as JournalError {
                        throw error
                    } catch {
                        throw .invalidArgument("request \(ri) event \(ei) (id \(e.id)): cannot encrypt: \(error)")
                    }
                }
            }
            out.append(PreparedRequest(stream: request.stream, expected: request.expected, events: events))
        }
        return out
    }

    private func poisoned() -> String? {
        poisonLock.lock(); defer { poisonLock.unlock() }
        return poison
    }

    /// Runs on the writer thread: one write transaction for the whole group. The group is first tried
    /// without nesting; if a caller's request fails a check, the group is redone with a nested
    /// transaction per caller, so one caller's conflict never fails or half-applies another's.
    private func commit(_ group: [PendingAppend]) {
        if let reason = poisoned() {
            for p in group { p.finish(.failure(.mustReopen(reason))) }
            return
        }
        var nested = false
        while true {
            var outcomes: [Result<[AppendResult], JournalError>] = []
            do {
                try env.write { txn in
                    outcomes.removeAll()
                    var next = try lastPosition(txn) + 1
                    greatestEventID = try txn.withCursor(eventIDs) { c in
                        try c.last().map { $0.key.count == 16 ? ID128(bytes: $0.key) : .zero }
                    }
                    if !nested {
                        for p in group {
                            do {
                                outcomes.append(.success(try apply(p.requests, txn, &next)))
                            } catch let e as JournalError {
                                outcomes.append(.failure(e))
                                throw LogicalFailure()
                            }
                        }
                    } else {
                        for p in group {
                            var local = next
                            do {
                                let r = try txn.nested { child in try apply(p.requests, child, &local) }
                                next = local
                                outcomes.append(.success(r))
                            } catch let e as JournalError {
                                outcomes.append(.failure(e))
                            }
                        }
                    }
                }
            } catch is LogicalFailure {
                // A check failed and the transaction was aborted. Alone, the caller gets its error;
                // in a group, redo with nesting so the others still commit.
                if group.count > 1 {
                    nested = true
                    continue
                }
            } catch let e as LMDBError where e.isMapFull {
                do {
                    try env.growMap()
                    continue
                } catch {
                    outcomes = group.map { _ in .failure(.storage(e)) }
                }
            } catch let e as LMDBError {
                if e.isFatal || e.operation.hasPrefix("mdb_txn_commit") {
                    poisonLock.lock(); poison = e.description; poisonLock.unlock()
                    outcomes = group.map { _ in .failure(.mustReopen(e.description)) }
                } else {
                    outcomes = group.map { _ in .failure(.storage(e)) }
                }
            } catch let e as JournalError {
                outcomes = group.map { _ in .failure(e) }
            } catch {
                outcomes = group.map { _ in .failure(.invalidArgument("\(error)")) }
            }
            for (p, o) in zip(group, outcomes) { p.finish(o) }
            return
        }
    }

    private struct LogicalFailure: Error {}

    func lastPosition(_ txn: some TransactionReading) throws -> Position {
        try txn.withCursor(events) { c in
            guard let (key, _) = try c.last() else { return 0 }
            guard key.count == 8 else { throw JournalError.corruptIndex(position: nil, "event key of \(key.count) bytes") }
            return key.be(0, UInt64.self)
        }
    }

    /// Applies one caller's requests inside `txn`, advancing `next`.
    private func apply(_ requests: [PreparedRequest], _ txn: WriteTransaction, _ next: inout Position) throws -> [AppendResult] {
        var results: [AppendResult] = []
        for request in requests {
            results.append(try apply(request, txn, &next))
        }
        return results
    }

    /// If the request's events are already in the journal, the original result (a retry); nil if none is.
    /// Throws when only some are, or when one differs from what was stored under its id.
    private func duplicateResult(_ request: PreparedRequest, _ txn: WriteTransaction) throws -> AppendResult? {
        var existing: [Position] = []
        for e in request.events {
            if let v = try e.data.id.withBytes({ try txn.get(eventIDs, $0) }) {
                guard v.count == 8 else { throw JournalError.corruptIndex(position: nil, "event id \(e.data.id): index value of \(v.count) bytes") }
                existing.append(v.be(0, UInt64.self))
            }
        }
        if existing.isEmpty { return nil }
        guard existing.count == request.events.count else {
            throw JournalError.partialDuplicate(eventID: request.events[0].data.id, position: existing[0])
        }
        var firstRevision: UInt64 = 0
        for (i, (e, position)) in zip(request.events, existing).enumerated() {
            let stored = try readRecord(txn, position)
            if let difference = try difference(stored, e.data, request.stream.id) {
                throw JournalError.eventIDConflict(eventID: e.data.id, position: position, differs: difference)
            }
            if i == 0 { firstRevision = stored.header.revision }
        }
        return AppendResult(stream: request.stream, firstRevision: firstRevision, positions: existing, wasDuplicate: true)
    }

    private func apply(_ request: PreparedRequest, _ txn: WriteTransaction, _ next: inout Position) throws -> AppendResult {
        let sid = request.stream.id
        let sidBytes = sid.bytes
        var info = try txn.get(streams, sidBytes).map { try StreamInfo.decode($0, id: sid) }
        let current: UInt64? = info.flatMap { $0.nextRevision == 0 ? nil : $0.nextRevision - 1 }
        switch request.expected {
        case .any: break
        case .noStream where current == nil: break
        case .exact(let r) where current == r: break
        default:
            // A retry of a committed request meets the revision check first: look its ids up before
            // reporting a conflict.
            if let r = try duplicateResult(request, txn) { return r }
            throw JournalError.wrongExpectedRevision(stream: request.stream.description, expected: request.expected, actual: current)
        }
        if info == nil {
            info = StreamInfo(stream: request.stream, nextRevision: 0, head: [UInt8](repeating: 0, count: 32), firstPosition: next, lastPosition: 0)
        }
        var stream = info!
        let firstRevision = stream.nextRevision
        var positions: [Position] = []
        positions.reserveCapacity(request.events.count)
        var key = [UInt8](repeating: 0, count: 8)
        let firstPosition = next
        for e in request.events {
            let header = RecordHeader(
                flags: e.flags, eventType: e.data.type, storedLength: UInt32(e.stored.count),
                uncompressedLength: e.uncompressedLength ?? UInt32(e.data.payload.count), keyID: e.keyID, dictionaryID: e.dictionaryID,
                eventTime: e.data.time, revision: stream.nextRevision, streamID: sid, eventID: e.data.id,
                causationID: e.data.causation)
            key.withUnsafeMutableBytes { $0.storeBytes(of: next.bigEndian, as: UInt64.self) }
            // Exactly-once: the event-id index is written first, so a known id is found before anything
            // of its event is written. The first event known means a retry (or a conflict); a later one
            // means some events are new, and throwing rolls back the ones already written.
            do {
                try putEventID(txn, e.data.id, key)
            } catch let error as LMDBError where error.isKeyExists {
                if positions.isEmpty, let r = try duplicateResult(request, txn) { return r }
                throw JournalError.partialDuplicate(eventID: e.data.id, position: try eventPosition(txn, e.data.id) ?? 0)
            }
            // The record is encoded straight into the space LMDB reserves for it, and chained there.
            let size = RecordCodec.encodedSize(header, storedCount: e.stored.count)
            stream.head = try key.withUnsafeBytes { k in
                try txn.put(events, k, reserving: size, .append) { slot in
                    e.stored.withUnsafeBytes { RecordCodec.encode(header, storedPayload: $0, into: slot) }
                    return Journal.chain(stream.head, UnsafeRawBufferPointer(slot))
                }
            }
            stream.lastPosition = next
            stream.nextRevision += 1
            positions.append(next)
            next += 1
        }
        // One index entry for the request's run of consecutive revisions and positions (§3.5). Revisions
        // only grow, so each stream's list is appended to (pages fill completely).
        let run = StreamRun(firstRevision: firstRevision, firstPosition: firstPosition, count: UInt64(positions.count))
        try txn.put(streamRuns, sidBytes, run.encoded, [.appendDup, .noDupData])
        try txn.put(streams, sidBytes, stream.encoded())
        return AppendResult(stream: request.stream, firstRevision: firstRevision, positions: positions, wasDuplicate: false)
    }

    /// Writes id → position. Time-ordered ids (``ID128/timeOrdered(timeMicros:entropy:)``) usually sort
    /// after every id already stored, so the put is first tried as an append, which fills pages
    /// completely instead of splitting them in half; any other id takes the ordinary insert. Both
    /// refuse an id that exists.
    ///
    /// Whether to try the append is decided from ``greatestEventID`` (the last key, read once per
    /// group and advanced by each put), so an id that sorts earlier goes straight to the insert instead
    /// of failing an append first: a batch grouped by stream has ids out of order. The hint only picks
    /// the path; LMDB still decides (an append it refuses is retried as an insert).
    private func putEventID(_ txn: WriteTransaction, _ id: EventID, _ position: [UInt8]) throws {
        try id.withBytes { idBytes in
            try position.withUnsafeBytes { p in
                if greatestEventID.map({ id > $0 }) ?? true {
                    do {
                        try txn.put(eventIDs, idBytes, p, [.append, .noOverwrite])
                    } catch let e as LMDBError where e.isKeyExists {
                        try txn.put(eventIDs, idBytes, p, .noOverwrite)
                    }
                    greatestEventID = id
                } else {
                    try txn.put(eventIDs, idBytes, p, .noOverwrite)
                }
            }
        }
    }

    private func eventPosition(_ txn: some TransactionReading, _ id: EventID) throws -> Position? {
        try id.withBytes { try txn.get(eventIDs, $0) }.map { $0.count == 8 ? $0.be(0, UInt64.self) : 0 }
    }

    /// The chain value after `record`: SHA-256(previous chain value ‖ record bytes) (SPEC.md §4.5).
    public static func chain(_ previous: [UInt8], _ record: [UInt8]) -> [UInt8] {
        record.withUnsafeBytes { chain(previous, $0) }
    }

    public static func chain(_ previous: [UInt8], _ record: UnsafeRawBufferPointer) -> [UInt8] {
        var h = SHA256()
        previous.withUnsafeBytes { h.update(bufferPointer: $0) }
        h.update(bufferPointer: record)
        return h.finalize().withUnsafeBytes { Array($0) }
    }

    /// Why a stored event differs from `data`, or nil when it is the same event.
    private func difference(_ stored: StoredEvent, _ data: EventData, _ sid: ID128) throws -> String? {
        if stored.header.streamID != sid { return "stream \(stored.header.streamID) vs \(sid)" }
        if stored.header.eventType != data.type { return "type \(stored.header.eventType) vs \(data.type)" }
        if stored.header.eventTime != data.time { return "event time \(stored.header.eventTime) vs \(data.time)" }
        if stored.header.causationID != data.causation { return "causation \(stored.header.causationID) vs \(data.causation)" }
        let payload = try self.payload(of: stored)
        if payload != data.payload { return "payload of \(payload.count) vs \(data.payload.count) bytes" }
        return nil
    }

    // MARK: - Read

    func readRecord(_ txn: some TransactionReading, _ position: Position) throws -> StoredEvent {
        guard let value = try txn.get(events, bigEndianBytes(position)) else {
            throw JournalError.corruptIndex(position: position, "no record at position \(position)")
        }
        return try decodeStored(value, position)
    }

    func decodeStored(_ value: UnsafeRawBufferPointer, _ position: Position) throws(JournalError) -> StoredEvent {
        do {
            let header = try RecordCodec.decode(value, position: position)
            return StoredEvent(position: position, header: header, record: Array(value))
        } catch {
            throw .corruptRecord(error)
        }
    }

    public enum Direction: Sendable { case forward, backward }

    /// Up to `limit` events starting at `position` (inclusive), in position order or newest first.
    public func read(from position: Position, limit: Int, direction: Direction = .forward) throws -> [StoredEvent] {
        guard limit > 0 else { return [] }
        return try env.read { txn in
            try txn.withCursor(events) { c in
                var out: [StoredEvent] = []
                var entry = try c.seek(atLeast: bigEndianBytes(position))
                if direction == .backward {
                    if entry == nil { entry = try c.last() } else if entry!.key.be(0, UInt64.self) > position { entry = try c.previous() }
                }
                while let (k, v) = entry, out.count < limit {
                    out.append(try decodeStored(v, k.be(0, UInt64.self)))
                    entry = direction == .forward ? try c.next() : try c.previous()
                }
                return out
            }
        }
    }

    /// Visits every event from `position` on, in pages of `pageSize` short read transactions.
    /// `body` returns false to stop.
    public func scan(from position: Position = 1, pageSize: Int = 4096, _ body: (StoredEvent) throws -> Bool) throws {
        var next = position
        while true {
            let page = try read(from: next, limit: pageSize)
            for e in page where try !body(e) { return }
            guard let last = page.last, page.count == pageSize else { return }
            next = last.position + 1
        }
    }

    /// Up to `limit` events of `stream` from revision `from` (inclusive), oldest or newest first.
    public func read(stream: ID128, fromRevision from: UInt64, limit: Int, direction: Direction = .forward) throws -> [StoredEvent] {
        guard limit > 0 else { return [] }
        let sidBytes = stream.bytes
        return try env.read { txn in
            try txn.withCursor(streamRuns) { c in
                var out: [StoredEvent] = []
                // Newest first: the last run starting at or before `from`. Oldest first: that run if it
                // holds `from`, else the first run after it.
                var run = try floorRun(c, stream: stream, sid: sidBytes, from)
                if direction == .forward, !(run?.contains(from) ?? false) {
                    run = try (run == nil ? c.seek(key: sidBytes, valueAtLeast: StreamRun.probe(from)) : c.nextDuplicate())
                        .map { try StreamRun($0.value, stream: stream) }
                }
                while let r = run, out.count < limit {
                    var revision = direction == .forward ? max(from, r.firstRevision) : min(from, r.lastRevision)
                    while r.contains(revision), out.count < limit {
                        let position = r.position(of: revision)
                        let e = try readRecord(txn, position)
                        guard e.header.streamID == stream, e.header.revision == revision else {
                            throw JournalError.corruptIndex(
                                position: position,
                                "stream index says \(stream) revision \(revision), record says \(e.header.streamID) revision \(e.header.revision)")
                        }
                        out.append(e)
                        if direction == .forward { revision += 1 } else if revision == 0 { break } else { revision -= 1 }
                    }
                    run = try (direction == .forward ? c.nextDuplicate() : c.previousDuplicate()).map { try StreamRun($0.value, stream: stream) }
                }
                return out
            }
        }
    }

    /// The event with id `id`, if any.
    public func event(id: EventID) throws -> StoredEvent? {
        try env.read { txn in
            guard let v = try txn.get(eventIDs, id.bytes) else { return nil }
            guard v.count == 8 else { throw JournalError.corruptIndex(position: nil, "event id \(id): index value of \(v.count) bytes") }
            return try readRecord(txn, v.be(0, UInt64.self))
        }
    }

    public func streamInfo(_ id: ID128) throws -> StreamInfo? {
        try env.read { txn in try txn.get(streams, id.bytes).map { try StreamInfo.decode($0, id: id) } }
    }

    /// Up to `limit` streams in stream-id order, starting after `after`.
    public func streams(after: ID128? = nil, limit: Int = 1000) throws -> [StreamInfo] {
        try env.read { txn in
            try txn.withCursor(streams) { c in
                var out: [StreamInfo] = []
                var entry = try after.map { a in try c.seek(atLeast: a.bytes).flatMap { ID128(bytes: $0.key) == a ? try c.next() : $0 } } ?? c.first()
                while let (k, v) = entry, out.count < limit {
                    guard k.count == 16 else { throw JournalError.corruptIndex(position: nil, "stream key of \(k.count) bytes") }
                    out.append(try StreamInfo.decode(v, id: ID128(bytes: k)))
                    entry = try c.next()
                }
                return out
            }
        }
    }

    /// The uncompressed payload of `event`, decompressed with bounds from its (validated) header.
    public func payload(of event: StoredEvent) throws -> [UInt8] {
        var stored = event.storedPayload
        if event.header.keyID != 0 {
            let h = event.header
            guard let key = try dataKeys.key(h.streamID, h.keyID) else {
                throw JournalError.keyUnavailable(position: event.position, stream: h.streamID, keyID: h.keyID)
            }
            let ad = DataKeys.associatedData(stream: h.streamID, event: h.eventID, type: h.eventType, time: h.eventTime, keyID: h.keyID)
            do {
                stored = ArraySlice(try DataKeys.unseal(stored, key: key, ad: ad))
            } catch {
                throw JournalError.payload(position: event.position, "decryption failed: the sealed payload or its record identity was altered")
            }
            guard event.header.isCompressed || stored.count == Int(h.uncompressedLength) else {
                throw JournalError.payload(position: event.position, "decrypted \(stored.count) bytes, expected \(h.uncompressedLength)")
            }
        }
        guard event.header.isCompressed else { return Array(stored) }
        let dictionary = event.header.dictionaryID
        do {
            let bytes = dictionary == 0 ? nil : try loadDictionary(dictionary)
            return try codecs.decompress(
                stored, size: Int(event.header.uncompressedLength), dictionaryID: dictionary, dictionary: bytes)
        } catch let e as JournalError {
            throw e
        } catch {
            throw JournalError.payload(position: event.position, "\(error)")
        }
    }

    // MARK: - Dictionaries

    /// Trains a zstd dictionary on `samples`, stores it (immutable, SPEC.md §3.5) and makes it the one new
    /// appends compress with. Returns its id.
    @discardableResult
    public func trainDictionary(samples: [[UInt8]], capacity: Int = 16 << 10) throws -> UInt32 {
        guard samples.count >= 8 else { throw JournalError.invalidArgument("dictionary training needs at least 8 samples, got \(samples.count)") }
        guard (1 << 10)...(1 << 20) ~= capacity else { throw JournalError.invalidArgument("dictionary capacity \(capacity) outside 1 KiB...1 MiB") }
        let dict = try Zstd.trainDictionary(samples: samples, capacity: capacity)
        let (dictionaries, meta) = (self.dictionaries, self.meta)
        let id: UInt32 = try writer.sync { [env] in
            try env.write { txn in
                let id = try txn.withCursor(dictionaries) { c in try c.last().map { $0.key.be(0, UInt32.self) } ?? 0 } + 1
                var key = [UInt8](); key.appendBE(id)
                try txn.put(dictionaries, key, dict, .noOverwrite)
                var v = [UInt8](); v.appendLE(id)
                try txn.put(meta, Array("active_dictionary".utf8), v)
                return id
            }
        }
        codecs.setActive(id: id, bytes: dict)
        return id
    }

    private let dictionaryCache = DictionaryCache()

    func loadDictionary(_ id: UInt32) throws -> [UInt8] {
        if let d = dictionaryCache.get(id) { return d }
        var key = [UInt8](); key.appendBE(id)
        let bytes = try env.read { txn in try txn.get(dictionaries, key).map { Array($0) } }
        guard let bytes else { throw JournalError.corruptIndex(position: nil, "dictionary \(id) is referenced but not stored") }
        dictionaryCache.set(id, bytes)
        return bytes
    }

    public var activeDictionaryID: UInt32 { codecs.activeID }
}

/// Carries a completion's result to a thread blocked on a semaphore.
final class AppendOutcome: @unchecked Sendable {
    var result: Result<[AppendResult], JournalError>?
}

final class DictionaryCache: @unchecked Sendable {
    private let lock = NSLock()
    private var map: [UInt32: [UInt8]] = [:]
    func get(_ id: UInt32) -> [UInt8]? { lock.lock(); defer { lock.unlock() }; return map[id] }
    func set(_ id: UInt32, _ b: [UInt8]) { lock.lock(); defer { lock.unlock() }; map[id] = b }
}

struct PreparedEvent: Sendable {
    var data: EventData
    var flags: UInt8
    var dictionaryID: UInt32
    /// The bytes the record stores: the payload, its zstd frame (a slice of the buffer its part of the
    /// batch was compressed into) or its sealed form.
    var stored: ArraySlice<UInt8>
    var keyID: UInt32 = 0
    /// The payload's length, noted when it is prepared (and by import for a shredded record, whose
    /// payload cannot be read to measure it).
    var uncompressedLength: UInt32? = nil
}

struct PreparedRequest: Sendable {
    var stream: StreamName
    var expected: ExpectedRevision
    var events: [PreparedEvent]
}

extension Journal {
    /// The stored bytes of dictionary `id`.
    public func dictionaryBytes(_ id: UInt32) throws -> [UInt8] { try loadDictionary(id) }
}
