import CLMDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A named database inside an ``Environment`` (an `MDB_dbi`).
public struct Database: Sendable, Hashable {
    public let handle: MDB_dbi
    public let name: String
}

public struct DatabaseFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let create = DatabaseFlags(rawValue: UInt32(MDB_CREATE))
    public static let dupSort = DatabaseFlags(rawValue: UInt32(MDB_DUPSORT))
    public static let dupFixed = DatabaseFlags(rawValue: UInt32(MDB_DUPFIXED))
}

public struct WriteFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let noOverwrite = WriteFlags(rawValue: UInt32(MDB_NOOVERWRITE))
    public static let append = WriteFlags(rawValue: UInt32(MDB_APPEND))
    public static let appendDup = WriteFlags(rawValue: UInt32(MDB_APPENDDUP))
    public static let noDupData = WriteFlags(rawValue: UInt32(MDB_NODUPDATA))
}

/// An open LMDB environment (one directory holding `data.mdb` and `lock.mdb`).
///
/// Durability: the environment is always opened with LMDB's default full sync. `MDB_NOSYNC`,
/// `MDB_WRITEMAP` and `MDB_NOMEMINIT` are never used; `MDB_NOTLS` is always set so that read
/// transactions are bound to their transaction object rather than to a thread.
///
/// Write transactions are bound to the OS thread that began them: callers must begin, use and
/// commit a ``WriteTransaction`` on one thread, never across an `await` (the journal uses one
/// dedicated writer thread). Read transactions may be used from any thread but should be short.
///
/// One directory may be open only once per process (LMDB's advisory locks break otherwise);
/// a second open throws ``EnvironmentOpenError/alreadyOpen(path:)``.
public final class Environment: @unchecked Sendable {
    public struct Options: Sendable {
        /// Initial map size in bytes; it grows by itself on `MDB_MAP_FULL` (see ``growMap()``).
        public var mapSize: Int = 64 << 20
        /// Upper bound on the map size; growth past it fails with `MDB_MAP_FULL`.
        public var maxMapSize: Int = 1 << 40
        public var maxDatabases: UInt32 = 16
        public var maxReaders: UInt32 = 126
        /// Weaker sync (`MDB_NOMETASYNC`) for environments that can be rebuilt. Never for the journal.
        public var noMetaSync: Bool = false
        /// No fsync at commit (`MDB_NOSYNC`): commits survive a process crash but not an OS crash.
        /// Only for environments that can be rebuilt (projections). Never for the journal.
        public var noSync: Bool = false
        public init() {}
    }

    let env: OpaquePointer
    public let path: String
    public private(set) var options: Options
    private let identity: FileIdentity
    /// Readers hold this shared while a read transaction is open; map growth takes it exclusively,
    /// because `mdb_env_set_mapsize` may only be called while no transaction is active in the process.
    private let mapLock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    private var closed = false
    /// Stale reader slots cleared at open (slots of processes that died holding a read transaction).
    public private(set) var staleReadersCleared: Int32 = 0

    public init(path: String, options: Options = Options()) throws {
        self.options = options
        self.path = path
        pthread_rwlock_init(mapLock, nil)
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw EnvironmentOpenError.notADirectory(path: path, errno: errno)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw EnvironmentOpenError.notADirectory(path: path, errno: ENOTDIR) }
        identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        guard OpenRegistry.shared.claim(identity) else { throw EnvironmentOpenError.alreadyOpen(path: path) }

