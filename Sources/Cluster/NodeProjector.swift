import Foundation
import Journal
import JournalPostgres
import Projections

/// Keeps a node's LMDB projections of the partitions it owns up to date with the PostgreSQL journal
/// of record (SPEC.md §15.5). The projections are a cache: any node can rebuild a partition's users
/// from the journal, and gets the same per-user state (``ProjectionStore/userStateHash(_:)``).
///
/// - ``adopt(_:)`` takes a partition: it notes the feed's head, folds every stream of the partition
///   to its end, then follows the feed from that head (events committed meanwhile are either folded
///   already or come after the head).
/// - ``poll()`` reads each followed partition's feed; for every stream an event names, it folds the
///   stream from the revision the projections have reached to its end. The feed says which streams
///   moved; the stream, read in revision order, says what happened, so events are folded in revision
///   order and exactly once (the folded revision is kept with the projections, §15.5), whatever
///   order transactions committed in.
public final class NodeProjector: @unchecked Sendable {
    public let journal: PostgresJournal
    public let node: String
    private let storeProvider: @Sendable () -> ProjectionStore
    /// The projections folded into (an engine may replace its store, e.g. when it compacts it).
    public var store: ProjectionStore { storeProvider() }
    private var cursors: [Int: PostgresJournal.FeedCursor] = [:]

    public init(journal: PostgresJournal, store: ProjectionStore, node: String) {
        self.journal = journal
        self.node = node
        storeProvider = { store }
    }

    /// Folds into whatever `store` returns at the time (an engine's current projection store).
    public init(journal: PostgresJournal, node: String, store: @escaping @Sendable () -> ProjectionStore) {
        self.journal = journal
        self.node = node
        storeProvider = store
    }

    /// The partitions followed now.
    public var following: Set<Int> { Set(cursors.keys) }

    /// Starts following `partition` after bringing every stream of it up to date. Returns the number
    /// of events folded.
    @discardableResult
    public func adopt(_ partition: Int) async throws -> Int {
        let head = try await journal.feedHead(partition: partition)
        var folded = 0
        for s in try await journal.streams(inPartition: partition) {
            folded += try await catchUp(stream: s.stream.id)
        }
        cursors[partition] = head
        try await journal.saveCursor(head, partition: partition, node: node)
        return folded
    }

    /// Stops following `partition` (another node owns it now); its users' projections stay as a stale
    /// cache until the partition comes back.
    public func release(_ partition: Int) { cursors[partition] = nil }

    /// Reads every followed partition's feed once and folds what moved. Returns the events folded.
    @discardableResult
    public func poll(limit: Int = 1000) async throws -> Int {
        var folded = 0
        for (partition, cursor) in cursors.sorted(by: { $0.key < $1.key }) {
            var at = cursor
            while true {
                let (events, next) = try await journal.tail(partition: partition, after: at, limit: limit)
                if events.isEmpty { break }
                var streams: [ID128] = []
                for e in events where !streams.contains(e.header.streamID) { streams.append(e.header.streamID) }
                for s in streams { folded += try await catchUp(stream: s) }
                at = next
                if events.count < limit { break }
            }
            if at != cursor {
                cursors[partition] = at
                try await journal.saveCursor(at, partition: partition, node: node)
            }
        }
        return folded
    }

    /// Folds `stream` from the projections' folded revision to its end. Returns the events folded.
    @discardableResult
    public func catchUp(stream: ID128) async throws -> Int {
        var folded = 0
        var from = try store.foldedRevision(stream)
        while true {
            let page = try await journal.readStream(stream, fromRevision: from, limit: 512)
            guard let last = page.last else { break }
            let fetched = try await journal.readable(page)
            let report = try store.applyStreamEvents(page, source: fetched)
            folded += report.applied + report.anomalies
            from = last.header.revision + 1
            if page.count < 512 { break }
        }
        return folded
    }

}
