import Cluster
import Engine
import Foundation
import Journal
import JournalPostgres
import Projections
import Testing

/// Engines on cluster nodes write through the PostgreSQL journal of record (SPEC.md §15.5) and end in
/// the same per-user state as a single-machine engine given the same calls, whichever node writes.
@Suite(.enabled(if: TestDatabase.url != nil, "needs PSM_TEST_POSTGRES (scripts/test.sh starts a server)"))
struct NodeEngineTests {
    static let t0: Int64 = 1_767_225_600_000_000
    static let minute: Int64 = 60_000_000
    static let turns = [
        "I just got back from a hiking trip in the Dolomites with my brother Marco.",
        "By the way, I'm severely allergic to shellfish, so no shrimp or crab for me.",
        "My daughter Sofia starts primary school in September.",
        "We are thinking about adopting a golden retriever puppy.",
        "Work update: I was promoted to engineering manager last week.",
        "I moved to Lisbon in March and I love the light there.",
    ]

    @Test func enginesOnNodesMatchASingleMachineWhoeverWrites() async throws {
        let url = try await TestDatabase.fresh()
        let pg = try await PostgresJournal(url: url, partitions: 8)
        let dirs = (tempDir("engine-a"), tempDir("engine-b"), tempDir("engine-single"))
        defer { for d in [dirs.0, dirs.1, dirs.2] { try? FileManager.default.removeItem(atPath: d) } }
        let (engineA, recordA) = try NodeJournal.engine(directory: dirs.0, journal: pg, node: "a")
        let single = try Engine(directory: dirs.2)
        let users = try (0..<8).map { try UserRef(tenant: "acme", user: "u\($0)") }

        /// The same call on a node engine and on the single-machine engine.
        func both<T>(_ node: Engine, _ body: (Engine) async throws -> T) async throws -> (T, T) {
            (try await body(node), try await body(single))
        }
        func expectSame(_ engine: Engine, _ u: UserRef, _ label: String) throws {
            #expect(try engine.projections.userStateHash(u.key) == single.projections.userStateHash(u.key), "\(label): \(u)")
        }

        for u in users {
            for (i, text) in Self.turns.enumerated() {
                let (a, s) = try await both(engineA) { try await $0.observe(u, .init(text: text, session: "s\(i / 3)", speaker: "Ana"), at: Self.t0 + Int64(i) * Self.minute) }
                #expect(a.kept == s.kept && a.position == s.position, "one writer: both journals number events alike")
            }
            let (ra, rs) = try await both(engineA) { try await $0.recall(u, query: "shellfish allergy", k: 3, at: Self.t0 + 10 * Self.minute) }
            #expect(ra.memories.map(\.candidate.memory) == rs.memories.map(\.candidate.memory) && !ra.memories.isEmpty)
            let m = try #require(ra.memories.first).candidate.memory
            _ = try await both(engineA) { try await $0.feedback(u, recall: try #require(ra.recall), memory: m, kind: .helped, at: Self.t0 + 11 * Self.minute) }
            _ = try await both(engineA) { try await $0.sleep(u, at: Self.t0 + 20 * Self.minute) }
            try expectSame(engineA, u, "written on a")
        }
        // A retried observation is recognised through the journal of record.
        let retry = try await engineA.observe(users[0], .init(text: Self.turns[0], session: "s0", speaker: "Ana"), at: Self.t0)
        #expect(retry.wasDuplicate)
        // What a node cannot answer yet is refused by name, not answered from its empty local journal.
        let someMemory = try #require(try ra(engineA, users[0]))
        #expect(throws: EngineError.self, "outside historyOfRecord") { try engineA.history(users[0], someMemory) }
        let history = try await engineA.historyOfRecord(users[0], someMemory)
        let reference = try single.history(users[0], someMemory)
        #expect(!history.isEmpty && history.map(\.position) == reference.map(\.position) && history.map(\.eventID) == reference.map(\.eventID))
        #expect(history.map(\.event.type) == reference.map(\.event.type))
        // Replay-verify from the journal of record: the user's decisions decided again match the
        // journal (as on the single machine), the replayed state is the node's, and an altered decision
        // is reported.
        let fetched = try await recordA.stream(users[0].key)
        let replay = try Replayer.verify(stream: fetched, user: users[0], decider: engineA.decider, scratch: tempDir("replay"))
        let replayRef = try Replayer.verify(journal: single.journal, decider: single.decider, scratch: tempDir("replay-ref"), only: [users[0].key])
        #expect(replay.divergent == 0 && replay.commands > 0 && replay.checked > 0, "\(String(describing: replay.first))")
        #expect(replay.commands == replayRef.commands && replay.checked == replayRef.checked)
        #expect(replay.stateHash == (try engineA.projections.userStateHash(users[0].key)))
        var altered = fetched
        let gated = try #require(fetched.events.first { $0.header.eventType == MemoryEventType.gated.rawValue })
        altered.payloads[gated.header.eventID]?[0] ^= 0x01
        let caught = try Replayer.verify(stream: altered, user: users[0], decider: engineA.decider, scratch: tempDir("replay-bad"))
        #expect(caught.divergent >= 1 && caught.first?.position == gated.position, "\(String(describing: caught.first))")
        #expect(throws: EngineError.self, "outside withAsOf") { try engineA.tiers(users[0], asOf: .position(3)) }
        // Inside withAsOf the node folds the user's stream from the journal of record: the same past
        // state as the single machine's.
        for point in [AsOf.time(Self.t0 + 2 * Self.minute), .time(Self.t0 + 15 * Self.minute), .position(9)] {
            let there = try await engineA.withAsOf(users[0], point) { try engineA.tiers(users[0], asOf: point) }
            #expect(there == (try single.tiers(users[0], asOf: point)), "as of \(point)")
        }

        // Node b joins and takes its share; moved users answer on b with the same state.
        let a = try await PartitionOwnership(journal: pg, url: url, node: "a", address: "")
        for p in try await a.rebalance().gained { try await recordA.projector.adopt(p) }
        let (engineB, recordB) = try NodeJournal.engine(directory: dirs.1, journal: pg, node: "b")
        let b = try await PartitionOwnership(journal: pg, url: url, node: "b", address: "")
        for p in try await a.rebalance().lost { recordA.projector.release(p) }
        for p in try await b.rebalance().gained { try await recordB.projector.adopt(p) }
        let moved = users.filter { b.owned.contains(pg.partition(of: $0.key)) }
        let stayed = users.filter { a.owned.contains(pg.partition(of: $0.key)) }
        #expect(!moved.isEmpty && !stayed.isEmpty, "8 users over 8 partitions and 2 nodes")
        for u in moved { try expectSame(engineB, u, "moved to b") }

        // b writes for a moved user; then a, no longer its owner, writes for it too: a decides on the
        // user's whole stream (it catches up from the journal of record first), so all agree.
        let u = try #require(moved.first)
        _ = try await both(engineB) { try await $0.observe(u, .init(text: "I started learning the cello.", speaker: "Ana"), at: Self.t0 + 30 * Self.minute) }
        try expectSame(engineB, u, "b wrote")
        _ = try await both(engineA) { try await $0.observe(u, .init(text: "The cello teacher is called Ines.", speaker: "Ana"), at: Self.t0 + 31 * Self.minute) }
        try expectSame(engineA, u, "a wrote after b")
        #expect(try await pollUntilCaughtUp(pg, [recordB.projector]) > 0, "b's feed brings a's write")
        try expectSame(engineB, u, "b after its feed")

        // Erasure on a node destroys the user's key in the journal of record.
        let erased = try #require(stayed.first)
        _ = try await engineA.erase(erased, at: Self.t0 + 40 * Self.minute)
        #expect(try await pg.key(erased.key, 1) == nil)
        #expect(throws: ProjectionError.self) { try engineA.tiers(erased) }
        let report = try await pg.verifyJournal()
        #expect(report.ok && report.shreddedEvents > 0)

        await a.leave()
        await b.leave()
        engineA.close()
        engineB.close()
        single.close()
        pg.close()
        await TestDatabase.drop(url)
    }

    /// Some memory of the user (for the refused history read).
    func ra(_ engine: Engine, _ u: UserRef) throws -> ID128? {
        try engine.tiers(u).memories.values.flatMap { $0 }.first?.record.id
    }
}
