import CLMDB

/// An error returned by liblmdb, with the operation that returned it.
///
/// `code` is LMDB's own code (`MDB_*`, negative) or an `errno` value (`EIO`, `ENOSPC`, …).
public struct LMDBError: Error, Equatable, CustomStringConvertible, Sendable {
    public let code: Int32
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    public static let notFound: Int32 = MDB_NOTFOUND
    public static let keyExists: Int32 = MDB_KEYEXIST
    public static let mapFull: Int32 = MDB_MAP_FULL
    public static let mapResized: Int32 = MDB_MAP_RESIZED
    public static let corrupted: Int32 = MDB_CORRUPTED
    public static let panic: Int32 = MDB_PANIC
    public static let readersFull: Int32 = MDB_READERS_FULL

    public var isMapFull: Bool { code == MDB_MAP_FULL }
    public var isKeyExists: Bool { code == MDB_KEYEXIST }
    public var isMapResized: Bool { code == MDB_MAP_RESIZED }

    /// True for errors after which LMDB's environment must be closed and reopened rather than reused
    /// (a failed commit or meta write: EIO, ENOSPC, MDB_PANIC). See SPEC.md §2.
    public var isFatal: Bool {
        code == MDB_PANIC || code == 5 /* EIO */ || code == 28 /* ENOSPC */ || code == MDB_CORRUPTED
    }

    public var description: String {
        let message = String(cString: mdb_strerror(code))
        return "\(operation): \(message) (code \(code))"
    }
}

@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
    if rc != 0 { throw LMDBError(code: rc, operation: operation()) }
}
