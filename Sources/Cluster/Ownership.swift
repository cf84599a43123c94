import Crypto
import Foundation
import Journal
import JournalPostgres
import Logging
import PostgresNIO

/// Which PSM node owns which partition of a PostgreSQL journal (SPEC.md §15.5), through PostgreSQL's
/// session advisory locks: no election of our own.
///
/// - Advisory locks belong to one database, so several journals (databases) on one server keep
///   separate clusters; every lock query is restricted to the journal's database.
/// - A node holds one dedicated connection. On it, it holds the lock (`7365109`, node key) that says
///   it is alive, and one lock (`7365108`, partition) per partition it owns. PostgreSQL releases them
///   all when the connection ends, however the node ends (exit, SIGKILL, lost network once the server
///   notices), so a dead node's partitions are free at once.
/// - Each partition has one preferred owner among the live nodes: highest random weight (rendezvous)
///   hashing of (node name, partition), so a join or a leave moves only the partitions it must.
///   ``rebalance()`` releases owned partitions whose preferred owner is another live node and tries to
///   lock the ones it prefers; a partition is never locked twice, so two nodes never own one at once.
/// - Ownership decides which node caches and serves a user, not what is true: appends carry
///   expected revisions (§15.2), so even a node that lost its lock without noticing cannot write a
///   stale decision into a stream.
public final class PartitionOwnership: @unchecked Sendable {
    public static let nodeLockClass: Int32 = 7_365_109
    public static let partitionLockClass: Int32 = 7_365_108

    public let node: String
    public let address: String
    public let partitions: Int
    private let connection: PostgresConnection
    private let logger: Logger
    private let lock = NSLock()
    private var held: Set<Int> = []

