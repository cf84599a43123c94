import CLMDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Operations shared by read and write transactions. Buffers returned point into LMDB's map and are
/// valid only until the transaction ends: copy them out before returning from the closure.
public protocol TransactionReading {
    var raw: OpaquePointer { get }
}

extension TransactionReading {
    /// The value stored under `key`, or nil.
    public func get(_ db: Database, _ key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = mdb_get(raw, db.handle, &k, &v)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_get(\(db.name))")
        return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    }

    public func get(_ db: Database, _ key: [UInt8]) throws -> UnsafeRawBufferPointer? {
        try key.withUnsafeBytes { try get(db, $0) }
    }

    /// Number of entries in `db`.
    public func count(_ db: Database) throws -> Int {
        var st = MDB_stat()
        try check(mdb_stat(raw, db.handle, &st), "mdb_stat(\(db.name))")
        return Int(st.ms_entries)
    }

    public func statistics(_ db: Database) throws -> DatabaseStatistics {
        var st = MDB_stat()
        try check(mdb_stat(raw, db.handle, &st), "mdb_stat(\(db.name))")
        return DatabaseStatistics(
            entries: Int(st.ms_entries), depth: Int(st.ms_depth),
            pages: Int(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages), pageSize: Int(st.ms_psize))
    }

    /// Runs `body` with a cursor over `db`, closing the cursor when `body` returns.
    public func withCursor<T>(_ db: Database, _ body: (Cursor) throws -> T) throws -> T {
        var c: OpaquePointer?
        try check(mdb_cursor_open(raw, db.handle, &c), "mdb_cursor_open(\(db.name))")
        defer { mdb_cursor_close(c) }
        return try body(Cursor(raw: c!, name: db.name))
    }
}

public struct DatabaseStatistics: Sendable {
    public var entries: Int
    public var depth: Int
    public var pages: Int
    public var pageSize: Int
}

public struct ReadTransaction: TransactionReading {
    public let raw: OpaquePointer
}

public struct WriteTransaction: TransactionReading {
    public let raw: OpaquePointer

    /// Stores `value` under `key`. With `.noOverwrite` an existing key throws `MDB_KEYEXIST`;
    /// with `.append` a key not greater than the last one throws `MDB_KEYEXIST`.
    public func put(_ db: Database, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ flags: WriteFlags = [])
        throws
    {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try check(mdb_put(raw, db.handle, &k, &v, flags.rawValue), "mdb_put(\(db.name))")
    }

    /// Reserves `size` bytes for the value under `key` (`MDB_RESERVE`) and lets `body` write them in
    /// place. The buffer is valid only inside `body`: no other write may run on the transaction
    /// before it returns. Not for `DUPSORT` databases.
    public func put<T>(
        _ db: Database, _ key: UnsafeRawBufferPointer, reserving size: Int, _ flags: WriteFlags = [],
        _ body: (UnsafeMutableRawBufferPointer) throws -> T
    ) throws -> T {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: size, mv_data: nil)
        try check(mdb_put(raw, db.handle, &k, &v, flags.rawValue | UInt32(MDB_RESERVE)), "mdb_put(\(db.name), reserve \(size))")
        return try body(UnsafeMutableRawBufferPointer(start: v.mv_data, count: size))
    }

    public func put(_ db: Database, _ key: [UInt8], _ value: [UInt8], _ flags: WriteFlags = []) throws {
        try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try put(db, k, v, flags) } }
    }

    /// Deletes `key` (all of its duplicates in a dupsort database). Returns false if it was absent.
    @discardableResult
    public func delete(_ db: Database, _ key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { key in
            var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
            let rc = mdb_del(raw, db.handle, &k, nil)
            if rc == MDB_NOTFOUND { return false }
            try check(rc, "mdb_del(\(db.name))")
            return true
        }
    }

    /// Opens the named database if it exists (nil if it does not), inside this transaction. The handle
    /// stays valid after the transaction commits.
    public func openDatabaseIfPresent(_ name: String, flags: DatabaseFlags = []) throws -> Database? {
        var dbi: MDB_dbi = 0
        let rc = mdb_dbi_open(raw, name, flags.subtracting(.create).rawValue, &dbi)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_dbi_open(\(name))")
        return Database(handle: dbi, name: name)
    }

    /// Deletes database `db` and its name from the environment (`mdb_drop` with del = 1); its handle
    /// is invalid afterwards.
    public func drop(_ db: Database) throws {
        try check(mdb_drop(raw, db.handle, 1), "mdb_drop(\(db.name))")
    }

    /// Deletes every entry of database `db`, keeping the database (`mdb_drop` with del = 0).
    public func empty(_ db: Database) throws {
        try check(mdb_drop(raw, db.handle, 0), "mdb_drop(\(db.name), empty)")
    }

    /// Runs `body` in a nested (child) transaction: if it throws, only its changes are undone.
    public func nested<T>(_ body: (WriteTransaction) throws -> T) throws -> T {
        var child: OpaquePointer?
        try check(mdb_txn_begin(mdb_txn_env(raw), raw, 0, &child), "mdb_txn_begin(nested)")
        let result: T
        do {
            result = try body(WriteTransaction(raw: child!))
        } catch {
            mdb_txn_abort(child)
            throw error
        }
        try check(mdb_txn_commit(child), "mdb_txn_commit(nested)")
        return result
    }
}

