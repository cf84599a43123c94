import Cluster
import Foundation
import Journal
import JournalPostgres
import PostgresNIO
import Projections
import Testing
import Workloads

/// A fresh database on the test server that `scripts/test.sh` starts (`scripts/postgres.sh`).
enum TestDatabase {
    static let url: String? = ProcessInfo.processInfo.environment["PSM_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }

    static func fresh() async throws -> String {
        let base = try #require(url)
        var u = try #require(URLComponents(string: base))
        u.path = "/psm_c_\(UInt64.random(in: 0...UInt64.max))"
        let fresh = try #require(u.string)
        try await PostgresJournal.createDatabaseIfMissing(fresh)
        return fresh
    }

    static func drop(_ url: String) async {
        guard var u = URLComponents(string: url) else { return }
        let name = String(u.path.dropFirst())
        u.path = "/postgres"
        guard let admin = u.string, let config = try? PostgresJournal.configuration(admin) else { return }
        let client = PostgresClient(configuration: config)
        let runner = Task { await client.run() }
        defer { runner.cancel() }
        _ = try? await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \"\(name)\" WITH (FORCE)"))
    }
}

func tempDir(_ label: String) -> String {
    let p = NSTemporaryDirectory() + "psm-\(label)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

/// Rebalancing rounds of `node` until it owns `partitions` (a node that closed its connection is gone
/// once its server process has exited, a moment later), at most 30 s. Returns every partition gained.
func rounds(_ node: PartitionOwnership, until partitions: Set<Int>) async throws -> [Int] {
    var gained: [Int] = []
    let deadline = Date().addingTimeInterval(30)
    repeat {
        gained += try await node.rebalance().gained
        if node.owned == partitions { break }
        try await Task.sleep(nanoseconds: 20_000_000)
    } while Date() < deadline
    return gained
}

/// Polls the projectors until no partition lags (the feed waits for transactions open anywhere on the
/// server, other tests' among them), at most 30 s. Returns the events folded.
@discardableResult
func pollUntilCaughtUp(_ journal: PostgresJournal, _ projectors: [NodeProjector]) async throws -> Int {
    var folded = 0
    let deadline = Date().addingTimeInterval(30)
    repeat {
        for p in projectors { folded += try await p.poll() }
        if try await ClusterStatus.read(journal).partitions.allSatisfy({ ($0.lag ?? 0) == 0 }) { break }
        try await Task.sleep(nanoseconds: 20_000_000)
    } while Date() < deadline
    let lagging = try await ClusterStatus.read(journal).partitions.filter { ($0.lag ?? 0) != 0 }
    #expect(lagging.isEmpty, "partitions still lagging after 30 s: \(lagging)")
    return folded
}

/// Nodes over the PostgreSQL journal (SPEC.md §15.5), against a real server.
@Suite(.enabled(if: TestDatabase.url != nil, "needs PSM_TEST_POSTGRES (scripts/test.sh starts a server)"))
struct ClusterTests {
    @Test func partitionsMoveWithNodesThroughAdvisoryLocks() async throws {
        let url = try await TestDatabase.fresh()
        let journal = try await PostgresJournal(url: url, partitions: 8)
        let a = try await PartitionOwnership(journal: journal, url: url, node: "a", address: "127.0.0.1:7001")
        await #expect(throws: JournalError.self, "a second live node of the same name") {
            try await PartitionOwnership(journal: journal, url: url, node: "a", address: "x")
        }
        await #expect(throws: JournalError.self) { try await PartitionOwnership(journal: journal, url: url, node: "bad name", address: "x") }
        let first = try await a.rebalance()
        #expect(first.gained == Array(0..<8) && a.owned == Set(0..<8), "alone, a node owns every partition")
        var status = try await ClusterStatus.read(journal)
        #expect(status.nodes.map(\.name) == ["a"] && status.unowned.isEmpty && status.nodes[0].address == "127.0.0.1:7001")

        let b = try await PartitionOwnership(journal: journal, url: url, node: "b", address: "127.0.0.1:7002")
        // b cannot take what a still holds; a gives up b's share on its round, b takes it on the next.
        _ = try await b.rebalance()
        #expect(b.owned.isEmpty)
        let moved = try await a.rebalance()
        let taken = try await b.rebalance()
        let share = Set((0..<8).filter { PartitionOwnership.preferredOwner(of: $0, among: ["a", "b"]) == "b" })
        #expect(!share.isEmpty && share.count < 8, "rendezvous hashing splits 8 partitions over 2 nodes: \(share)")
        #expect(Set(moved.lost) == share && Set(taken.gained) == share && b.owned == share)
        #expect(a.owned.isDisjoint(with: b.owned) && a.owned.union(b.owned) == Set(0..<8))
        status = try await ClusterStatus.read(journal)
        #expect(status.unowned.isEmpty)
        #expect(Set(status.nodes.first { $0.name == "b" }?.partitions ?? []) == share)
        // Steady state: another round moves nothing.
        let (ra, rb) = (try await a.rebalance(), try await b.rebalance())
        #expect(ra.gained.isEmpty && ra.lost.isEmpty && rb.gained.isEmpty && rb.lost.isEmpty)

        // a ends: its locks go with its connection and b takes everything.
        await a.leave()
        let takeover = try await rounds(b, until: Set(0..<8))
        #expect(Set(takeover) == Set(0..<8).subtracting(share) && b.owned == Set(0..<8))
        status = try await ClusterStatus.read(journal)
        #expect(status.nodes.map(\.name) == ["b"] && status.unowned.isEmpty)
        // The name is free again (once a's server process has exited).
        var again: PartitionOwnership?
        let deadline = Date().addingTimeInterval(30)
        while again == nil && Date() < deadline {
            again = try? await PartitionOwnership(journal: journal, url: url, node: "a", address: "127.0.0.1:7003")
            if again == nil { try await Task.sleep(nanoseconds: 20_000_000) }
        }
        #expect(again != nil)
        await again?.leave()
        await b.leave()
        journal.close()
        await TestDatabase.drop(url)
    }

    /// A user's projections on whichever node owns it equal the single-machine fold of the same events
    /// (LMDB journal and projection store), before and after its partition moves, while events keep
    /// arriving, and after its owner dies.
    @Test func projectionsFollowTheirPartitionsWithUnchangedStateHashes() async throws {
        let url = try await TestDatabase.fresh()
        let journal = try await PostgresJournal(url: url, partitions: 8)
        let dirs = (tempDir("node-a"), tempDir("node-b"), tempDir("single"))
        defer { for d in [dirs.0, dirs.1, dirs.2] { try? FileManager.default.removeItem(atPath: d) } }
        let single = try Journal(directory: dirs.2 + "/journal")
        let singleProjections = try ProjectionStore(directory: dirs.2 + "/projections")
        var gen = MemoryEventGenerator(seed: 21, users: 6, erasureRate: 0)
        func append(_ n: Int) async throws {
            for _ in 0..<n {
                let s = gen.next()
                let data = EventData(id: s.id, type: s.event.type.rawValue, time: s.time, causation: s.causation, payload: s.event.payload())
                let request = AppendRequest(stream: s.user.stream, events: [data], encrypted: true)
                let p = try await journal.append([request])[0].positions[0]
                let q = try await single.append([request])[0].positions[0]
                #expect(p == q, "one writer, no rollbacks: both journals number events alike")
            }
            try singleProjections.catchUp(single)
        }
        func expectSameStates(_ store: ProjectionStore, users: [UserRef], _ label: String) throws {
            for u in users {
                #expect(try store.userStateHash(u.key) == singleProjections.userStateHash(u.key), "\(label): \(u)")
            }
        }
        try await append(300)
        let users = gen.users
        func usersIn(_ partitions: Set<Int>) -> [UserRef] { users.filter { partitions.contains(journal.partition(of: $0.key)) } }

        let a = try await PartitionOwnership(journal: journal, url: url, node: "a", address: "")
        let projA = NodeProjector(journal: journal, store: try ProjectionStore(directory: dirs.0), node: "a")
        for p in try await a.rebalance().gained { try await projA.adopt(p) }
        try expectSameStates(projA.store, users: users, "node a alone")

        let b = try await PartitionOwnership(journal: journal, url: url, node: "b", address: "")
        let projB = NodeProjector(journal: journal, store: try ProjectionStore(directory: dirs.1), node: "b")
        for p in try await a.rebalance().lost { projA.release(p) }
        for p in try await b.rebalance().gained { try await projB.adopt(p) }
        #expect(!b.owned.isEmpty && !a.owned.isEmpty)
        #expect(!usersIn(b.owned).isEmpty && !usersIn(a.owned).isEmpty, "users on both nodes")
        try expectSameStates(projB.store, users: usersIn(b.owned), "moved to b")

        // New events reach each owner through its partitions' feeds.
        try await append(200)
        let polled = try await pollUntilCaughtUp(journal, [projA, projB])
        #expect(polled == 200)
        try expectSameStates(projA.store, users: usersIn(a.owned), "a after new events")
        try expectSameStates(projB.store, users: usersIn(b.owned), "b after new events")
        let status = try await ClusterStatus.read(journal)
        #expect(status.partitions.allSatisfy { $0.lag == 0 }, "every owner has read its feed to the end: \(status.partitions)")
        #expect(status.partitions.map(\.events).reduce(0, +) == 500)

        // a dies; b takes its partitions and rebuilds their users from the journal.
        await a.leave()
        try await append(50)
        for p in try await rounds(b, until: Set(0..<8)) { try await projB.adopt(p) }
        try await pollUntilCaughtUp(journal, [projB])
        #expect(b.owned == Set(0..<8))
        try expectSameStates(projB.store, users: users, "b after a died")
        // Polling again changes nothing (each event folds once).
        #expect(try await projB.poll() == 0)
        await b.leave()
        single.close()
        journal.close()
        await TestDatabase.drop(url)
    }
}
