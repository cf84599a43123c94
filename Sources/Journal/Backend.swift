/// What every journal backend offers (SPEC.md §15): the LMDB journal of one machine, and PostgreSQL as
/// the journal of record of several (module `JournalPostgres`). Both store the same v1 records, so
/// checksums, hash chains, encryption, replay and verification carry over unchanged.
///
/// The behaviour suite in the tests runs against every conforming type.
public protocol JournalBackend: Sendable {
    /// "lmdb" or "postgres", for reports.
    var backendName: String { get }
    /// Appends `requests` atomically and returns once durable; a retry with the same event ids returns
    /// the original result (`wasDuplicate`), even when its expected revision is stale by then.
    func append(_ requests: [AppendRequest]) async throws(JournalError) -> [AppendResult]
    /// Up to `limit` events of a stream, from revision `from`, in revision order.
    func readStream(_ stream: ID128, fromRevision from: UInt64, limit: Int) async throws -> [StoredEvent]
    /// The event with this id, if any.
    func event(withID id: EventID) async throws -> StoredEvent?
    /// The stream's revision count and chain head, if it exists.
    func stream(_ id: ID128) async throws -> StreamInfo?
    /// The plain payload of an event read from this backend (decrypted and decompressed).
    func plainPayload(of event: StoredEvent) async throws -> [UInt8]
    /// Checks every record, revision sequence, event id and hash chain; stops at the first problem.
    func verifyJournal() async throws -> VerificationReport
    /// Destroys the stream's data keys (crypto-shredding, SPEC.md §4.7); returns how many there were.
    func destroyKeys(_ stream: ID128) async throws -> Int
}

extension Journal: JournalBackend {
    public var backendName: String { "lmdb" }
    public func readStream(_ stream: ID128, fromRevision from: UInt64, limit: Int) async throws -> [StoredEvent] {
        try read(stream: stream, fromRevision: from, limit: limit)
    }
    public func event(withID id: EventID) async throws -> StoredEvent? { try event(id: id) }
    public func stream(_ id: ID128) async throws -> StreamInfo? { try streamInfo(id) }
    public func plainPayload(of event: StoredEvent) async throws -> [UInt8] { try payload(of: event) }
    public func verifyJournal() async throws -> VerificationReport { try verify() }
    public func destroyKeys(_ stream: ID128) async throws -> Int { try dataKeys.destroy(stream) }
}
