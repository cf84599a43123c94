import Foundation
import LMDB
import Testing

@Suite struct EnvironmentTests {
    func tempDir() -> String {
        let p = NSTemporaryDirectory() + "psm-lmdb-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    @Test func writeReadAndRollbackOnThrow() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = try Environment(path: dir)
        defer { env.close() }
        let db = try env.openDatabase("kv")
        try env.write { try $0.put(db, [1], [10]) }
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try env.write { txn in
                try txn.put(db, [2], [20])
                throw Boom()
            }
        }
        let (one, two) = try env.read { txn in (try txn.get(db, [1]).map { Array($0) }, try txn.get(db, [2]).map { Array($0) }) }
        #expect(one == [10])
        #expect(two == nil)
    }

    @Test func appendRefusesOutOfOrderKeysAndNoOverwriteRefusesExisting() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = try Environment(path: dir)
        defer { env.close() }
        let db = try env.openDatabase("log")
        try env.write { try $0.put(db, [0, 5], [1], .append) }
        #expect(throws: LMDBError.self) { try env.write { try $0.put(db, [0, 4], [1], .append) } }
        #expect { try env.write { try $0.put(db, [0, 5], [2], .noOverwrite) } } throws: { ($0 as? LMDBError)?.isKeyExists == true }
    }

    @Test func nestedTransactionRollsBackAlone() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = try Environment(path: dir)
        defer { env.close() }
        let db = try env.openDatabase("kv")
        struct Boom: Error {}
        try env.write { txn in
            try txn.put(db, [1], [1])
            _ = try? txn.nested { child in
                try child.put(db, [2], [2])
                throw Boom()
            }
            try txn.nested { child in try child.put(db, [3], [3]) }
        }
        let present = try env.read { txn in try [1, 2, 3].map { (k: UInt8) in try txn.get(db, [k]) != nil } }
        #expect(present == [true, false, true])
    }

    @Test func refusesSecondOpenInProcessAndReopensAfterClose() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = try Environment(path: dir)
        #expect(throws: EnvironmentOpenError.self) { try Environment(path: dir) }
        // The same directory through another path spelling is the same environment.
        #expect(throws: EnvironmentOpenError.self) { try Environment(path: dir + "/.") }
        env.close()
        let again = try Environment(path: dir)
        again.close()
    }

    @Test func missingDirectoryIsAClearError() {
        #expect { try Environment(path: "/nonexistent/psm-\(UInt64.random(in: 0...UInt64.max))") } throws: { error in
            "\(error)".contains("not an existing directory")
        }
    }

    @Test func mapFullThenGrow() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = Environment.Options()
        o.mapSize = 64 << 10
        let env = try Environment(path: dir, options: o)
        defer { env.close() }
        let db = try env.openDatabase("kv")
        let big = [UInt8](repeating: 7, count: 200 << 10)
        #expect { try env.write { try $0.put(db, [1], big) } } throws: { ($0 as? LMDBError)?.isMapFull == true }
        try env.growMap()
        try env.growMap()
        try env.growMap()
        try env.write { try $0.put(db, [1], big) }
        #expect(try env.info().mapSize >= 512 << 10)
    }

    @Test func cursorWalksDuplicatesInOrder() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = try Environment(path: dir)
        defer { env.close() }
        let db = try env.openDatabase("dups", flags: [.create, .dupSort, .dupFixed])
        try env.write { txn in
            for v in [3, 1, 2] as [UInt8] { try txn.put(db, [9], [0, v]) }
            try txn.put(db, [8], [0, 0])
        }
        let values: [[UInt8]] = try env.read { txn in
            try txn.withCursor(db) { c in
                var out: [[UInt8]] = []
                var e = try c.seek(exactly: [9])
                while let (_, v) = e { out.append(Array(v)); e = try c.nextDuplicate() }
                return out
            }
        }
        #expect(values == [[0, 1], [0, 2], [0, 3]])
    }

    /// The journal relies on MDB_APPENDDUP working for any key (not only the last one) and refusing
    /// a duplicate that is not greater than the key's last one.
    @Test func appendDupOnInterleavedKeys() throws {
        let dir = tempDir(); defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = try Environment(path: dir)
        defer { env.close() }
        let db = try env.openDatabase("dups", flags: [.create, .dupSort, .dupFixed])
        try env.write { txn in
            for i in 0..<3000 {
                let key: [UInt8] = [UInt8(i % 7)]
                try txn.put(db, key, [UInt8(i >> 8), UInt8(i & 0xFF)], [.appendDup, .noDupData])
            }
        }
        #expect { try env.write { try $0.put(db, [3], [0, 1], [.appendDup, .noDupData]) } } throws: { ($0 as? LMDBError)?.isKeyExists == true }
        let counts = try env.read { txn in
            try txn.withCursor(db) { c in try (0..<7).map { (k: UInt8) -> Int in _ = try c.seek(exactly: [k]); return try c.duplicateCount() } }
        }
        #expect(counts == (0..<7).map { k in (0..<3000).filter { $0 % 7 == k }.count })
    }
}
