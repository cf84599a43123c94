import Crypto
import Foundation
import Journal
import JournalPostgres
import PostgresNIO
import Testing
import Logging

private let log = Logger(label: "psm.test")

/// What only the PostgreSQL backend has: its schema, its change feed and damage made in its tables.
@Suite(.enabled(if: TestPostgres.url != nil, "needs PSM_TEST_POSTGRES (scripts/test.sh starts a server)"))
struct PostgresJournalTests {
    /// Two stream names whose users fall in the same partition.
    static func samePartition(_ j: PostgresJournal) -> (StreamName, StreamName) {
        let first = stream("feed-0")
        for i in 1... {
            let s = stream("feed-\(i)")
            if j.partition(of: s.id) == j.partition(of: first.id) { return (first, s) }
        }
        fatalError()
    }

    /// A transaction that began earlier but commits later than another must not be skipped by a reader
    /// of the partition's feed. A reader that polls "position > last seen" does skip it, which is the
    /// failure issue 9 measured; the feed waits for the older transaction instead.
    @Test func changeFeedDoesNotSkipAnOutOfOrderCommit() async throws {
        let url = try await TestPostgres.freshDatabase()
        let j = try await PostgresJournal(url: url, partitions: 4)
        let (s1, s2) = Self.samePartition(j)
        let partition = j.partition(of: s1.id)
        let (raw, runner) = try TestPostgres.client(url)
        let preparer = RecordPreparer()
        let late = event(1)
        let record = preparer.record(try preparer.prepare(late, stream: s1.id, key: nil), revision: 0, stream: s1.id)
        var naiveCheckpoint: Int64 = 0
        var early: AppendResult?
        try await raw.withConnection { c in
            try await c.query("BEGIN", logger: log)
            for try await _ in try await c.query("SELECT pg_current_xact_id()::text", logger: log).decode(String.self) {}
            try await c.query(
                """
                INSERT INTO psm_streams (stream_id, partition, tenant, name, next_revision, head)
                VALUES (\(ByteBuffer(bytes: s1.id.bytes)), \(partition), \(s1.tenant), \(s1.name), 1, \(ByteBuffer(bytes: Journal.chain([UInt8](repeating: 0, count: 32), record))))
                """, logger: log)
            try await c.query(
                """
                INSERT INTO psm_events (partition, stream_id, revision, event_id, record)
                VALUES (\(partition), \(ByteBuffer(bytes: s1.id.bytes)), 0, \(ByteBuffer(bytes: late.id.bytes)), \(ByteBuffer(bytes: record)))
                """, logger: log)
            // A newer transaction commits first.
            early = try await j.append([AppendRequest(stream: s2, events: [event(2)])])[0]
            for try await p in try await raw.query("SELECT coalesce(max(position), 0) FROM psm_events").decode(Int64.self) { naiveCheckpoint = p }
            let (seen, _) = try await j.tail(partition: partition, after: .init())
            #expect(seen.isEmpty, "the feed shows nothing newer than a transaction still open")
            try await c.query("COMMIT", logger: log)
        }
        let firstPosition = try #require(try await j.event(withID: late.id)).position
        #expect(naiveCheckpoint == Int64(try #require(early).positions[0]))
        #expect(firstPosition < UInt64(naiveCheckpoint), "the late commit has the smaller position")
        var naive = 0
        for try await _ in try await raw.query("SELECT position FROM psm_events WHERE position > \(naiveCheckpoint)").decode(Int64.self) { naive += 1 }
        #expect(naive == 0, "a position checkpoint skips the late commit")
        // Both show once no older transaction is open anywhere on the server (other tests may hold one
        // for a moment: the feed waits for every transaction older than its rows, SPEC.md §15.3).
        var (events, cursor) = try await j.tail(partition: partition, after: .init())
        let deadline = Date().addingTimeInterval(30)
        while events.count < 2 && Date() < deadline {
            try await Task.sleep(nanoseconds: 20_000_000)
            (events, cursor) = try await j.tail(partition: partition, after: .init())
        }
        #expect(Set(events.map(\.header.eventID)) == [late.id, event(2).id], "the feed shows both")
        #expect(events.map(\.header.eventID) == [late.id, event(2).id], "in transaction order: the older transaction first")
        let (rest, same) = try await j.tail(partition: partition, after: cursor)
        #expect(rest.isEmpty && same == cursor)
        // Other partitions' feeds do not show them.
        let other = (partition + 1) % j.partitions
        #expect(try await j.tail(partition: other, after: .init()).0.isEmpty)
        await #expect(throws: JournalError.self) { try await j.tail(partition: j.partitions, after: .init()) }
        runner.cancel()
        j.close()
        await TestPostgres.drop(url)
    }

