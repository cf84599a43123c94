import Foundation
import Journal
import LMDB
import Testing
import Workloads
import Projections

/// Opening a projection store of an earlier format (SPEC.md §11.3).
@Suite struct FormatTests {
    /// A store of format 1 (its marker and its retired `postings` table) is refused by a plain open,
    /// naming `psm rebuild`; opened with `resetOutdated` it is emptied in one transaction (checkpoint 0,
    /// retired tables dropped) and catch-up refolds it to exactly the state a fresh fold reaches.
    @Test func outdatedStoreIsRefusedOrRefolded() throws {
        let dir = TempDir()
        defer { dir.remove() }
        let journal = try Journal(directory: dir.path + "/journal")
        defer { journal.close() }
        var gen = MemoryEventGenerator(seed: 5, users: 2, erasureRate: 0)
        for _ in 0..<300 {
            let s = gen.next()
            let data = EventData(id: s.id, type: s.event.type.rawValue, time: s.time, causation: s.causation, payload: s.event.payload())
            _ = try journal.appendBlocking([AppendRequest(stream: s.user.stream, events: [data])])
        }
        let path = dir.path + "/projections"
        var store = try ProjectionStore(directory: path)
        try store.catchUp(journal)
        let hash = try store.stateHash()
        #expect(try store.counts().entries["slots", default: 0] > 0)
        store.close()

        func withEnvironment(_ body: (Environment) throws -> Void) throws {
            var o = Environment.Options()
            o.maxDatabases = 16
            let env = try Environment(path: path, options: o)
            defer { env.close() }
            try body(env)
        }
        try withEnvironment { env in
            let meta = try env.openDatabase("meta"), postings = try env.openDatabase("postings")
            try env.write { txn in
                try txn.put(meta, Array("format".utf8), Array("psm-projections/1".utf8))
                try txn.put(postings, [1, 2, 3], [4])
            }
        }

        #expect {
            _ = try ProjectionStore(directory: path)
        } throws: { error in
            "\(error)".contains("psm-projections/1") && "\(error)".contains("psm rebuild")
        }
        store = try ProjectionStore(directory: path, resetOutdated: true)
        #expect(try store.checkpoint() == 0)
        let counts = try store.counts().entries
        #expect(counts.filter { $0.key != "meta" }.values.allSatisfy { $0 == 0 }, "\(counts)")
        #expect(counts["meta"] == 1, "only the format marker is left")
        let report = try store.catchUp(journal)
        #expect(report.anomalies == 0 && report.applied == 300)
        #expect(try store.stateHash() == hash)
        store.close()
        try withEnvironment { env in
            let retired = try env.write { txn in try txn.openDatabaseIfPresent("postings") }
            #expect(retired == nil)
        }
    }
}