    /// Joins the cluster as `node` (its `address` is where it serves, for forwarding and status).
    /// Another live node of the same name is an error.
    public init(journal: PostgresJournal, url: String, node: String, address: String, logger: Logger = PostgresJournal.quietLogger) async throws {
        guard !node.isEmpty, node.utf8.count <= 64, node.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F }) else {
            throw JournalError.invalidArgument("node name \(node.debugDescription) must be 1-64 printable ASCII characters without spaces")
        }
        self.node = node
        self.address = address
        self.partitions = journal.partitions
        self.logger = logger
        do {
            connection = try await PostgresConnection.connect(
                configuration: try PostgresJournal.connectionConfiguration(url), id: Int.random(in: 1...Int(Int32.max)), logger: logger)
        } catch {
            throw JournalError.backend("node \(node) cannot connect to \(PostgresJournal.redacted(url)): \(String(reflecting: error))")
        }
        do {
            var got = false
            for try await ok in try await connection.query(
                "SELECT pg_try_advisory_lock(\(Self.nodeLockClass), \(Self.nodeKey(node)))", logger: logger
            ).decode(Bool.self) { got = ok }
            guard got else { throw JournalError.invalidArgument("node \(node) is already running (its lock is held by another connection)") }
            try await connection.query(
                """
                INSERT INTO psm_nodes (name, address, pid) VALUES (\(node), \(address), pg_backend_pid())
                ON CONFLICT (name) DO UPDATE SET address = excluded.address, pid = excluded.pid, joined_at = now()
                """, logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// The partitions this node holds now.
    public var owned: Set<Int> { lock.withLock { held } }

    /// A node name's key in the node lock class.
    static func nodeKey(_ name: String) -> Int32 {
        let d = Array(SHA256.hash(data: Array("psm.node.v1".utf8) + [0] + Array(name.utf8)))
        return Int32(bitPattern: UInt32(d[0]) << 24 | UInt32(d[1]) << 16 | UInt32(d[2]) << 8 | UInt32(d[3]))
    }

    /// The preferred owner of `partition` among `nodes` (rendezvous hashing; nil when there are none).
    public static func preferredOwner(of partition: Int, among nodes: [String]) -> String? {
        func weight(_ n: String) -> [UInt8] {
            Array(SHA256.hash(data: Array("psm.partition.v1".utf8) + [0] + Array(n.utf8) + [0] + Array(String(partition).utf8)))
        }
        return nodes.max { a, b in
            let wa = weight(a), wb = weight(b)
            return wa.lexicographicallyPrecedes(wb) || (wa == wb && a < b)
        }
    }

    /// The names of the nodes whose liveness lock is held now.
    static func liveNodes(_ query: (PostgresQuery) async throws -> PostgresRowSequence) async throws -> [(name: String, address: String, pid: Int32)] {
        var out: [(String, String, Int32)] = []
        for try await row in try await query(
            """
            SELECT n.name, n.address, n.pid FROM psm_nodes n
            WHERE EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.pid = n.pid
                          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                          AND l.classid = \(Int64(nodeLockClass))::oid AND l.objsubid = 2)
            ORDER BY n.name
            """
        ).decode((String, String, Int32).self) { out.append(row) }
        return out.map { (name: $0.0, address: $0.1, pid: $0.2) }
    }

    /// One round: give up partitions another live node prefers, take the ones this node prefers and
    /// nobody holds. Returns what changed. Throws when the lock connection is gone (the node must then
    /// stop serving: its locks went with it).
    @discardableResult
    public func rebalance() async throws -> (gained: [Int], lost: [Int]) {
        let live = try await Self.liveNodes { try await connection.query($0, logger: logger) }.map(\.name)
        guard live.contains(node) else {
            throw JournalError.backend("node \(node) no longer holds its liveness lock")
        }
        var gained: [Int] = [], lost: [Int] = []
        for p in 0..<partitions {
            let preferred = Self.preferredOwner(of: p, among: live)
            let mine = owned.contains(p)
            if mine && preferred != node {
                try await connection.query("SELECT pg_advisory_unlock(\(Self.partitionLockClass), \(Int32(p)))", logger: logger)
                _ = lock.withLock { held.remove(p) }
                lost.append(p)
            } else if !mine && preferred == node {
                var got = false
                for try await ok in try await connection.query(
                    "SELECT pg_try_advisory_lock(\(Self.partitionLockClass), \(Int32(p)))", logger: logger
                ).decode(Bool.self) { got = ok }
                if got {
                    _ = lock.withLock { held.insert(p) }
                    gained.append(p)
                }
            }
        }
        return (gained, lost)
    }

    /// Leaves the cluster: releases every lock by closing the connection.
    public func leave() async {
        lock.withLock { held.removeAll() }
        try? await connection.close()
    }
}

/// What `psm cluster status` shows (SPEC.md §15.5).
public struct ClusterStatus: Sendable, Codable, Equatable {
    public struct Node: Sendable, Codable, Equatable {
        public var name: String
        public var address: String
        public var partitions: [Int]
    }
    public struct Partition: Sendable, Codable, Equatable {
        public var partition: Int
        public var owner: String?
        public var events: Int64
        /// Events of the partition beyond its owner's recorded feed cursor (nil without an owner or cursor).
        public var lag: Int64?
    }
    public var partitions_total: Int
    public var nodes: [Node]
    public var partitions: [Partition]
    public var unowned: [Int]

    /// Reads the cluster's state from the journal's database.
    public static func read(_ journal: PostgresJournal) async throws -> ClusterStatus {
        try await journal.withClient { client, logger in
            let live = try await PartitionOwnership.liveNodes { try await client.query($0, logger: logger) }
            var holders: [Int: Int32] = [:]
            for try await (p, pid) in try await client.query(
                """
                SELECT objid::bigint, pid FROM pg_locks
                WHERE locktype = 'advisory' AND granted AND classid = \(Int64(PartitionOwnership.partitionLockClass))::oid AND objsubid = 2
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """, logger: logger
            ).decode((Int64, Int32).self) { holders[Int(p)] = pid }
            let byPid = Dictionary(live.map { ($0.pid, $0.name) }, uniquingKeysWith: { a, _ in a })
            var counts: [Int: Int64] = [:]
            for try await (p, n) in try await client.query(
                "SELECT partition, count(*) FROM psm_events GROUP BY partition", logger: logger
            ).decode((Int, Int64).self) { counts[p] = n }
            var cursors: [String: (Int64, Int64)] = [:]
            for try await (p, node, xid, position) in try await client.query(
                "SELECT partition, node, xid, position FROM psm_feed_cursors", logger: logger
            ).decode((Int, String, Int64, Int64).self) { cursors["\(p)/\(node)"] = (xid, position) }
            var parts: [Partition] = []
            for p in 0..<journal.partitions {
                let owner = holders[p].flatMap { byPid[$0] }
                var lag: Int64?
                if let owner, let (xid, position) = cursors["\(p)/\(owner)"] {
                    for try await n in try await client.query(
                        """
                        SELECT count(*) FROM psm_events WHERE partition = \(p) AND (xid::text::bigint, position) > (\(xid), \(position))
                        """, logger: logger
                    ).decode(Int64.self) { lag = n }
                }
                parts.append(Partition(partition: p, owner: owner, events: counts[p] ?? 0, lag: lag))
            }
            let nodes = live.map { n in Node(name: n.name, address: n.address, partitions: parts.filter { $0.owner == n.name }.map(\.partition)) }
            return ClusterStatus(
                partitions_total: journal.partitions, nodes: nodes, partitions: parts, unowned: parts.filter { $0.owner == nil }.map(\.partition))
        }
    }
}
