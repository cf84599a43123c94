/// An event to append. The journal stores the payload as given (it must be canonical, SPEC.md §4.3)
/// and compresses it when that helps.
public struct EventData: Sendable, Equatable {
    /// Chosen by the caller and permanent: appending the same id again returns the original position.
    public var id: EventID
    public var type: UInt16
    /// Event time in microseconds since 1970-01-01T00:00:00Z, given by the caller (never the wall clock).
    public var time: Int64
    /// The event this one was derived from, or zero.
    public var causation: EventID
    public var payload: [UInt8]

    public init(id: EventID, type: UInt16, time: Int64, causation: EventID = .zero, payload: [UInt8]) {
        self.id = id
        self.type = type
        self.time = time
        self.causation = causation
        self.payload = payload
    }
}

/// Events for one stream, appended atomically with an optimistic-concurrency check.
public struct AppendRequest: Sendable {
    public var stream: StreamName
    public var expected: ExpectedRevision
    public var events: [EventData]
    /// Encrypt the payloads with the stream's data key (created on first use; SPEC.md §4.7).
    public var encrypted: Bool

    public init(stream: StreamName, expected: ExpectedRevision = .any, events: [EventData], encrypted: Bool = false) {
        self.stream = stream
        self.expected = expected
        self.events = events
        self.encrypted = encrypted
    }
}

public struct AppendResult: Sendable, Equatable {
    public var stream: StreamName
    /// Revision of the request's first event.
    public var firstRevision: UInt64
    /// Global position of each event, in request order.
    public var positions: [Position]
    /// True when every event id was already in the journal with the same content (a retry).
    public var wasDuplicate: Bool

    public init(stream: StreamName, firstRevision: UInt64, positions: [Position], wasDuplicate: Bool) {
        self.stream = stream
        self.firstRevision = firstRevision
        self.positions = positions
        self.wasDuplicate = wasDuplicate
    }
}

/// A record read back from the journal, copied out of LMDB and validated (CRC and header).
public struct StoredEvent: Sendable {
    public let position: Position
    public let header: RecordHeader
    /// The complete stored record bytes (header, stored payload, CRC).
    public let record: [UInt8]

    public var storedPayload: ArraySlice<UInt8> {
        let h = header.headerSize
        return record[h..<(h + Int(header.storedLength))]
    }
}

/// What the journal knows about a stream.
public struct StreamInfo: Sendable, Equatable {
    public var stream: StreamName
    /// Number of events; the next event gets this revision.
    public var nextRevision: UInt64
    /// SHA-256 chain value after the stream's last record (SPEC.md §4.5); all zero for an empty stream.
    public var head: [UInt8]
    public var firstPosition: Position
    public var lastPosition: Position

    public init(stream: StreamName, nextRevision: UInt64, head: [UInt8], firstPosition: Position, lastPosition: Position) {
        self.stream = stream
        self.nextRevision = nextRevision
        self.head = head
        self.firstPosition = firstPosition
        self.lastPosition = lastPosition
    }

    static let version: UInt8 = 1

    func encoded() -> [UInt8] {
        var out: [UInt8] = [StreamInfo.version]
        out.appendLE(nextRevision)
        out.append(contentsOf: head)
        out.appendLE(firstPosition)
        out.appendLE(lastPosition)
        let t = Array(stream.tenant.utf8), n = Array(stream.name.utf8)
        out.appendLE(UInt16(t.count))
        out.append(contentsOf: t)
        out.appendLE(UInt16(n.count))
        out.append(contentsOf: n)
        return out
    }

    static func decode(_ b: UnsafeRawBufferPointer, id: ID128) throws(JournalError) -> StreamInfo {
        func bad(_ m: String) -> JournalError { .corruptIndex(position: nil, "stream \(id): \(m)") }
        guard b.count >= 61, b[0] == version else { throw bad("stream entry of \(b.count) bytes, version \(b.first ?? 0)") }
        let next = b.le(1, UInt64.self)
        let head = Array(b[9..<41])
        let first = b.le(41, UInt64.self), last = b.le(49, UInt64.self)
        let tl = Int(b.le(57, UInt16.self))
        guard b.count >= 59 + tl + 2 else { throw bad("truncated tenant") }
        let nl = Int(b.le(59 + tl, UInt16.self))
        guard b.count == 61 + tl + nl else { throw bad("length \(b.count), expected \(61 + tl + nl)") }
        guard let tenant = String(validating: b[59..<(59 + tl)], as: UTF8.self),
            let name = String(validating: b[(61 + tl)..<(61 + tl + nl)], as: UTF8.self)
        else { throw bad("name is not UTF-8") }
        let stream = try StreamName(tenant: tenant, name: name)
        guard stream.id == id else { throw bad("name \(stream) hashes to \(stream.id)") }
        return StreamInfo(stream: stream, nextRevision: next, head: head, firstPosition: first, lastPosition: last)
    }
}