        var envPointer: OpaquePointer?
        do {
            try check(mdb_env_create(&envPointer), "mdb_env_create")
            guard let created = envPointer else { throw LMDBError(code: ENOMEM, operation: "mdb_env_create") }
            env = created
        } catch {
            OpenRegistry.shared.release(identity)
            throw error
        }
        do {
            try check(mdb_env_set_maxdbs(env, MDB_dbi(options.maxDatabases)), "mdb_env_set_maxdbs")
            try check(mdb_env_set_maxreaders(env, options.maxReaders), "mdb_env_set_maxreaders")
            try check(mdb_env_set_mapsize(env, options.mapSize), "mdb_env_set_mapsize")
            var flags = UInt32(MDB_NOTLS)
            if options.noMetaSync { flags |= UInt32(MDB_NOMETASYNC) }
            if options.noSync { flags |= UInt32(MDB_NOSYNC) }
            try check(mdb_env_open(env, path, flags, 0o644), "mdb_env_open(\(path))")
            // A larger file written by another process may already exceed our map size: adopt it.
            var info = MDB_envinfo()
            try check(mdb_env_info(env, &info), "mdb_env_info")
            self.options.mapSize = max(options.mapSize, Int(info.me_mapsize))
            var dead: Int32 = 0
            try check(mdb_reader_check(env, &dead), "mdb_reader_check")
            staleReadersCleared = dead
        } catch {
            // The object is fully initialised here, so deinit will run: close through close(), which
            // records it, or deinit would call mdb_env_close a second time (a double free, found by the
            // fault-injection test failing the first write of a new environment).
            close()
            throw error
        }
    }

    deinit { close() }

    /// Closes the environment. Every transaction must have ended. Idempotent.
    public func close() {
        pthread_rwlock_wrlock(mapLock)
        defer { pthread_rwlock_unlock(mapLock) }
        if closed { return }
        closed = true
        mdb_env_close(env)
        OpenRegistry.shared.release(identity)
    }

    /// Opens (and with `.create`, creates) a named database. Call on the thread that writes.
    public func openDatabase(_ name: String, flags: DatabaseFlags = [.create]) throws -> Database {
        try write { txn in
            var dbi: MDB_dbi = 0
            try check(mdb_dbi_open(txn.raw, name, flags.rawValue, &dbi), "mdb_dbi_open(\(name))")
            return Database(handle: dbi, name: name)
        }
    }

    /// Runs `body` in a short read-only transaction. Values read inside are valid only inside.
    public func read<T>(_ body: (ReadTransaction) throws -> T) throws -> T {
        pthread_rwlock_rdlock(mapLock)
        defer { pthread_rwlock_unlock(mapLock) }
        var txnPointer: OpaquePointer?
        var rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txnPointer)
        if rc == MDB_MAP_RESIZED {
            // Another process grew the map. Adopting its size needs no active transaction here;
            // we hold the lock shared, so retry after taking it exclusively.
            pthread_rwlock_unlock(mapLock)
            pthread_rwlock_wrlock(mapLock)
            mdb_env_set_mapsize(env, 0)
            pthread_rwlock_unlock(mapLock)
            pthread_rwlock_rdlock(mapLock)
            rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txnPointer)
        }
        try check(rc, "mdb_txn_begin(read)")
        guard let txn = txnPointer else { throw LMDBError(code: EINVAL, operation: "mdb_txn_begin(read)") }
        defer { mdb_txn_abort(txn) }
        return try body(ReadTransaction(raw: txn))
    }

    /// Runs `body` in a write transaction on the calling thread and commits it if `body` returns.
    /// If `body` throws, the transaction is aborted and the error rethrown.
    /// The transaction must not escape `body`, and `body` must not suspend.
    public func write<T>(_ body: (WriteTransaction) throws -> T) throws -> T {
        var txnPointer: OpaquePointer?
        var rc = mdb_txn_begin(env, nil, 0, &txnPointer)
        if rc == MDB_MAP_RESIZED {
            pthread_rwlock_wrlock(mapLock)
            mdb_env_set_mapsize(env, 0)
            pthread_rwlock_unlock(mapLock)
            rc = mdb_txn_begin(env, nil, 0, &txnPointer)
        }
        try check(rc, "mdb_txn_begin(write)")
        guard let txn = txnPointer else { throw LMDBError(code: EINVAL, operation: "mdb_txn_begin(write)") }
        let result: T
        do {
            result = try body(WriteTransaction(raw: txn))
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
        return result
    }

    /// Doubles the map size (up to `maxMapSize`). Call only from the writing thread with no write
    /// transaction open; waits for open read transactions of this process to end.
    public func growMap() throws {
        pthread_rwlock_wrlock(mapLock)
        defer { pthread_rwlock_unlock(mapLock) }
        var info = MDB_envinfo()
        try check(mdb_env_info(env, &info), "mdb_env_info")
        let current = Int(info.me_mapsize)
        guard current < options.maxMapSize else {
            throw LMDBError(code: MDB_MAP_FULL, operation: "growMap (at the \(options.maxMapSize)-byte limit)")
        }
        let next = min(options.maxMapSize, current * 2)
        try check(mdb_env_set_mapsize(env, next), "mdb_env_set_mapsize(\(next))")
        options.mapSize = next
    }

    public struct Info: Sendable {
        public var mapSize: Int
        public var pageSize: Int
        /// Pages in use (last page number + 1): the bytes LMDB really holds are `usedPages * pageSize`.
        public var usedPages: Int
        public var lastTransaction: Int
        public var readersInUse: Int
        public var maxReaders: Int
    }

    public func info() throws -> Info {
        var info = MDB_envinfo()
        try check(mdb_env_info(env, &info), "mdb_env_info")
        var stat = MDB_stat()
        try check(mdb_env_stat(env, &stat), "mdb_env_stat")
        return Info(
            mapSize: Int(info.me_mapsize), pageSize: Int(stat.ms_psize), usedPages: Int(info.me_last_pgno) + 1,
            lastTransaction: Int(info.me_last_txnid), readersInUse: Int(info.me_numreaders),
            maxReaders: Int(info.me_maxreaders))
    }

    /// Forces a sync to disk (normally not needed: every commit syncs).
    public func sync() throws { try check(mdb_env_sync(env, 1), "mdb_env_sync") }

    /// Writes a consistent copy of the environment into the existing, empty directory `path`
    /// (`mdb_env_copy2`: one read transaction, so writers go on meanwhile). `compact` omits free pages
    /// and renumbers them, giving a smaller file.
    public func copy(to path: String, compact: Bool = true) throws {
        try check(mdb_env_copy2(env, path, compact ? UInt32(MDB_CP_COMPACT) : 0), "mdb_env_copy2(\(path))")
    }
}

public enum EnvironmentOpenError: Error, CustomStringConvertible, Sendable {
    case notADirectory(path: String, errno: Int32)
    case alreadyOpen(path: String)

    public var description: String {
        switch self {
        case .notADirectory(let path, let code):
            return "cannot open LMDB environment at \(path): not an existing directory (errno \(code): \(String(cString: strerror(code))))"
        case .alreadyOpen(let path):
            return "the LMDB environment at \(path) is already open in this process; open it once and share the handle"
        }
    }
}

struct FileIdentity: Hashable { let device: UInt64; let inode: UInt64 }

/// Process-wide set of open environments, keyed by (device, inode) of their directory.
final class OpenRegistry: @unchecked Sendable {
    static let shared = OpenRegistry()
    private var open = Set<FileIdentity>()
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(mutex, nil) }
    func claim(_ id: FileIdentity) -> Bool {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        return open.insert(id).inserted
    }
    func release(_ id: FileIdentity) {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        open.remove(id)
    }
}
