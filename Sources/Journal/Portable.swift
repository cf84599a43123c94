import Crypto
import Foundation
import LMDB

/// The portable journal file (SPEC.md §4.6): a verifiable copy of a journal, its records byte for
/// byte, that `importing` reproduces exactly (same positions, revisions, chain heads).
///
/// Layout: magic "PSMX", version 1, three zero bytes; then frames `kind u8 ‖ length u32 BE ‖ body`:
/// `D` dictionary (id u32 BE ‖ bytes), `K` data key (stream id 16 ‖ key id u32 BE ‖ key 32), `S` stream (id 16 ‖ tenant length u8 ‖ tenant ‖ name), `R` record
/// (§4.1 bytes), and last `E` end (records u64 BE ‖ last position u64 BE ‖ SHA-256 of every byte
/// before this frame). Dictionaries come first; a stream's `S` comes before its first record.
public enum PortableJournal {
    public static let magic: [UInt8] = Array("PSMX".utf8)
    public static let version: UInt8 = 1
    static let maxDictionary = (1 << 20) + 4
    static let maxStream = 16 + 1 + 2 * StreamName.maxComponentBytes
    static let maxRecord = 2 * RecordFormat.maxPayloadSize + 256

    public struct Summary: Sendable {
        public var records: UInt64 = 0
        public var lastPosition: Position = 0
        public var dictionaries = 0
        public var keys = 0
        public var streams = 0
        public var bytes: UInt64 = 0
        public var sha256: [UInt8] = []
    }

    /// Writes every event of `journal` up to its last position now to `sink`, in position order.
    public static func export(_ journal: Journal, progress: ((Position, Position) -> Void)? = nil, sink: ([UInt8]) throws -> Void) throws -> Summary {
        var hash = SHA256()
        var summary = Summary()
        func emit(_ bytes: [UInt8]) throws {
            hash.update(data: bytes)
            summary.bytes += UInt64(bytes.count)
            try sink(bytes)
        }
        func frame(_ kind: UInt8, _ body: [UInt8]) throws {
            var f: [UInt8] = [kind]
            f.appendBE(UInt32(body.count))
            try emit(f + body)
        }
        try emit(magic + [version, 0, 0, 0])
        for (id, bytes) in try journal.allDictionaries() {
            var body: [UInt8] = []
            body.appendBE(id)
            try frame(0x44, body + bytes)
            summary.dictionaries += 1
        }
        for (stream, keyID, key) in try journal.dataKeys.all() {
            var body = stream.bytes
            body.appendBE(keyID)
            try frame(0x4B, body + key)
            summary.keys += 1
        }
        let end = try journal.stats().lastPosition
        var named = Set<ID128>()
        var from: Position = 1
        while from <= end {
            let page = try journal.read(from: from, limit: 1024)
            guard let last = page.last else { break }
            for e in page where e.position <= end {
                guard e.position == summary.lastPosition + 1 else {
                    throw JournalError.corruptIndex(position: e.position, "positions jump from \(summary.lastPosition) to \(e.position)")
                }
                let sid = e.header.streamID
                if named.insert(sid).inserted {
                    guard let info = try journal.streamInfo(sid) else { throw JournalError.corruptIndex(position: e.position, "stream \(sid) has no entry") }
                    var body = sid.bytes
                    body.append(UInt8(info.stream.tenant.utf8.count))
                    body += Array(info.stream.tenant.utf8) + Array(info.stream.name.utf8)
                    try frame(0x53, body)
                    summary.streams += 1
                }
                try frame(0x52, e.record)
                summary.records += 1
                summary.lastPosition = e.position
            }
            from = last.position + 1
            progress?(min(last.position, end), end)
        }
        let digest = Array(hash.finalize())
        var body: [UInt8] = []
        body.appendBE(summary.records)
        body.appendBE(summary.lastPosition)
        var f: [UInt8] = [0x45]
        f.appendBE(UInt32(body.count + 32))
        try sink(f + body + digest)
        summary.bytes += UInt64(f.count + body.count + 32)
        summary.sha256 = digest
        return summary
    }

    public enum Frame: Sendable {
        case dictionary(UInt32, [UInt8])
        case key(ID128, UInt32, [UInt8])
        case stream(StreamName)
        case record([UInt8])
    }

    /// Reads a portable file frame by frame. Every length is bounded before allocating; the end
    /// frame's checksum and counts are checked when it is reached.
    public struct Reader {
        let handle: FileHandle
        var hash = SHA256()
        var summary = Summary()
        var offset: UInt64 = 0
        public private(set) var finished = false

        public init(path: String) throws {
            guard let h = FileHandle(forReadingAtPath: path) else { throw JournalError.invalidArgument("cannot open \(path)") }
            handle = h
            let head = try read(8, hashed: true)
            guard Array(head.prefix(4)) == PortableJournal.magic else {
                throw JournalError.invalidArgument("\(path) is not a portable journal: magic \(hexBytes(Array(head.prefix(4)))), expected 50534d58 (\"PSMX\")")
            }
            guard head[4] == PortableJournal.version, head[5...7].allSatisfy({ $0 == 0 }) else {
                throw JournalError.invalidArgument("\(path): version \(head[4]) (this psm reads version 1) or nonzero reserved bytes")
            }
        }