    /// The feed of a partition under concurrent appends delivers every event exactly once, read
    /// while the writers run.
    @Test func changeFeedUnderConcurrentWritersSeesEveryEventOnce() async throws {
        let url = try await TestPostgres.freshDatabase()
        let j = try await PostgresJournal(url: url, partitions: 2)
        let writers = 8, perWriter = 25
        let reader = Task { () -> [EventID] in
            var cursors = [PostgresJournal.FeedCursor](repeating: .init(), count: j.partitions)
            var seen: [EventID] = []
            // Until everything arrived (a duplicate would show as a count above it), at most 60 s: other
            // tests' open transactions can hold the feed back for a while (SPEC.md §15.3).
            let deadline = Date().addingTimeInterval(60)
            while seen.count < writers * perWriter && Date() < deadline {
                for p in 0..<j.partitions {
                    let (events, next) = try await j.tail(partition: p, after: cursors[p], limit: 7)
                    cursors[p] = next
                    seen += events.map(\.header.eventID)
                }
                try await Task.sleep(nanoseconds: 5_000_000)
            }
            // One more read after the last: nothing further (no event twice).
            for p in 0..<j.partitions { seen += try await j.tail(partition: p, after: cursors[p]).0.map(\.header.eventID) }
            return seen
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<writers {
                group.addTask {
                    for i in 0..<perWriter {
                        _ = try await j.append([AppendRequest(stream: stream("w\(w % 5)"), events: [event(UInt64(w * 1000 + i + 1))])])
                    }
                }
            }
            try await group.waitForAll()
        }
        let seen = try await reader.value
        #expect(seen.count == writers * perWriter && Set(seen).count == seen.count)
        j.close()
        await TestPostgres.drop(url)
    }

    /// Damage made in the tables is found, with the check that failed.
    @Test func verifyFindsDamageInTheTables() async throws {
        let url = try await TestPostgres.freshDatabase()
        let j = try await PostgresJournal(url: url)
        let s = stream("damaged")
        _ = try await j.append([AppendRequest(stream: s, events: (1...5).map { event($0) })])
        #expect(try await j.verifyJournal().ok)
        let (raw, runner) = try TestPostgres.client(url)
        let sid = ByteBuffer(bytes: s.id.bytes)
        func expectProblem(_ check: String, _ damage: String, _ repair: String) async throws {
            try await raw.query(PostgresQuery(unsafeSQL: damage))
            let report = try await j.verifyJournal()
            #expect(report.problem?.check.contains(check) == true, "\(damage): \(String(describing: report.problem))")
            try await raw.query(PostgresQuery(unsafeSQL: repair))
            #expect(try await j.verifyJournal().ok, "repaired: \(repair)")
        }
        let hexID = s.id.bytes.map { String(format: "%02x", $0) }.joined()
        let row = "stream_id = '\\x\(hexID)'::bytea AND revision = 2"
        // A flipped bit in a payload: the CRC fails.
        try await expectProblem(
            "record", "UPDATE psm_events SET record = set_byte(record, 66, get_byte(record, 66) # 1) WHERE \(row)",
            "UPDATE psm_events SET record = set_byte(record, 66, get_byte(record, 66) # 1) WHERE \(row)")
        // A record moved to another revision: its header disagrees with its row.
        try await expectProblem(
            "revision", "UPDATE psm_events SET revision = 9 WHERE \(row)", "UPDATE psm_events SET revision = 2 WHERE stream_id = '\\x\(hexID)'::bytea AND revision = 9")
        // A rewritten head.
        try await expectProblem(
            "hash chain", "UPDATE psm_streams SET head = sha256(head) WHERE stream_id = '\\x\(hexID)'::bytea",
            "UPDATE psm_streams SET head = \(hexLiteral(try #require(try await j.stream(s.id)).head)) WHERE stream_id = '\\x\(hexID)'::bytea")
        // A count that disagrees.
        try await expectProblem(
            "event count", "UPDATE psm_streams SET next_revision = 6 WHERE stream_id = \(literal(sid))",
            "UPDATE psm_streams SET next_revision = 5 WHERE stream_id = \(literal(sid))")
        // A deleted last record: the count (and chain) no longer agree.
        try await raw.query(PostgresQuery(unsafeSQL: "DELETE FROM psm_events WHERE stream_id = \(literal(sid)) AND revision = 4"))
        #expect(try await j.verifyJournal().problem != nil)
        runner.cancel()
        j.close()
        await TestPostgres.drop(url)
    }