/// A cursor over one database, valid inside ``TransactionReading/withCursor(_:_:)`` only.
public struct Cursor {
    let raw: OpaquePointer
    let name: String

    public typealias Entry = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)

    private func op(_ operation: MDB_cursor_op, key: UnsafeRawBufferPointer? = nil) throws -> Entry? {
        var k = MDB_val(mv_size: key?.count ?? 0, mv_data: UnsafeMutableRawPointer(mutating: key?.baseAddress))
        var v = MDB_val()
        let rc = mdb_cursor_get(raw, &k, &v, operation)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_cursor_get(\(name))")
        return (UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size), UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    public func first() throws -> Entry? { try op(MDB_FIRST) }
    public func last() throws -> Entry? { try op(MDB_LAST) }
    public func next() throws -> Entry? { try op(MDB_NEXT) }
    public func previous() throws -> Entry? { try op(MDB_PREV) }
    /// Positions at the first key greater than or equal to `key`.
    public func seek(atLeast key: UnsafeRawBufferPointer) throws -> Entry? { try op(MDB_SET_RANGE, key: key) }
    public func seek(atLeast key: [UInt8]) throws -> Entry? { try key.withUnsafeBytes { try seek(atLeast: $0) } }
    /// Positions at exactly `key` (its first duplicate in a dupsort database).
    public func seek(exactly key: [UInt8]) throws -> Entry? { try key.withUnsafeBytes { try op(MDB_SET_KEY, key: $0) } }
    // Duplicate navigation (dupsort databases).
    public func firstDuplicate() throws -> Entry? { try op(MDB_FIRST_DUP) }
    public func lastDuplicate() throws -> Entry? { try op(MDB_LAST_DUP) }
    public func nextDuplicate() throws -> Entry? { try op(MDB_NEXT_DUP) }
    public func previousDuplicate() throws -> Entry? { try op(MDB_PREV_DUP) }
    public func nextKey() throws -> Entry? { try op(MDB_NEXT_NODUP) }
    /// Positions at the first duplicate of `key` that is greater than or equal to `value`.
    public func seek(key: [UInt8], valueAtLeast value: [UInt8]) throws -> Entry? {
        try key.withUnsafeBytes { k in
            try value.withUnsafeBytes { v in
                var kv = MDB_val(mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
                var vv = MDB_val(mv_size: v.count, mv_data: UnsafeMutableRawPointer(mutating: v.baseAddress))
                let rc = mdb_cursor_get(raw, &kv, &vv, MDB_GET_BOTH_RANGE)
                if rc == MDB_NOTFOUND { return nil }
                try check(rc, "mdb_cursor_get(\(name))")
                return (UnsafeRawBufferPointer(start: kv.mv_data, count: kv.mv_size), UnsafeRawBufferPointer(start: vv.mv_data, count: vv.mv_size))
            }
        }
    }
    /// Number of duplicates at the current key.
    public func duplicateCount() throws -> Int {
        var n: Int = 0
        try check(mdb_cursor_count(raw, &n), "mdb_cursor_count(\(name))")
        return n
    }
}
