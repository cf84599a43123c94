import LMDB

/// One entry of the stream index (`stream_runs`, SPEC.md §3.5): revisions `firstRevision ..<
/// firstRevision + count` of a stream are at positions `firstPosition ..< firstPosition + count`.
///
/// One append request writes one run: its events get consecutive positions and consecutive revisions.
/// A batch of 1,000 events over 50 streams therefore writes 50 index entries instead of 1,000, which
/// is most of the difference between this index and one entry per event (`psm bench journal`).
struct StreamRun: Equatable {
    var firstRevision: UInt64
    var firstPosition: Position
    var count: UInt64

    static let size = 24

    init(firstRevision: UInt64, firstPosition: Position, count: UInt64) {
        self.firstRevision = firstRevision
        self.firstPosition = firstPosition
        self.count = count
    }

    /// Decodes a stored value, refusing a wrong size, an empty run or one that overflows.
    init(_ v: UnsafeRawBufferPointer, stream: ID128) throws(JournalError) {
        guard v.count == StreamRun.size else {
            throw .corruptIndex(position: nil, "stream \(stream): run of \(v.count) bytes, expected \(StreamRun.size)")
        }
        firstRevision = v.be(0, UInt64.self)
        firstPosition = v.be(8, UInt64.self)
        count = v.be(16, UInt64.self)
        guard count >= 1, firstPosition >= 1, firstRevision <= UInt64.max - count, firstPosition <= UInt64.max - count else {
            throw .corruptIndex(
                position: nil, "stream \(stream): run of revisions from \(firstRevision) at position \(firstPosition), count \(count)")
        }
    }

    var encoded: [UInt8] { bigEndianBytes(firstRevision) + bigEndianBytes(firstPosition) + bigEndianBytes(count) }

    var lastRevision: UInt64 { firstRevision + count - 1 }

    func contains(_ revision: UInt64) -> Bool { revision >= firstRevision && revision - firstRevision < count }

    func position(of revision: UInt64) -> Position { firstPosition + (revision - firstRevision) }

    /// The search value that positions a cursor at the first run starting at or after `revision`.
    static func probe(_ revision: UInt64) -> [UInt8] { bigEndianBytes(revision) + [UInt8](repeating: 0, count: 16) }
}

extension Journal {
    /// Positions `c` (over `stream_runs`) on the last run of `stream` that starts at or before
    /// `revision` and returns it; nil when there is none (the cursor is then anywhere).
    func floorRun(_ c: Cursor, stream: ID128, sid: [UInt8], _ revision: UInt64) throws -> StreamRun? {
        if let (_, v) = try c.seek(key: sid, valueAtLeast: StreamRun.probe(revision)) {
            let r = try StreamRun(v, stream: stream)
            if r.firstRevision == revision { return r }
            return try c.previousDuplicate().map { try StreamRun($0.value, stream: stream) }
        }
        guard try c.seek(exactly: sid) != nil else { return nil }
        return try c.lastDuplicate().map { try StreamRun($0.value, stream: stream) }
    }

    /// The run of `stream` that holds `revision`, or nil.
    func run(_ c: Cursor, stream: ID128, sid: [UInt8], holding revision: UInt64) throws -> StreamRun? {
        try floorRun(c, stream: stream, sid: sid, revision).flatMap { $0.contains(revision) ? $0 : nil }
    }

    /// Rewrites a `psm-journal/1` index (`stream_revisions`, one entry per event) as runs in `runs`,
    /// drops it and sets the format marker to the current one, inside the caller's transaction, so a
    /// crash leaves either the old layout or the new one. Returns the number of runs written.
    static func migrateStreamIndex(_ txn: WriteTransaction, runs: Database, meta: Database) throws -> Int {
        var written = 0
        if let old = try txn.openDatabaseIfPresent("stream_revisions", flags: [.dupSort, .dupFixed]) {
            var pending: (key: [UInt8], run: StreamRun)?
            func flush() throws {
                guard let p = pending else { return }
                try txn.put(runs, p.key, p.run.encoded, [.appendDup, .noDupData])
                written += 1
            }
            try txn.withCursor(old) { c in
                var entry = try c.first()
                while let (k, v) = entry {
                    guard k.count == 16, v.count == 16 else {
                        throw JournalError.corruptIndex(position: nil, "stream_revisions entry of \(k.count)+\(v.count) bytes")
                    }
                    let key = Array(k)
                    let revision = v.be(0, UInt64.self), position = v.be(8, UInt64.self)
                    if var p = pending, p.key == key, revision == p.run.firstRevision + p.run.count, position == p.run.firstPosition + p.run.count {
                        p.run.count += 1
                        pending = p
                    } else {
                        try flush()
                        pending = (key, StreamRun(firstRevision: revision, firstPosition: position, count: 1))
                    }
                    entry = try c.next()
                }
            }
            try flush()
            try txn.drop(old)
        }
        try txn.put(meta, Array("format".utf8), Array(Journal.formatMarker.utf8))
        return written
    }
}