    /// A tenant's Merkle tree on PostgreSQL (SPEC.md §15.4): the same leaves as the LMDB journal's for
    /// the same appends; it grows only at its end (a transaction still open holds newer records out);
    /// a signed head is extended by the later tree and broken by a damaged record.
    @Test func tenantTreeMatchesLMDBGrowsAtItsEndAndShowsDamage() async throws {
        let url = try await TestPostgres.freshDatabase()
        let j = try await PostgresJournal(url: url, partitions: 4)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("psm-tree-\(UInt64.random(in: 0...UInt64.max))")
        defer { try? FileManager.default.removeItem(at: dir) }
        let lmdb = try Journal(directory: dir.path)
        defer { lmdb.close() }
        let requests = (1...9).map { i in AppendRequest(stream: stream("tree-\(i % 3)", tenant: i % 3 == 0 ? "other" : "acme"), events: [event(UInt64(i))]) }
        for r in requests {
            _ = try await j.append([r])
            _ = try await lmdb.append([r])
        }
        /// The tree once `n` leaves are visible (another test's open transaction may hold them back briefly).
        func settled(_ n: Int) async throws -> (leaves: [[UInt8]], positions: [Position]) {
            let deadline = Date().addingTimeInterval(30)
            var t = try await j.tenantLeaves("acme")
            while t.leaves.count < n && Date() < deadline {
                try await Task.sleep(nanoseconds: 20_000_000)
                t = try await j.tenantLeaves("acme")
            }
            return t
        }
        let tree = try await settled(6)
        let reference = try lmdb.tenantLeaves("acme")
        #expect(tree.leaves.count == 6 && tree.leaves == reference.leaves, "one writer: the same records in the same order as LMDB")
        let head = try TreeHead.sign(tenant: "acme", leaves: tree.leaves, positions: tree.positions, key: Curve25519.Signing.PrivateKey())
        #expect(head.precheck(nil) == nil && head.extended(by: tree.leaves, positions: tree.positions) == nil)

        let (raw, runner) = try TestPostgres.client(url)
        try await raw.withConnection { c in
            try await c.query("BEGIN", logger: log)
            for try await _ in try await c.query("SELECT pg_current_xact_id()::text", logger: log).decode(String.self) {}
            _ = try await j.append([AppendRequest(stream: stream("tree-1", tenant: "acme"), events: [event(10)])])
            let during = try await j.tenantLeaves("acme")
            #expect(during.leaves == tree.leaves, "a record committed after an older transaction began waits for it")
            try await c.query("COMMIT", logger: log)
        }
        let grown = try await settled(7)
        #expect(grown.leaves.count == 7 && Array(grown.leaves.prefix(6)) == tree.leaves, "the tree grew at its end")
        #expect(head.extended(by: grown.leaves, positions: grown.positions) == nil, "the later tree extends the head")

        let first = try #require(try await j.event(withID: event(1).id))
        try await raw.query(PostgresQuery(unsafeSQL: "UPDATE psm_events SET record = set_byte(record, 66, get_byte(record, 66) # 1) WHERE position = \(first.position)"))
        let damaged = try await j.tenantLeaves("acme")
        let problem = head.extended(by: damaged.leaves, positions: damaged.positions)
        #expect(problem?.contains("altered, removed, inserted or reordered") == true, "\(String(describing: problem))")
        runner.cancel()
        j.close()
        await TestPostgres.drop(url)
    }

