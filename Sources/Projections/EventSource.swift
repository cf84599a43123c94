import Journal

/// Where the fold gets what a record does not carry: its readable payload (decrypted and decompressed;
/// nil when crypto-shredded) and its stream's name. The LMDB journal is one; a page fetched from the
/// PostgreSQL journal of record (``FetchedEvents``) is another.
public protocol EventSource {
    func readablePayload(of event: StoredEvent) throws -> [UInt8]?
    func streamName(_ id: ID128) throws -> StreamName?
}

extension Journal: EventSource {
    public func streamName(_ id: ID128) throws -> StreamName? { try streamInfo(id)?.stream }
}

/// Events read ahead from an asynchronous journal with their payloads and stream names, so the
/// synchronous fold can run over them.
public struct FetchedEvents: EventSource, Sendable {
    public var events: [StoredEvent] = []
    /// Readable payloads by event id; a missing entry is a shredded payload.
    public var payloads: [EventID: [UInt8]] = [:]
    public var names: [ID128: StreamName] = [:]

    public init() {}

    public func readablePayload(of event: StoredEvent) throws -> [UInt8]? { payloads[event.header.eventID] }
    public func streamName(_ id: ID128) throws -> StreamName? { names[id] }
}
