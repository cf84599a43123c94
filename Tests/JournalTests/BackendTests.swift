import Foundation
import Journal
import JournalPostgres
import Logging
import PostgresNIO
import Testing

/// The server the PostgreSQL backend is tested against: `scripts/test.sh` starts one on loopback
/// (`scripts/postgres.sh`) and exports its URL. Each test makes a database of its own there.
enum TestPostgres {
    static let url: String? = ProcessInfo.processInfo.environment["PSM_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }

    /// The URL of a new, empty database on the test server.
    static func freshDatabase() async throws -> String {
        let base = try #require(url, "PSM_TEST_POSTGRES is not set")
        var u = try #require(URLComponents(string: base))
        u.path = "/psm_t_\(UInt64.random(in: 0...UInt64.max))"
        let fresh = try #require(u.string)
        #expect(try await PostgresJournal.createDatabaseIfMissing(fresh))
        #expect(try await !PostgresJournal.createDatabaseIfMissing(fresh), "a second call finds the database")
        return fresh
    }

    /// Drops the database of `url` (with FORCE: the pool's connections may still be closing).
    static func drop(_ url: String) async {
        guard var u = URLComponents(string: url) else { return }
        let name = String(u.path.dropFirst())
        u.path = "/postgres"
        guard let admin = u.string, let client = try? PostgresClient(configuration: PostgresJournal.configuration(admin)) else { return }
        let runner = Task { await client.run() }
        defer { runner.cancel() }
        _ = try? await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \"\(name)\" WITH (FORCE)"))
    }

    /// A plain client on `url`, for tests that change rows behind the journal's back.
    static func client(_ url: String) throws -> (PostgresClient, Task<Void, Never>) {
        let client = PostgresClient(configuration: try PostgresJournal.configuration(url))
        return (client, Task { await client.run() })
    }
}

/// The backends the behaviour suite runs against.
enum BackendKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case lmdb, postgres
    var testDescription: String { rawValue }
    /// LMDB always; PostgreSQL when a test server is given (always in CI: see `postgresIsThereInCI`).
    static var available: [BackendKind] { TestPostgres.url == nil ? [.lmdb] : [.lmdb, .postgres] }
}

/// One backend opened for one test, and how to get rid of it.
struct OpenBackend {
    let journal: any JournalBackend
    let close: @Sendable () async -> Void

    static func open(_ kind: BackendKind) async throws -> OpenBackend {
        switch kind {
        case .lmdb:
            let dir = TempDir()
            let j = try Journal(directory: dir.path)
            return OpenBackend(journal: j) {
                j.close()
                dir.remove()
            }
        case .postgres:
            let url = try await TestPostgres.freshDatabase()
            let j = try await PostgresJournal(url: url, partitions: 8)
            return OpenBackend(journal: j) {
                j.close()
                await TestPostgres.drop(url)
            }
        }
    }
}