        mutating func read(_ n: Int, hashed: Bool) throws -> [UInt8] {
            let d = try handle.read(upToCount: n) ?? Data()
            guard d.count == n else { throw JournalError.invalidArgument("truncated portable journal: wanted \(n) bytes at offset \(offset), found \(d.count)") }
            let bytes = [UInt8](d)
            if hashed { hash.update(data: bytes) }
            offset += UInt64(n)
            return bytes
        }

        /// The next frame, or nil after a valid end frame.
        public mutating func next() throws -> Frame? {
            guard !finished else { return nil }
            let at = offset
            let head = try read(5, hashed: false)
            let kind = head[0]
            let length = Int(head.be(1, UInt32.self))
            func bad(_ m: String) -> JournalError { .invalidArgument("portable journal, frame at offset \(at): \(m)") }
            let limit: Int
            switch kind {
            case 0x44: limit = PortableJournal.maxDictionary
            case 0x53: limit = PortableJournal.maxStream
            case 0x52: limit = PortableJournal.maxRecord
            case 0x45: limit = 48
            case 0x4B: limit = 52
            default: throw bad("unknown frame kind 0x\(String(kind, radix: 16)) (expected D, K, S, R or E)")
            }
            guard length <= limit else { throw bad("length \(length) exceeds \(limit) for its kind") }
            if kind == 0x45 {
                guard length == 48 else { throw bad("end frame of \(length) bytes, expected 48") }
                let expectedDigest = Array(hash.finalize())
                let body = try read(48, hashed: false)
                let records = body.be(0, UInt64.self), last = body.be(8, UInt64.self)
                guard Array(body[16..<48]) == expectedDigest else { throw bad("checksum mismatch: the file was changed or damaged") }
                guard records == summary.records, last == summary.lastPosition else {
                    throw bad("end frame says \(records) records to position \(last), the file holds \(summary.records) to \(summary.lastPosition)")
                }
                guard (try handle.read(upToCount: 1) ?? Data()).isEmpty else { throw bad("bytes after the end frame") }
                summary.sha256 = expectedDigest
                summary.bytes = offset
                finished = true
                return nil
            }
            hash.update(data: head)
            let body = try read(length, hashed: true)
            switch kind {
            case 0x44:
                guard body.count > 4 else { throw bad("empty dictionary") }
                summary.dictionaries += 1
                return .dictionary(body.be(0, UInt32.self), Array(body[4...]))
            case 0x4B:
                guard body.count == 52 else { throw bad("key frame of \(body.count) bytes, expected 52") }
                summary.keys += 1
                return .key(ID128(bytes: Array(body[0..<16])), body.be(16, UInt32.self), Array(body[20..<52]))
            case 0x53:
                guard body.count >= 17, 17 + Int(body[16]) <= body.count else { throw bad("stream frame too short") }
                let t = Int(body[16])
                let tenant = String(decoding: body[17..<(17 + t)], as: UTF8.self), name = String(decoding: body[(17 + t)...], as: UTF8.self)
                let stream = try StreamName(tenant: tenant, name: name)
                guard stream.id == ID128(bytes: Array(body[0..<16])) else { throw bad("stream id does not match its name") }
                summary.streams += 1
                return .stream(stream)
            default:
                summary.records += 1
                summary.lastPosition += 1
                return .record(body)
            }
        }

        public var progress: Summary { summary }
        public func close() { try? handle.close() }
    }

    /// Checks a whole file (every frame, every record's CRC and the end checksum) without writing anything.
    public static func check(path: String) throws -> Summary {
        var r = try Reader(path: path)
        defer { r.close() }
        while let f = try r.next() {
            if case .record(let bytes) = f {
                do { _ = try RecordCodec.decode(bytes, position: r.progress.lastPosition) } catch { throw JournalError.corruptRecord(error) }
            }
        }
        return r.progress
    }

    /// Imports the file into `journal`, which must be empty: dictionaries under their ids, then the
    /// records byte for byte in order, in appends of up to `batch` records. Positions, revisions and
    /// chain heads come out identical to the exported journal's.
    public static func importFile(path: String, into journal: Journal, batch: Int = 512, progress: ((UInt64) -> Void)? = nil) throws -> Summary {
        guard try journal.stats().lastPosition == 0 else { throw JournalError.invalidArgument("import needs an empty journal; this one has events") }
        var r = try Reader(path: path)
        defer { r.close() }
        var names: [ID128: StreamName] = [:]
        var pending: [[UInt8]] = []
        func flush() throws {
            guard !pending.isEmpty else { return }
            try journal.importRecords(pending, streams: names)
            pending.removeAll(keepingCapacity: true)
            progress?(r.progress.records)
        }
        while let f = try r.next() {
            switch f {
            case .dictionary(let id, let bytes):
                guard pending.isEmpty, r.progress.records == 0 else { throw JournalError.invalidArgument("portable journal: dictionary \(id) after records") }
                try journal.importDictionary(id: id, bytes: bytes)
            case .key(let stream, let keyID, let bytes):
                guard pending.isEmpty, r.progress.records == 0 else { throw JournalError.invalidArgument("portable journal: data key after records") }
                try journal.dataKeys.install(stream, keyID, bytes)
            case .stream(let s): names[s.id] = s
            case .record(let bytes):
                pending.append(bytes)
                if pending.count >= batch { try flush() }
            }
        }
        try flush()
        return r.progress
    }
}

