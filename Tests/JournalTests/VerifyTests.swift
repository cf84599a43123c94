import Foundation
import Journal
import LMDB
import Testing

/// Tampering and damage below the journal API, made through plain LMDB, must be reported by verify
/// with the position, the check, and expected vs found.
@Suite struct VerifyTests {
    /// Builds a journal of 30 events over 3 streams, closes it, then lets `damage` edit the raw LMDB
    /// databases, reopens and verifies.
    func verifyAfter(_ damage: (Environment, [String: Database]) throws -> Void) throws -> VerificationReport {
        let dir = TempDir(); defer { dir.remove() }
        do {
            let j = try Journal(directory: dir.path)
            for b in 0..<10 {
                _ = try j.appendBlocking([AppendRequest(stream: stream("s\(b % 3)"), events: (0..<3).map {
                    event(UInt64(b * 3 + $0 + 1), text: String(repeating: "text \(b) ", count: 1 + $0 * 20))
                })])
            }
            #expect(try j.verify().ok)
            j.close()
        }
        do {
            let env = try Environment(path: dir.path)
            defer { env.close() }
            var dbs: [String: Database] = [:]
            for name in ["events", "event_ids", "streams", "meta"] { dbs[name] = try env.openDatabase(name, flags: []) }
            dbs["stream_runs"] = try env.openDatabase("stream_runs", flags: [.dupSort, .dupFixed])
            try damage(env, dbs)
        }
        let j = try Journal(directory: dir.path)
        defer { j.close() }
        return try j.verify()
    }

    func record(_ env: Environment, _ db: Database, _ position: UInt64) throws -> [UInt8] {
        try env.read { try Array($0.get(db, bigEndianBytes(position))!) }
    }

    func reseal(_ b: inout [UInt8]) {
        let crc = CRC32C.checksum(Array(b.dropLast(4)))
        withUnsafeBytes(of: crc.littleEndian) { b.replaceSubrange((b.count - 4)..<b.count, with: $0) }
    }

    @Test func bitFlipInPayload() throws {
        let r = try verifyAfter { env, dbs in
            var b = try record(env, dbs["events"]!, 17)
            b[b.count - 10] ^= 0x40
            try env.write { try $0.put(dbs["events"]!, bigEndianBytes(17), b) }
        }
        let p = try #require(r.problem)
        #expect(p.position == 17 && p.check.contains("checksumMismatch"))
        #expect(r.events == 16)
    }

    @Test func truncatedRecord() throws {
        let r = try verifyAfter { env, dbs in
            let b = try record(env, dbs["events"]!, 5)
            try env.write { try $0.put(dbs["events"]!, bigEndianBytes(5), Array(b.dropLast(10))) }
        }
        #expect(r.problem?.position == 5 && r.problem?.check.contains("truncated") == true)
    }

    /// Content changed and the CRC re-sealed: only the hash chain can tell.
    @Test func resealedTamperingBreaksTheChain() throws {
        let r = try verifyAfter { env, dbs in
            var b = try record(env, dbs["events"]!, 4)
            b[16] ^= 0x01  // event time
            reseal(&b)
            try env.write { try $0.put(dbs["events"]!, bigEndianBytes(4), b) }
        }
        let p = try #require(r.problem)
        #expect(p.check.contains("hash chain"))
        #expect(p.expected != p.found)
    }

    @Test func deletedRecordIsAGap() throws {
        let r = try verifyAfter { env, dbs in
            try env.write { _ = try $0.delete(dbs["events"]!, bigEndianBytes(12)) }
        }
        #expect(r.problem?.position == 13 && r.problem?.check == "consecutive positions")
        #expect(r.problem?.expected == "position 12")
    }

    @Test func missingEventIDIndexEntry() throws {
        let r = try verifyAfter { env, dbs in
            try env.write { _ = try $0.delete(dbs["event_ids"]!, event(8).id.bytes) }
        }
        #expect(r.problem?.position == 8 && r.problem?.check.hasPrefix("event-id index") == true && r.problem?.found == "no entry")
    }

    @Test func extraEventIDIndexEntry() throws {
        let r = try verifyAfter { env, dbs in
            try env.write { try $0.put(dbs["event_ids"]!, EventID(high: 1, low: 1).bytes, bigEndianBytes(3)) }
        }
        #expect(r.problem?.check == "event-id index size")
    }

    @Test func missingStreamIndexEntry() throws {
        let r = try verifyAfter { env, dbs in
            // Drop stream s1's whole list of runs.
            try env.write { _ = try $0.delete(dbs["stream_runs"]!, stream("s1").id.bytes) }
        }
        #expect(r.problem?.position == 4 && r.problem?.check.hasPrefix("stream index") == true)
        #expect(r.problem?.found == "no run holding it")
    }

    /// A run value is revision ‖ position ‖ count, each u64 big-endian (SPEC.md §3.5).
    func runValue(_ revision: UInt64, _ position: UInt64, _ count: UInt64) -> [UInt8] {
        bigEndianBytes(revision) + bigEndianBytes(position) + bigEndianBytes(count)
    }

    @Test func streamIndexRunPointingElsewhere() throws {
        // s1's first request is revisions 0...2 at positions 4...6; say they are at 5...7.
        let r = try verifyAfter { env, dbs in
            try env.write { txn in
                let key = stream("s1").id.bytes
                _ = try txn.delete(dbs["stream_runs"]!, key)
                try txn.put(dbs["stream_runs"]!, key, runValue(0, 5, 3))
            }
        }
        #expect(r.problem?.position == 4 && r.problem?.check == "stream index for \(stream("s1").id) revision 0")
        #expect(r.problem?.expected == "position 4" && r.problem?.found == "revision 0 at position 5")
    }

    @Test func extraStreamIndexRun() throws {
        // A run for revisions no record has: every record still finds its run, the total does not add up.
        let r = try verifyAfter { env, dbs in
            try env.write { try $0.put(dbs["stream_runs"]!, stream("s0").id.bytes, runValue(100, 3, 2), [.appendDup]) }
        }
        #expect(r.problem?.check == "stream index size")
        #expect(r.problem?.expected == "runs covering 30 revisions" && r.problem?.found == "runs covering 32 revisions")
    }

    @Test func emptyStreamIndexRun() throws {
        let r = try verifyAfter { env, dbs in
            try env.write { try $0.put(dbs["stream_runs"]!, stream("s2").id.bytes, runValue(50, 1, 0), [.appendDup]) }
        }
        // Found by the lookup of s2's revision 7 at position 26: the empty run is the first one starting after it.
        #expect(r.problem?.position == 26 && r.problem?.check.hasPrefix("stream index") == true)
        #expect(r.problem?.found.contains("count 0") == true)
    }

    @Test func streamTableOutOfStep() throws {
        let r = try verifyAfter { env, dbs in
            try env.write { _ = try $0.delete(dbs["streams"]!, stream("s2").id.bytes) }
        }
        #expect(r.problem?.check == "stream table")
    }

    @Test func revisionOutOfOrder() throws {
        // Two records of one stream swapped (each with a valid CRC): revisions no longer ascend.
        let r = try verifyAfter { env, dbs in
            let a = try record(env, dbs["events"]!, 1), b = try record(env, dbs["events"]!, 2)
            try env.write { txn in
                try txn.put(dbs["events"]!, bigEndianBytes(1), b)
                try txn.put(dbs["events"]!, bigEndianBytes(2), a)
            }
        }
        #expect(r.problem?.position == 1)
    }
}
