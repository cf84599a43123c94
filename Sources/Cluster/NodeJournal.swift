import Engine
import Foundation
import Inference
import Journal
import JournalPostgres
import Projections

/// The PostgreSQL journal as an engine's journal of record on a cluster node (SPEC.md §15.5):
/// appends go to PostgreSQL, and a user's stream is folded from there into the engine's projections
/// (through the node's projector, so the feed and the engine's own writes fold each event once).
public final class NodeJournal: RecordJournal, @unchecked Sendable {
    public let journal: PostgresJournal
    public let projector: NodeProjector

    public init(journal: PostgresJournal, projector: NodeProjector) {
        self.journal = journal
        self.projector = projector
    }

    /// An engine in `directory` whose journal of record is `journal`, with the node's projector
    /// folding into the engine's projections. The store's own LMDB journal stays empty.
    public static func engine(
        directory: String, journal: PostgresJournal, node: String, encoder: Inference.Encoder? = nil, policy: any MemoryPolicy = RuleBaseline()
    ) throws -> (Engine, NodeJournal) {
        let engine = try Engine(directory: directory, encoder: encoder, policy: policy)
        return (engine, attach(to: engine, journal: journal, node: node))
    }

    /// Makes `journal` the journal of record of `engine` (before the engine is used).
    public static func attach(to engine: Engine, journal: PostgresJournal, node: String) -> NodeJournal {
        let projector = NodeProjector(journal: journal, node: node, store: { engine.projections })
        let record = NodeJournal(journal: journal, projector: projector)
        engine.record = record
        return record
    }

    public func append(_ request: AppendRequest) async throws -> AppendResult { try await journal.append([request])[0] }

    public func nextRevision(_ stream: ID128) async throws -> UInt64? {
        guard let info = try await journal.stream(stream), info.nextRevision > 0 else { return nil }
        return info.nextRevision
    }

    public func committedEvent(_ id: EventID) async throws -> (event: StoredEvent, payload: [UInt8]?)? {
        guard let e = try await journal.event(withID: id) else { return nil }
        do {
            return (e, try await journal.plainPayload(of: e))
        } catch JournalError.keyUnavailable {
            return (e, nil)
        }
    }

    public func catchUp(_ stream: ID128) async throws {
        try await projector.catchUp(stream: stream)
    }

    public func tenantLeaves(_ tenant: String) async throws -> (leaves: [[UInt8]], positions: [Position]) {
        try await journal.tenantLeaves(tenant)
    }

    public func destroyKeys(_ stream: ID128) async throws { _ = try await journal.destroyKeys(stream) }

    public func page(_ stream: ID128, fromRevision revision: UInt64, limit: Int) async throws -> FetchedEvents {
        try await journal.readableStream(stream, fromRevision: revision, limit: limit)
    }

    public func events(at positions: [Position]) async throws -> FetchedEvents {
        try await journal.readable(try await journal.events(at: positions))
    }

    public func stream(_ stream: ID128) async throws -> FetchedEvents { try await journal.readableStream(stream) }
}
