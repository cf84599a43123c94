import LMDB

/// The result of walking the whole journal (SPEC.md §6).
public struct VerificationReport: Sendable {
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public var position: Position?
        public var check: String
        public var expected: String
        public var found: String
        public init(position: Position?, check: String, expected: String, found: String) {
            self.position = position
            self.check = check
            self.expected = expected
            self.found = found
        }
        public var description: String {
            "\(position.map { "position \($0)" } ?? "journal"): \(check): expected \(expected), found \(found)"
        }
    }
    public var events: Int = 0
    public var streams: Int = 0
    public var lastPosition: Position = 0
    public var compressedEvents: Int = 0
    /// Records whose payload is encrypted with a stream's data key (SPEC.md §4.7).
    public var encryptedEvents: Int = 0
    /// Encrypted records whose key was destroyed by an erasure: their payloads are unreadable by design.
    public var shreddedEvents: Int = 0
    /// The first problem found (verification stops there), or nil when everything checks out.
    public var problem: Problem?
    public var ok: Bool { problem == nil }
    /// Chain head of every stream (id → hex), for anchoring outside the store.
    public var heads: [ID128: [UInt8]] = [:]

    public init() {}
}

extension Journal {
    /// Walks every record in position order and checks, stopping at the first problem:
    /// record header and CRC-32C, consecutive positions, payload decompression and canonical form,
    /// the event-id index, per-stream revisions and their index, the per-stream hash chain, the
    /// stream table, and that no index holds entries without a record.
    public func verify(pageSize: Int = 4096, progress: ((Position) -> Void)? = nil) throws -> VerificationReport {
        var report = VerificationReport()
        struct Walk { var next: UInt64; var head: [UInt8]; var first: Position; var last: Position }
        var walks: [ID128: Walk] = [:]
        var expectedPosition: Position = 1
        func problem(_ p: Position?, _ check: String, _ expected: String, _ found: String) -> VerificationReport {
            var r = report
            r.problem = .init(position: p, check: check, expected: expected, found: found)
            return r
        }
        var next: Position = 1
        while true {
            // One short read transaction per page; values are copied out before it ends.
            var page: [(Position, Result<StoredEvent, JournalError>, Position?, Result<(UInt64, Position)?, JournalError>)] = []
            try env.read { txn in
                try txn.withCursor(events) { c in
                    var entry = try c.seek(atLeast: bigEndianBytes(next))
                    while let (k, v) = entry, page.count < pageSize {
                        guard k.count == 8 else {
                            page.append((0, .failure(.corruptIndex(position: nil, "event key of \(k.count) bytes")), nil, .success(nil)))
                            return
                        }
                        let position = k.be(0, UInt64.self)
                        let decoded = Result { () throws(JournalError) -> StoredEvent in try decodeStored(v, position) }
                        var indexed: Position?
                        var revisionEntry: Result<(UInt64, Position)?, JournalError> = .success(nil)
                        if case .success(let e) = decoded {
                            indexed = try txn.get(eventIDs, e.header.eventID.bytes).map { $0.count == 8 ? $0.be(0, UInt64.self) : 0 }
                            let h = e.header
                            revisionEntry = indexResult {
                                try txn.withCursor(streamRuns) { rc in
                                    try run(rc, stream: h.streamID, sid: h.streamID.bytes, holding: h.revision).map { (h.revision, $0.position(of: h.revision)) }
                                }
                            }
                        }
                        page.append((position, decoded, indexed, revisionEntry))
                        entry = try c.next()
                    }
                }
            }
            for (position, decoded, indexed, revisionEntry) in page {
                guard position == expectedPosition else {
                    return problem(position, "consecutive positions", "position \(expectedPosition)", "position \(position)")
                }
                let e: StoredEvent
                switch decoded {
                case .success(let s): e = s
                case .failure(.corruptRecord(let r)):
                    return problem(position, "record \(r.kind.rawValue) at byte \(r.offset)", r.expected, r.found)
                case .failure(let other): return problem(position, "record", "a valid record", "\(other)")
                }
                do {
                    let payload = try self.payload(of: e)
                    try PayloadReader.validate(payload)
                    if e.header.keyID != 0 { report.encryptedEvents += 1 }
                } catch JournalError.keyUnavailable {
                    // Crypto-shredded (its stream was erased): the chain still covers the stored bytes.
                    report.encryptedEvents += 1
                    report.shreddedEvents += 1
                } catch {
                    return problem(position, "payload", "a canonical payload of \(e.header.uncompressedLength) bytes", "\(error)")
                }
                if e.header.isCompressed { report.compressedEvents += 1 }
                guard indexed == position else {
                    return problem(position, "event-id index for \(e.header.eventID)", "position \(position)", indexed.map { "position \($0)" } ?? "no entry")
                }
                let sid = e.header.streamID
                var walk = walks[sid] ?? Walk(next: 0, head: [UInt8](repeating: 0, count: 32), first: position, last: 0)
                guard e.header.revision == walk.next else {
                    return problem(position, "revision of stream \(sid)", "revision \(walk.next)", "revision \(e.header.revision)")
                }
                let entry: (UInt64, Position)?
                switch revisionEntry {
                case .success(let found): entry = found
                case .failure(let error):
                    return problem(position, "stream index for \(sid) revision \(e.header.revision)", "a run holding it", "\(error)")
                }
                guard let (rev, rpos) = entry, rev == e.header.revision, rpos == position else {
                    return problem(position, "stream index for \(sid) revision \(e.header.revision)", "position \(position)",
                        entry.map { "revision \($0.0) at position \($0.1)" } ?? "no run holding it")
                }
                walk.head = Journal.chain(walk.head, e.record)
                walk.next += 1
                walk.last = position
                walks[sid] = walk
                report.events += 1
                report.lastPosition = position
                expectedPosition += 1
            }
            progress?(report.lastPosition)
            guard page.count == pageSize, let last = page.last else { break }
            next = last.0 + 1
        }
        // The stream table and the indexes must describe exactly the records walked.
        var after: ID128?
        var streamCount = 0
        while true {
            let batch = try streams(after: after, limit: 1024)
            for info in batch {
                let sid = info.stream.id
                guard let walk = walks[sid] else {
                    return problem(nil, "stream table entry \(sid)", "records for the stream", "none")
                }
                guard info.nextRevision == walk.next else {
                    return problem(walk.last, "stream \(info.stream) revision count", "\(walk.next)", "\(info.nextRevision)")
                }
                guard info.head == walk.head else {
                    return problem(walk.last, "hash chain of stream \(info.stream)", hexBytes(walk.head), hexBytes(info.head))
                }
                guard info.firstPosition == walk.first, info.lastPosition == walk.last else {
                    return problem(walk.last, "stream \(info.stream) first/last position", "\(walk.first)/\(walk.last)", "\(info.firstPosition)/\(info.lastPosition)")
                }
                report.heads[sid] = walk.head
                streamCount += 1
            }
            guard batch.count == 1024 else { break }
            after = batch.last!.stream.id
        }
        guard streamCount == walks.count else {
            return problem(nil, "stream table", "\(walks.count) streams", "\(streamCount) streams")
        }
        report.streams = streamCount
        let idCount = try env.read { txn in try txn.count(eventIDs) }
        guard idCount == report.events else {
            return problem(nil, "event-id index size", "\(report.events) entries", "\(idCount) entries")
        }
        // Every record was found in a run; runs that also cover nothing else sum to exactly the records.
        let covered = indexResult {
            try env.read { txn in
                try txn.withCursor(streamRuns) { c in
                    var total: UInt64 = 0
                    var entry = try c.first()
                    while let (k, v) = entry {
                        guard k.count == 16 else { throw JournalError.corruptIndex(position: nil, "stream index key of \(k.count) bytes") }
                        let (sum, overflow) = total.addingReportingOverflow(try StreamRun(v, stream: ID128(bytes: k)).count)
                        guard !overflow else { throw JournalError.corruptIndex(position: nil, "stream index counts overflow") }
                        total = sum
                        entry = try c.next()
                    }
                    return total
                }
            }
        }
        switch covered {
        case .failure(let error): return problem(nil, "stream index", "runs of at least one revision", "\(error)")
        case .success(let total) where total != UInt64(report.events):
            return problem(nil, "stream index size", "runs covering \(report.events) revisions", "runs covering \(total) revisions")
        case .success: break
        }
        return report
    }
}

public func hexBytes<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    var s = ""
    for b in bytes {
        let h = String(b, radix: 16)
        s += h.count == 1 ? "0" + h : h
    }
    return s
}

/// `body`'s value, or its error as a `JournalError` (an LMDB error reading an index becomes
/// `corruptIndex`), so verify can report it as a problem instead of throwing.
private func indexResult<T>(_ body: () throws -> T) -> Result<T, JournalError> {
    do { return .success(try body()) } catch let e as JournalError { return .failure(e) } catch {
        return .failure(.corruptIndex(position: nil, "\(error)"))
    }
}