extension Journal {
    /// Every stored dictionary, by id.
    public func allDictionaries() throws -> [(UInt32, [UInt8])] {
        try env.read { txn in
            try txn.withCursor(dictionaries) { c in
                var out: [(UInt32, [UInt8])] = []
                var entry = try c.first()
                while let (k, v) = entry {
                    guard k.count == 4 else { throw JournalError.corruptIndex(position: nil, "dictionary key of \(k.count) bytes") }
                    out.append((k.be(0, UInt32.self), Array(v)))
                    entry = try c.next()
                }
                return out
            }
        }
    }

    /// Stores a dictionary under exactly `id` (import); the same bytes again are accepted.
    public func importDictionary(id: UInt32, bytes: [UInt8]) throws {
        guard id != 0 else { throw JournalError.invalidArgument("dictionary id 0 is invalid") }
        let dictionaries = self.dictionaries
        try writer.sync { [env] in
            try env.write { txn in
                var key = [UInt8](); key.appendBE(id)
                if let existing = try txn.get(dictionaries, key) {
                    guard Array(existing) == bytes else { throw JournalError.invalidArgument("dictionary \(id) exists with other bytes") }
                    return
                }
                try txn.put(dictionaries, key, bytes, .noOverwrite)
            }
        }
    }

    /// Appends stored records byte for byte, in order, in one atomic append. Each record is decoded
    /// (CRC), its payload decompressed and checked canonical, and its revision must be its stream's
    /// next; `streams` names every stream id the records use.
    public func importRecords(_ records: [[UInt8]], streams: [ID128: StreamName]) throws {
        var requests: [PreparedRequest] = []
        for bytes in records {
            let h: RecordHeader
            do { h = try RecordCodec.decode(bytes) } catch { throw JournalError.corruptRecord(error) }
            guard let stream = streams[h.streamID] else { throw JournalError.invalidArgument("record \(h.eventID) names stream \(h.streamID), which has no stream frame before it") }
            let stored = bytes[h.headerSize..<(h.headerSize + Int(h.storedLength))]
            // A shredded record (its stream's key was destroyed by an erasure) is copied as it is: its
            // bytes are still covered by the CRC and the stream's hash chain.
            let payload = try readablePayload(of: StoredEvent(position: 0, header: h, record: bytes)) ?? []
            if payload.isEmpty && h.keyID == 0 || !payload.isEmpty {
                do { try PayloadReader.validate(payload) } catch { throw JournalError.invalidArgument("record \(h.eventID): payload is not canonical: \(error)") }
            }
            let data = EventData(id: h.eventID, type: h.eventType, time: h.eventTime, causation: h.causationID, payload: payload)
            let event = PreparedEvent(
                data: data, flags: h.flags & RecordFormat.flagZstd, dictionaryID: h.dictionaryID, stored: stored, keyID: h.keyID,
                uncompressedLength: h.uncompressedLength)
            guard RecordCodec.encode(h, storedPayload: stored) == bytes else { throw JournalError.invalidArgument("record \(h.eventID) is not in canonical form") }
            if let last = requests.last, last.stream.id == h.streamID {
                requests[requests.count - 1].events.append(event)
            } else {
                requests.append(PreparedRequest(stream: stream, expected: h.revision == 0 ? .noStream : .exact(h.revision - 1), events: [event]))
            }
        }
        guard !requests.isEmpty else { return }
        // Consecutive records of one stream form one request whose first revision is checked; the
        // others follow it, so every record lands at the revision it carries.
        let box = AppendOutcome()
        let sem = DispatchSemaphore(value: 0)
        let pending = PendingAppend(requests: requests) { r in
            box.result = r
            sem.signal()
        }
        if !writer.submit(pending) { pending.finish(.failure(.closed)) }
        sem.wait()
        _ = try box.result!.get()
    }
}

extension Journal {
    /// A consistent, compacted copy of the journal's LMDB environment in the empty directory `path`.
    public func backup(to path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try env.copy(to: path, compact: true)
    }
}

extension Journal {
    /// The payload, or nil when it is encrypted with a destroyed data key (its stream was erased):
    /// for the walks that fold, replay or learn, where an erased user's history is simply gone.
    public func readablePayload(of event: StoredEvent) throws -> [UInt8]? {
        do { return try payload(of: event) } catch JournalError.keyUnavailable { return nil }
    }
}