/// The journal behaviour every backend must have (SPEC.md §6, §15), run against each of them.
@Suite struct JournalBackendTests {
    @Test func postgresIsThereInCI() {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            #expect(TestPostgres.url != nil, "CI must run the PostgreSQL backend's tests: scripts/test.sh sources scripts/postgres.sh")
        }
    }

    @Test(arguments: BackendKind.available)
    func appendThenReadInOrder(_ kind: BackendKind) async throws {
        let b = try await OpenBackend.open(kind)
        let j = b.journal
        let a = stream("user-a"), c = stream("user-b")
        let long = String(repeating: "long text ", count: 40)
        let r = try await j.append([
            AppendRequest(stream: a, expected: .noStream, events: [event(1), event(2)]),
            AppendRequest(stream: c, expected: .noStream, events: [event(3)]),
        ])
        let r3 = try await j.append([AppendRequest(stream: a, expected: .exact(1), events: [event(4, text: long)])])[0]
        #expect(r[0].firstRevision == 0 && r[1].firstRevision == 0 && r3.firstRevision == 2)
        #expect(!r[0].wasDuplicate && !r3.wasDuplicate)
        let positions = r[0].positions + r[1].positions + r3.positions
        #expect(positions == positions.sorted() && Set(positions).count == 4, "positions grow: \(positions)")

        let events = try await j.readStream(a.id, fromRevision: 0, limit: 10)
        #expect(events.map(\.header.revision) == [0, 1, 2])
        #expect(events.map(\.position) == r[0].positions + r3.positions)
        #expect(events.map(\.header.eventID) == [event(1).id, event(2).id, event(4).id])
        #expect(try await j.readStream(a.id, fromRevision: 1, limit: 1).map(\.header.revision) == [1])
        #expect(try await j.readStream(stream("nobody").id, fromRevision: 0, limit: 5).isEmpty)
        #expect(events[2].header.isCompressed)
        #expect(try await j.plainPayload(of: events[2]) == event(4, text: long).payload)
        #expect(try await j.plainPayload(of: events[0]) == event(1).payload)
        #expect(try await j.event(withID: event(3).id)?.position == r[1].positions[0])
        #expect(try await j.event(withID: EventID(high: 9, low: 9)) == nil)
        let info = try #require(try await j.stream(a.id))
        #expect(info.nextRevision == 3 && info.stream == a)
        #expect(info.firstPosition == r[0].positions[0] && info.lastPosition == r3.positions[0])
        var chain = [UInt8](repeating: 0, count: 32)
        for e in events { chain = Journal.chain(chain, e.record) }
        #expect(info.head == chain, "the stream's head is the hash chain over its records")
        let report = try await j.verifyJournal()
        #expect(report.ok && report.events == 4 && report.streams == 2, "\(String(describing: report.problem))")
        #expect(report.heads[a.id] == chain)
        await b.close()
    }

    @Test(arguments: BackendKind.available)
    func expectedRevisionConflicts(_ kind: BackendKind) async throws {
        let b = try await OpenBackend.open(kind)
        let j = b.journal
        let s = stream("user-a")
        await #expect(throws: JournalError.self) { try await j.append([AppendRequest(stream: s, expected: .exact(0), events: [event(1)])]) }
        _ = try await j.append([AppendRequest(stream: s, expected: .noStream, events: [event(1)])])
        do {
            _ = try await j.append([AppendRequest(stream: s, expected: .noStream, events: [event(2)])])
            Issue.record("noStream on an existing stream must fail")
        } catch {
            guard case .wrongExpectedRevision(_, let expected, let actual) = error else { Issue.record("\(error)"); return }
            #expect(expected == .noStream && actual == 0)
        }
        await #expect(throws: JournalError.self) { try await j.append([AppendRequest(stream: s, expected: .exact(5), events: [event(2)])]) }
        _ = try await j.append([AppendRequest(stream: s, expected: .exact(0), events: [event(2)])])
        _ = try await j.append([AppendRequest(stream: s, expected: .any, events: [event(3)])])
        // One failing request fails the whole append: the other stream's events are not written.
        await #expect(throws: JournalError.self) {
            try await j.append([
                AppendRequest(stream: stream("other"), events: [event(50)]),
                AppendRequest(stream: s, expected: .exact(0), events: [event(51)]),
            ])
        }
        #expect(try await j.event(withID: event(50).id) == nil)
        #expect(try await j.stream(stream("other").id) == nil)
        let report = try await j.verifyJournal()
        #expect(report.ok && report.events == 3)
        await b.close()
    }

    @Test(arguments: BackendKind.available)
    func exactlyOnceByEventID(_ kind: BackendKind) async throws {
        let b = try await OpenBackend.open(kind)
        let j = b.journal
        let s = stream("user-a")
        let first = try await j.append([AppendRequest(stream: s, expected: .noStream, events: [event(1), event(2)])])[0]
        _ = try await j.append([AppendRequest(stream: s, events: [event(3)])])
        // The same request again with its now-stale expected revision: the original result.
        let retry = try await j.append([AppendRequest(stream: s, expected: .noStream, events: [event(1), event(2)])])[0]
        #expect(retry.positions == first.positions && retry.wasDuplicate && retry.firstRevision == 0)
        var changed = event(2)
        changed.payload = payload(text: "something else", n: 2)
        do {
            _ = try await j.append([AppendRequest(stream: s, events: [event(1), changed])])
            Issue.record("same id with other content must fail")
        } catch {
            guard case .eventIDConflict(let id, let position, _) = error else { Issue.record("\(error)"); return }
            #expect(id == changed.id && position == first.positions[1])
        }
        await #expect(throws: JournalError.self, "same id on another stream") {
            try await j.append([AppendRequest(stream: stream("user-b"), events: [event(1)])])
        }
        do {
            _ = try await j.append([AppendRequest(stream: s, events: [event(4), event(1)])])
            Issue.record("a partial duplicate must fail")
        } catch {
            guard case .partialDuplicate = error else { Issue.record("\(error)"); return }
        }
        #expect(try await j.event(withID: event(4).id) == nil, "the new event of a failed request is not written")
        await #expect(throws: JournalError.self) { try await j.append([AppendRequest(stream: s, events: [event(7), event(7)])]) }
        let report = try await j.verifyJournal()
        #expect(report.ok && report.events == 3)
        await b.close()
    }

    @Test(arguments: BackendKind.available)
    func invalidArgumentsWriteNothing(_ kind: BackendKind) async throws {
        let b = try await OpenBackend.open(kind)
        let j = b.journal
        let s = stream("u")
        var zeroID = event(1); zeroID.id = .zero
        var zeroType = event(1); zeroType.type = 0
        var badPayload = event(1); badPayload.payload = [0x10, 0x01, 0x08, 0x01]
        var huge = event(1); huge.payload = [UInt8](repeating: 0, count: RecordFormat.maxPayloadSize + 1)
        for e in [zeroID, zeroType, badPayload, huge] {
            await #expect(throws: JournalError.self) { try await j.append([AppendRequest(stream: s, events: [e])]) }
        }
        await #expect(throws: JournalError.self) { try await j.append([AppendRequest(stream: s, events: [])]) }
        await #expect(throws: JournalError.self) { try await j.append([]) }
        #expect(try await j.stream(s.id) == nil)
        #expect(try await j.verifyJournal().events == 0)
        await b.close()
    }

    /// Sealed payloads read back while the key exists; after the keys are destroyed the records stay,
    /// verify still passes and counts them as shredded, and their payloads are unreadable.
    @Test(arguments: BackendKind.available)
    func encryptionAndCryptoShredding(_ kind: BackendKind) async throws {
        let b = try await OpenBackend.open(kind)
        let j = b.journal
        let s = stream("secretive"), other = stream("other")
        let secret = "my passport number is 12345678, keep it safe " + String(repeating: "x", count: 80)
        _ = try await j.append([
            AppendRequest(stream: s, events: [event(1, text: secret), event(2)], encrypted: true),
            AppendRequest(stream: other, events: [event(3)], encrypted: true),
        ])
        let sealed = try await j.readStream(s.id, fromRevision: 0, limit: 10)
        #expect(sealed.allSatisfy { $0.header.keyID != 0 })
        #expect(!sealed[0].record.containsSubsequence(Array("passport".utf8)))
        #expect(try await j.plainPayload(of: sealed[0]) == event(1, text: secret).payload)
        // A retry of a sealed append is still recognised (the comparison is on plain payloads).
        let retry = try await j.append([AppendRequest(stream: s, events: [event(1, text: secret), event(2)], encrypted: true)])
        #expect(retry[0].wasDuplicate)
        #expect(try await j.destroyKeys(s.id) == 1)
        do {
            _ = try await j.plainPayload(of: sealed[0])
            Issue.record("a shredded payload must be unreadable")
        } catch let e as JournalError {
            guard case .keyUnavailable = e else { Issue.record("\(e)"); return }
        }
        #expect(try await j.plainPayload(of: try #require(try await j.event(withID: event(3).id))) == event(3).payload, "other streams keep their keys")
        let report = try await j.verifyJournal()
        #expect(report.ok && report.events == 3 && report.encryptedEvents == 3 && report.shreddedEvents == 2)
        await b.close()
    }

    /// Many writers race for the same expected revision, round after round: exactly one wins each
    /// round and the others get a version conflict (issue 9; `PSM_LONG` runs 1,000 rounds).
    @Test(arguments: BackendKind.available)
    func sameExpectedRevisionHasExactlyOneWinner(_ kind: BackendKind) async throws {
        let b = try await OpenBackend.open(kind)
        let j = b.journal
        let s = stream("contended")
        let rounds = Int(ProcessInfo.processInfo.environment["PSM_RACE_ROUNDS"] ?? "") ?? 40
        let writers = 6
        var doubleWinners = 0
        for round in 0..<rounds {
            let expected: ExpectedRevision = round == 0 ? .noStream : .exact(UInt64(round - 1))
            let wins = await withTaskGroup(of: Bool.self) { group in
                for w in 0..<writers {
                    group.addTask {
                        let e = event(UInt64(round * writers + w + 1))
                        do {
                            _ = try await j.append([AppendRequest(stream: s, expected: expected, events: [e])])
                            return true
                        } catch {
                            guard let e = error as? JournalError, case .wrongExpectedRevision = e else {
                                Issue.record("round \(round) writer \(w): \(error)")
                                return false
                            }
                            return false
                        }
                    }
                }
                var n = 0
                for await won in group where won { n += 1 }
                return n
            }
            if wins != 1 { doubleWinners += 1 }
            #expect(wins == 1, "round \(round): \(wins) winners")
        }
        #expect(doubleWinners == 0)
        let info = try #require(try await j.stream(s.id))
        #expect(info.nextRevision == UInt64(rounds))
        #expect(try await j.verifyJournal().ok)
        await b.close()
    }

    /// Retries of the same append racing each other (a client whose commit timed out, retried while the
    /// first attempt still ran) land once; every caller gets the same positions.
    @Test(arguments: BackendKind.available)
    func concurrentRetriesLandOnce(_ kind: BackendKind) async throws {
        let b = try await OpenBackend.open(kind)
        let j = b.journal
        for round in 0..<10 {
            let s = stream("retried-\(round)")
            let events = [event(UInt64(round * 2 + 1)), event(UInt64(round * 2 + 2))]
            let results = try await withThrowingTaskGroup(of: AppendResult.self) { group in
                for _ in 0..<4 {
                    group.addTask { try await j.append([AppendRequest(stream: s, expected: .noStream, events: events)])[0] }
                }
                var out: [AppendResult] = []
                for try await r in group { out.append(r) }
                return out
            }
            #expect(Set(results.map(\.positions)).count == 1, "round \(round): \(results.map(\.positions))")
            #expect(results.filter { !$0.wasDuplicate }.count == 1)
            #expect(try await j.stream(s.id)?.nextRevision == 2)
        }
        #expect(try await j.verifyJournal().events == 20)
        await b.close()
    }

    /// Format v1 byte for byte: the same events make the same record bytes in both backends.
    @Test func bothBackendsStoreTheSameBytes() async throws {
        guard TestPostgres.url != nil else { return }
        let l = try await OpenBackend.open(.lmdb), p = try await OpenBackend.open(.postgres)
        let s = stream("same-bytes")
        let events = [event(1), event(2, text: String(repeating: "compressible ", count: 30)), event(3, type: 7)]
        for b in [l, p] { _ = try await b.journal.append([AppendRequest(stream: s, expected: .noStream, events: events)]) }
        let fromLMDB = try await l.journal.readStream(s.id, fromRevision: 0, limit: 10).map(\.record)
        let fromPostgres = try await p.journal.readStream(s.id, fromRevision: 0, limit: 10).map(\.record)
        #expect(fromLMDB.count == 3 && fromLMDB == fromPostgres)
        let (lh, ph) = (try await l.journal.stream(s.id)?.head, try await p.journal.stream(s.id)?.head)
        #expect(lh != nil && lh == ph)
        await l.close()
        await p.close()
    }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { Array(self[$0..<($0 + needle.count)]) == needle }
    }
}