    @Test func schemaVersionPartitionsAndURLsAreChecked() async throws {
        let url = try await TestPostgres.freshDatabase()
        let j = try await PostgresJournal(url: url, partitions: 16)
        #expect(j.partitions == 16)
        j.close()
        let again = try await PostgresJournal(url: url)
        #expect(again.partitions == 16, "an existing schema's count is kept")
        again.close()
        await #expect(throws: JournalError.self) { try await PostgresJournal(url: url, partitions: 8) }
        await #expect(throws: JournalError.self) { try await PostgresJournal(url: url, partitions: 0) }
        let (raw, runner) = try TestPostgres.client(url)
        // A version 1 database (before the API key table) is migrated to the current version on open,
        // and its events survive.
        let kept = try await PostgresJournal(url: url)
        _ = try await kept.append([AppendRequest(stream: stream("migrated"), events: [event(1)])])
        kept.close()
        try await raw.query("DROP TABLE psm_api_keys")
        try await raw.query("UPDATE psm_schema SET version = 1")
        let migrated = try await PostgresJournal(url: url)
        var version = 0
        for try await v in try await raw.query("SELECT version FROM psm_schema").decode(Int.self) { version = v }
        #expect(version == PostgresJournal.schemaVersion && version == 2)
        #expect(try await migrated.apiKeys().isEmpty, "the key table exists after the migration")
        let row = PostgresJournal.APIKeyRow(id: "00112233aabbccdd", tenant: "acme", scopes: "memory:read", name: "app", sha256: String(repeating: "ab", count: 32), created: "2026-12-06T00:00:00Z", revoked: nil)
        try await migrated.insertAPIKey(row)
        #expect(try await migrated.apiKeys() == [row])
        let revoked = try await migrated.revokeAPIKey(id: row.id, at: "2026-12-06T01:00:00Z")
        #expect(revoked?.revoked == "2026-12-06T01:00:00Z")
        #expect(try await migrated.revokeAPIKey(id: row.id, at: "2026-12-07T00:00:00Z")?.revoked == "2026-12-06T01:00:00Z", "the first revocation time is kept")
        #expect(try await migrated.revokeAPIKey(id: "ffffffffffffffff", at: "2026-12-07T00:00:00Z") == nil)
        #expect(try await migrated.event(withID: event(1).id) != nil)
        #expect(try await migrated.verifyJournal().ok)
        migrated.close()
        try await raw.query("UPDATE psm_schema SET version = 99")
        do {
            _ = try await PostgresJournal(url: url)
            Issue.record("a newer schema must be refused")
        } catch {
            #expect("\(error)".contains("99"), "\(error)")
        }
        runner.cancel()
        for bad in ["mysql://x/y", "postgres://host-only", "postgres:///nohost", "not a url"] {
            do {
                _ = try await PostgresJournal(url: bad)
                Issue.record("\(bad) must be refused")
            } catch {
                #expect("\(error)".contains("journal URL"), "\(bad): \(error)")
            }
        }
        // A server that is not there is named at once, without the password.
        do {
            _ = try await PostgresJournal(url: "postgres://u:secret@127.0.0.1:1/db")
            Issue.record("an unreachable server must be an error")
        } catch {
            #expect("\(error)".contains("cannot connect to postgres://u:***@127.0.0.1:1/db") && !"\(error)".contains("secret"), "\(error)")
        }
        #expect(PostgresJournal.redacted("postgres://u:secret@h/db").contains("***"))
        #expect(!PostgresJournal.redacted("postgres://u:secret@h/db").contains("secret"))
        await TestPostgres.drop(url)
    }
}

private func literal(_ b: ByteBuffer) -> String { hexLiteral(Array(b.readableBytesView)) }
private func hexLiteral(_ b: [UInt8]) -> String { "'\\x" + b.map { String(format: "%02x", $0) }.joined() + "'::bytea" }
