import Journal
import Projections

/// The journal of record when it is not the store's own LMDB journal: a cluster node over the
/// PostgreSQL journal (SPEC.md §15.5). The engine then appends there, reads stream revisions and
/// retried commands there, and folds a user's stream from there into its projections before it
/// decides, so any node decides on the user's full history, owner or not.
public protocol RecordJournal: Sendable {
    func append(_ request: AppendRequest) async throws -> AppendResult
    /// The stream's next revision (its event count), nil when it has none.
    func nextRevision(_ stream: ID128) async throws -> UInt64?
    /// The event with this id, with its readable payload (nil when shredded).
    func committedEvent(_ id: EventID) async throws -> (event: StoredEvent, payload: [UInt8]?)?
    /// Folds the stream's events that the engine's projections have not folded yet.
    func catchUp(_ stream: ID128) async throws
    /// The whole stream, in revision order, with readable payloads (for reads as of a past point).
    func stream(_ stream: ID128) async throws -> FetchedEvents
    /// Up to `limit` events of the stream from `revision`, with readable payloads.
    func page(_ stream: ID128, fromRevision revision: UInt64, limit: Int) async throws -> FetchedEvents
    /// The events at these positions (those that exist), with readable payloads.
    func events(at positions: [Position]) async throws -> FetchedEvents
    /// The leaf hashes of the tenant's Merkle tree with their positions (SPEC.md §8.1, §15.4).
    func tenantLeaves(_ tenant: String) async throws -> (leaves: [[UInt8]], positions: [Position])
    /// Destroys the stream's data keys (erasure).
    func destroyKeys(_ stream: ID128) async throws
}
