import Crypto
import Foundation
import Journal
import Logging
import NIOCore
import PostgresNIO

/// The journal of record on PostgreSQL (SPEC.md §15): the same v1 records as the LMDB journal, stored
/// as `bytea`, in a schema this type creates and migrates.
///
/// - Events are partitioned by their stream (one stream per user) into a fixed number of partitions.
/// - Per-stream optimistic concurrency: the stream row is locked (`SELECT … FOR UPDATE`) while a
///   request's expected revision is checked and its events are given revisions; the primary key
///   (partition, stream, revision) refuses two events at one revision whatever happens.
/// - Exactly-once: a unique event id. On any uniqueness error, or a stale expected revision, the ids
///   are looked up first, so a retry of a committed append returns its original result (issue 9: a
///   cancelled or timed-out commit may have committed).
/// - The change feed of a partition is ordered by (transaction id, position) and only shows rows of
///   transactions older than the oldest one still open, so an event committed out of order is never
///   skipped.
public final class PostgresJournal: JournalBackend, @unchecked Sendable {
    public static let schemaVersion = 2
    public let partitions: Int
    public let url: String
    public var backendName: String { "postgres" }

    private let poolLock = NSLock()
    private var pool: (client: PostgresClient, runner: Task<Void, Never>)
    private let clientConfiguration: PostgresClient.Configuration
    /// How long an append may take before it is reported as an unknown outcome (and the connection
    /// pool is replaced): a commit can hang when the server or its synchronous standbys are gone.
    public var appendTimeout: Double = 30
    /// The connection pool in use (replaced after a connection-level failure, see ``resetPool(_:)``).
    private var client: PostgresClient { poolLock.withLock { pool.client } }
    private let logger: Logger
    private let preparer = RecordPreparer()

    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`; `PGPASSWORD` is used when the
    /// URL has no password) and creates or migrates the schema. The partition count is fixed when the
    /// schema is created (`partitions`, else 64); for an existing schema nil takes its count and
    /// another number is an error.
    public init(url: String, partitions: Int? = nil, logger: Logger = PostgresJournal.quietLogger) async throws {
        if let partitions, !(1...4096).contains(partitions) {
            throw JournalError.invalidArgument("partitions must be 1...4096, got \(partitions)")
        }
        let config = try Self.configuration(url)
        self.url = Self.redacted(url)
        self.logger = logger
        try await Self.probe(url, logger: logger)
        clientConfiguration = config
        let client = PostgresClient(configuration: config, backgroundLogger: logger)
        let runner = Task { await client.run() }
        pool = (client, runner)
        do {
            let inForce = try await Self.migrate(client, partitions: partitions ?? 64, logger: logger)
            if let partitions, partitions != inForce {
                throw JournalError.invalidArgument("the journal at \(self.url) has \(inForce) partitions, not \(partitions) (fixed when it was created)")
            }
            self.partitions = inForce
        } catch {
            runner.cancel()
            throw Self.backendError(error, "opening \(self.url)")
        }
    }

    /// The pool's background logger by default: errors only (failures reach callers as thrown errors;
    /// the pool's own retries would otherwise flood standard error).
    public static var quietLogger: Logger {
        var l = Logger(label: "psm.journal.postgres")
        l.logLevel = .error
        return l
    }

    /// One direct connection attempt, so an unreachable or refusing server is reported at once and
    /// by name (the pool would retry with backoff for about a minute first).
    static func probe(_ url: String, logger: Logger) async throws {
        do {
            let c = try await PostgresConnection.connect(configuration: try connectionConfiguration(url), id: 0, logger: logger)
            try? await c.close()
        } catch let e as JournalError {
            throw e
        } catch let e as PSQLError {
            let detail = e.serverInfo?[.message] ?? e.underlying.map { "\($0)" } ?? "\(e.code)"
            throw JournalError.backend("cannot connect to \(redacted(url)): \(detail)")
        } catch {
            throw JournalError.backend("cannot connect to \(redacted(url)): \(error)")
        }
    }

    /// Creates the database `url` names when the server has none of that name, connecting to the
    /// server's `postgres` database to do so; returns true when it created one.
    @discardableResult
    public static func createDatabaseIfMissing(_ url: String, logger: Logger = PostgresJournal.quietLogger) async throws -> Bool {
        var config = try configuration(url)
        guard let name = config.database else { return false }
        guard name.utf8.count <= 63, name.unicodeScalars.allSatisfy({ $0.isASCII && $0 != "\"" && $0.value >= 0x20 }) else {
            throw JournalError.invalidArgument("database name \(name) must be at most 63 printable ASCII characters without a double quote")
        }
        if var admin = URLComponents(string: url) {
            admin.path = "/postgres"
            try await probe(admin.string ?? url, logger: logger)
        }
        config.database = "postgres"
        config.options.maximumConnections = 1
        let admin = PostgresClient(configuration: config, backgroundLogger: logger)
        let runner = Task { await admin.run() }
        defer { runner.cancel() }
        do {
            var exists = false
            for try await _ in try await admin.query("SELECT 1 FROM pg_database WHERE datname = \(name)", logger: logger).decode(Int32.self) {
                exists = true
            }
            if exists { return false }
            do {
                try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(name)\""), logger: logger)
            } catch let e as PSQLError where e.serverInfo?[.sqlState] == "42P04" {
                return false  // made by someone else meanwhile
            }
            return true
        } catch {
            throw backendError(error, "creating database \(name) on \(redacted(url))")
        }
    }

    /// Stops the connection pool.
    public func close() { poolLock.withLock { pool.runner.cancel() } }

    /// Replaces the connection pool: after the server went away (a failover behind a proxy, a
    /// restart) the old pool's connections and waiting leases are dropped and new connections are
    /// made on next use.
    public func resetPool(_ reason: String) {
        let fresh = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
        let runner = Task { await fresh.run() }
        let old = poolLock.withLock { () -> Task<Void, Never> in
            let old = pool.runner
            pool = (fresh, runner)
            return old
        }
        old.cancel()
        logger.warning("connection pool replaced", metadata: ["reason": "\(reason)"])
    }

    /// True for failures of the connection itself (the next attempt needs new connections).
    static func isConnectionFailure(_ error: any Error) -> Bool {
        guard let e = error as? PSQLError else { return error is DeadlineExceeded }
        switch e.code {
        case .serverClosedConnection, .connectionError, .clientClosedConnection, .uncleanShutdown, .poolClosed: return true
        default:
            // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now, 08xxx connection exceptions.
            let state = e.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("57P") || state.hasPrefix("08")
        }
    }

    struct DeadlineExceeded: Error {}

    /// The first of several outcomes, handed to one waiter.
    final class Race<T: Sendable>: @unchecked Sendable {
        private let lock = NSLock()
        private var result: Result<T, any Error>?
        private var waiter: CheckedContinuation<T, any Error>?

        func finish(_ r: Result<T, any Error>) {
            let w: CheckedContinuation<T, any Error>? = lock.withLock {
                guard result == nil else { return nil }
                result = r
                defer { waiter = nil }
                return waiter
            }
            w?.resume(with: r)
        }

        func value() async throws -> T {
            try await withCheckedThrowingContinuation { k in
                let done: Result<T, any Error>? = lock.withLock {
                    if let result { return result }
                    waiter = k
                    return nil
                }
                if let done { k.resume(with: done) }
            }
        }
    }

    /// Runs `body`, or throws DeadlineExceeded after `seconds` without waiting for it (its outcome is
    /// then unknown; it is cancelled and left to finish on its own).
    static func withDeadline<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let race = Race<T>()
        let work = Task {
            do { race.finish(.success(try await body())) } catch { race.finish(.failure(error)) }
        }
        let timer = Task {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            race.finish(.failure(DeadlineExceeded()))
        }
        defer {
            work.cancel()
            timer.cancel()
        }
        return try await race.value()
    }

    // MARK: - Configuration

    public static func configuration(_ url: String) throws -> PostgresClient.Configuration {
        guard let u = URLComponents(string: url), u.scheme == "postgres" || u.scheme == "postgresql" else {
            throw JournalError.invalidArgument("journal URL \(redacted(url)) is not postgres://user[:password]@host[:port]/database")
        }
        guard let host = u.host, !host.isEmpty else { throw JournalError.invalidArgument("journal URL \(redacted(url)) names no host") }
        let database = String(u.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty else { throw JournalError.invalidArgument("journal URL \(redacted(url)) names no database") }
        let user = u.user ?? ProcessInfo.processInfo.environment["PGUSER"] ?? "postgres"
        let password = u.password ?? ProcessInfo.processInfo.environment["PGPASSWORD"]
        var c = PostgresClient.Configuration(host: host, port: u.port ?? 5432, username: user, password: password, database: database, tls: .disable)
        c.options.maximumConnections = 16
        return c
    }

    /// The settings of one dedicated connection to `url` (a cluster node's lock connection).
    public static func connectionConfiguration(_ url: String) throws -> PostgresConnection.Configuration {
        let c = try configuration(url)
        return PostgresConnection.Configuration(
            host: c.host ?? "localhost", port: c.port ?? 5432, username: c.username, password: c.password, database: c.database, tls: .disable)
    }

    /// The URL without its password, for messages.
    public static func redacted(_ url: String) -> String {
        guard var u = URLComponents(string: url), u.password != nil else { return url }
        u.password = "***"
        return u.string ?? url
    }

    /// Creates schema version 1 when the database has none; refuses a newer version or another
    /// partition count. Returns the partition count in force.
    static func migrate(_ client: PostgresClient, partitions: Int, logger: Logger) async throws -> Int {
        try await client.withConnection { c in
            // One migrator at a time, across processes: a transaction-scoped advisory lock.
            try await c.query("BEGIN", logger: logger)
            do {
                try await c.query("SELECT pg_advisory_xact_lock(7365107)", logger: logger)
                try await c.query(
                    "CREATE TABLE IF NOT EXISTS psm_schema (version integer NOT NULL, partitions integer NOT NULL)", logger: logger)
                var found: (Int, Int)?
                for try await (v, p) in try await c.query("SELECT version, partitions FROM psm_schema", logger: logger).decode((Int, Int).self) {
                    found = (v, p)
                }
                if let (v, p) = found {
                    guard v <= schemaVersion else {
                        throw JournalError.invalidArgument("the database has PSM schema version \(v); this psm knows up to \(schemaVersion)")
                    }
                    // Older versions are brought up to date in this transaction, one step at a time.
                    for step in (v + 1)...max(v + 1, schemaVersion) where step <= schemaVersion {
                        for statement in migrations[step] ?? [] { try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                    }
                    if v < schemaVersion { try await c.query("UPDATE psm_schema SET version = \(schemaVersion)", logger: logger) }
                    try await c.query("COMMIT", logger: logger)
                    return p
                }
                for statement in schemaV1 { try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                for step in 2...schemaVersion {
                    for statement in migrations[step] ?? [] { try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                }
                try await c.query("INSERT INTO psm_schema (version, partitions) VALUES (\(schemaVersion), \(partitions))", logger: logger)
                try await c.query("COMMIT", logger: logger)
                return partitions
            } catch {
                _ = try? await c.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    /// Schema version 1 (SPEC.md §15.1).
    static let schemaV1 = [
        """
        CREATE TABLE psm_streams (
            stream_id bytea PRIMARY KEY CHECK (length(stream_id) = 16),
            partition integer NOT NULL,
            tenant text NOT NULL,
            name text NOT NULL,
            next_revision bigint NOT NULL,
            head bytea NOT NULL CHECK (length(head) = 32),
            first_position bigint,
            last_position bigint
        )
        """,
        "CREATE SEQUENCE psm_position",
        """
        CREATE TABLE psm_events (
            partition integer NOT NULL,
            stream_id bytea NOT NULL,
            revision bigint NOT NULL,
            position bigint NOT NULL DEFAULT nextval('psm_position') UNIQUE,
            event_id bytea NOT NULL UNIQUE CHECK (length(event_id) = 16),
            xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            record bytea NOT NULL,
            PRIMARY KEY (partition, stream_id, revision)
        )
        """,
        "CREATE INDEX psm_events_feed ON psm_events (partition, xid, position)",
        """
        CREATE TABLE psm_nodes (
            name text PRIMARY KEY,
            address text NOT NULL,
            pid integer NOT NULL,
            joined_at timestamptz NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE psm_feed_cursors (
            partition integer NOT NULL,
            node text NOT NULL,
            xid bigint NOT NULL,
            position bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (partition, node)
        )
        """,
        """
        CREATE TABLE psm_data_keys (
            stream_id bytea NOT NULL,
            key_id integer NOT NULL,
            key bytea NOT NULL CHECK (length(key) = 32),
            PRIMARY KEY (stream_id, key_id)
        )
        """,
    ]

    /// The statements that take schema version n - 1 to n (SPEC.md §15.1).
    static let migrations: [Int: [String]] = [
        // 2: the cluster's API keys, shared by every node (only their SHA-256 is stored).
        2: [
            """
            CREATE TABLE psm_api_keys (
                id text PRIMARY KEY,
                tenant text NOT NULL,
                scopes text NOT NULL,
                name text NOT NULL,
                sha256 text NOT NULL,
                created text NOT NULL,
                revoked text
            )
            """
        ]
    ]

    /// The partition of a stream: the stream id's first four bytes, big-endian, modulo the partition
    /// count. A user's events are one stream, so a user lives in one partition.
    public func partition(of stream: ID128) -> Int {
        let b = stream.bytes
        let v = UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
        return Int(v % UInt32(partitions))
    }

    // MARK: - Append

    public func append(_ requests: [AppendRequest]) async throws(JournalError) -> [AppendResult] {
        guard !requests.isEmpty else { throw .invalidArgument("an append needs at least one request") }
        var seen = Set<EventID>()
        var prepared: [(AppendRequest, [RecordPreparer.Prepared])] = []
        for (ri, r) in requests.enumerated() {
            guard !r.events.isEmpty else { throw .invalidArgument("request \(ri) for stream \(r.stream) has no events") }
            var key: (id: UInt32, key: SymmetricKey)?
            if r.encrypted {
                do {
                    let stream = r.stream.id
                    let bytes = try await Self.withDeadline(appendTimeout) { try await self.currentKey(stream).withUnsafeBytes { Array($0) } }
                    key = (1, SymmetricKey(data: bytes))
                } catch {
                    if Self.isConnectionFailure(error) { resetPool("data key: \(error)") }
                    throw error is DeadlineExceeded
                        ? .backend("data key of \(r.stream): no answer within \(appendTimeout) s") : Self.backendError(error, "data key of \(r.stream)")
                }
            }
            var events: [RecordPreparer.Prepared] = []
            for (ei, e) in r.events.enumerated() {
                guard seen.insert(e.id).inserted else {
                    throw .invalidArgument("request \(ri) event \(ei) (id \(e.id)): event id repeated within one append")
                }
                events.append(try preparer.prepare(e, stream: r.stream.id, key: key))
            }
            prepared.append((r, events))
        }
        // A uniqueness error means another writer committed the same ids (or revision) first: the
        // second attempt looks them up before it writes anything.
        var attempt = 0
        let client = self.client
        let requests = prepared
        while true {
            attempt += 1
            let lookUpFirst = attempt > 1
            do {
                return try await Self.withDeadline(appendTimeout) {
                    try await client.withConnection { c in try await self.appendTransaction(c, requests, lookUpFirst: lookUpFirst) }
                }
            } catch let e as JournalError {
                throw e
            } catch let e as PSQLError where e.serverInfo?[.sqlState] == "23505" && attempt < 3 {
                continue
            } catch is DeadlineExceeded {
                resetPool("an append had no answer within \(appendTimeout) s")
                throw .backend("append: no answer within \(appendTimeout) s; the outcome is unknown, retry with the same event ids")
            } catch {
                if Self.isConnectionFailure(error) { resetPool("append: \(error)") }
                throw Self.backendError(error, "append")
            }
        }
    }

    private func appendTransaction(
        _ c: PostgresConnection, _ prepared: [(AppendRequest, [RecordPreparer.Prepared])], lookUpFirst: Bool
    ) async throws -> [AppendResult] {
        try await c.query("BEGIN", logger: logger)
        do {
            var results: [AppendResult] = []
            for (request, events) in prepared {
                results.append(try await appendOne(c, request, events, lookUpFirst: lookUpFirst))
            }
            try await c.query("COMMIT", logger: logger)
            return results
        } catch {
            _ = try? await c.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    private func appendOne(
        _ c: PostgresConnection, _ request: AppendRequest, _ events: [RecordPreparer.Prepared], lookUpFirst: Bool
    ) async throws -> AppendResult {
        let sid = request.stream.id
        let sidBytes = ByteBuffer(bytes: sid.bytes)
        let partition = self.partition(of: sid)
        // Create the stream row if missing and lock it, in one statement (ON CONFLICT DO UPDATE locks
        // the existing row like SELECT … FOR UPDATE): appends to one stream are serialised from here.
        var next: Int64 = 0
        var head: ByteBuffer = ByteBuffer()
        var firstPosition: Int64?
        for try await (n, h, f) in try await c.query(
            """
            INSERT INTO psm_streams (stream_id, partition, tenant, name, next_revision, head)
            VALUES (\(sidBytes), \(partition), \(request.stream.tenant), \(request.stream.name), 0, \(ByteBuffer(repeating: 0, count: 32)))
            ON CONFLICT (stream_id) DO UPDATE SET next_revision = psm_streams.next_revision
            RETURNING next_revision, head, first_position
            """, logger: logger
        ).decode((Int64, ByteBuffer, Int64?).self) {
            next = n
            head = h
            firstPosition = f
        }
        // Known ids, under the stream's lock (so a concurrent twin of this request has committed or
        // rolled back by now): a retry returns its original result whatever its expected revision says
        // now (issue 9: the version conflict must not hide an exactly-once retry). The lookup is made
        // when the expected revision fails, or on the attempt after a uniqueness error; an append that
        // passes the check and meets a known id fails on the unique index and comes back that way.
        if lookUpFirst, let duplicate = try await duplicateResult(c, request) { return duplicate }
        let current: UInt64? = next == 0 ? nil : UInt64(next - 1)
        switch request.expected {
        case .any: break
        case .noStream where current == nil: break
        case .exact(let r) where current == r: break
        default:
            if !lookUpFirst, let duplicate = try await duplicateResult(c, request) { return duplicate }
            throw JournalError.wrongExpectedRevision(stream: request.stream.description, expected: request.expected, actual: current)
        }
        var chain = Array(head.readableBytesView)
        var records: [ByteBuffer] = []
        var ids: [ByteBuffer] = []
        var revisions: [Int64] = []
        for (i, e) in events.enumerated() {
            let revision = UInt64(next) + UInt64(i)
            let record = preparer.record(e, revision: revision, stream: sid)
            chain = Journal.chain(chain, record)
            records.append(ByteBuffer(bytes: record))
            ids.append(ByteBuffer(bytes: e.data.id.bytes))
            revisions.append(Int64(revision))
        }
        var byRevision: [(Int64, Int64)] = []
        for try await row in try await c.query(
            """
            INSERT INTO psm_events (partition, stream_id, revision, event_id, record)
            SELECT \(partition), \(sidBytes), r, i, rec
            FROM unnest(\(revisions)::bigint[], \(ids)::bytea[], \(records)::bytea[]) WITH ORDINALITY AS t(r, i, rec, n)
            ORDER BY n
            RETURNING revision, position
            """, logger: logger
        ).decode((Int64, Int64).self) {
            byRevision.append(row)
        }
        let positions = byRevision.sorted { $0.0 < $1.0 }.map(\.1)
        guard positions.count == events.count else {
            throw JournalError.backend("inserted \(positions.count) of \(events.count) events of \(request.stream)")
        }
        let newNext = next + Int64(events.count)
        try await c.query(
            """
            UPDATE psm_streams SET next_revision = \(newNext), head = \(ByteBuffer(bytes: chain)),
                first_position = \(firstPosition ?? positions[0]), last_position = \(positions.last!)
            WHERE stream_id = \(sidBytes)
            """, logger: logger)
        return AppendResult(stream: request.stream, firstRevision: UInt64(next), positions: positions.map { UInt64($0) }, wasDuplicate: false)
    }

    /// The original result when every event id of `request` is stored with the same content; nil when
    /// none is; an error when only some are, or one differs.
    private func duplicateResult(_ c: PostgresConnection, _ request: AppendRequest) async throws -> AppendResult? {
        let ids = request.events.map { ByteBuffer(bytes: $0.id.bytes) }
        var found: [ID128: (Int64, [UInt8])] = [:]
        for try await (id, position, record) in try await c.query(
            "SELECT event_id, position, record FROM psm_events WHERE event_id = ANY(\(ids)::bytea[])", logger: logger
        ).decode((ByteBuffer, Int64, ByteBuffer).self) {
            found[ID128(bytes: Array(id.readableBytesView))] = (position, Array(record.readableBytesView))
        }
        if found.isEmpty { return nil }
        guard found.count == request.events.count else {
            let first = request.events.first { found[$0.id] != nil }!
            throw JournalError.partialDuplicate(eventID: first.id, position: UInt64(found[first.id]!.0))
        }
        var positions: [Position] = []
        var firstRevision: UInt64 = 0
        for (i, e) in request.events.enumerated() {
            let (position, record) = found[e.id]!
            let stored = try preparer.decode(record, position: UInt64(position))
            let key = stored.header.keyID == 0 ? nil : try await key(stored.header.streamID, stored.header.keyID)
            if let d = try preparer.difference(stored, e, stream: request.stream.id, key: key) {
                throw JournalError.eventIDConflict(eventID: e.id, position: UInt64(position), differs: d)
            }
            if i == 0 { firstRevision = stored.header.revision }
            positions.append(UInt64(position))
        }
        return AppendResult(stream: request.stream, firstRevision: firstRevision, positions: positions, wasDuplicate: true)
    }

    // MARK: - Data keys (SPEC.md §4.7, §15.1)

    /// The stream's key 1, created when it has none. Not cached: another node's erasure must take
    /// effect at once.
    func currentKey(_ stream: ID128) async throws -> SymmetricKey {
        if let k = try await key(stream, 1) { return k }
        let fresh = RecordPreparer.newDataKey().withUnsafeBytes { ByteBuffer(bytes: $0) }
        try await client.query(
            """
            INSERT INTO psm_data_keys (stream_id, key_id, key) VALUES (\(ByteBuffer(bytes: stream.bytes)), 1, \(fresh))
            ON CONFLICT DO NOTHING
            """, logger: logger)
        guard let k = try await key(stream, 1) else { throw JournalError.backend("data key of stream \(stream) vanished after it was made") }
        return k
    }

    /// Key `keyID` of `stream`, or nil when it does not exist (never made, or destroyed by an erasure).
    public func key(_ stream: ID128, _ keyID: UInt32) async throws -> SymmetricKey? {
        for try await k in try await client.query(
            "SELECT key FROM psm_data_keys WHERE stream_id = \(ByteBuffer(bytes: stream.bytes)) AND key_id = \(Int32(bitPattern: keyID))",
            logger: logger
        ).decode(ByteBuffer.self) {
            return SymmetricKey(data: Array(k.readableBytesView))
        }
        return nil
    }

    /// Destroys the stream's data keys (crypto-shredding); returns how many there were. PostgreSQL keeps
    /// dead row versions until VACUUM and in its WAL and backups until they age out (SPEC.md §15.4).
    @discardableResult
    public func destroyKeys(_ stream: ID128) async throws -> Int {
        var n = 0
        for try await _ in try await client.query(
            "DELETE FROM psm_data_keys WHERE stream_id = \(ByteBuffer(bytes: stream.bytes)) RETURNING key_id", logger: logger
        ).decode(Int32.self) { n += 1 }
        return n
    }

    // MARK: - Reads

    public func readStream(_ stream: ID128, fromRevision from: UInt64, limit: Int) async throws -> [StoredEvent] {
        guard limit > 0 else { return [] }
        let sid = ByteBuffer(bytes: stream.bytes)
        var out: [StoredEvent] = []
        for try await (position, record) in try await client.query(
            """
            SELECT position, record FROM psm_events
            WHERE partition = \(partition(of: stream)) AND stream_id = \(sid) AND revision >= \(Int64(clamping: from))
            ORDER BY revision LIMIT \(limit)
            """, logger: logger
        ).decode((Int64, ByteBuffer).self) {
            out.append(try preparer.decode(Array(record.readableBytesView), position: UInt64(position)))
        }
        return out
    }

    /// The events at these positions (those that exist), in position order.
    public func events(at positions: [Position]) async throws -> [StoredEvent] {
        guard !positions.isEmpty else { return [] }
        var out: [StoredEvent] = []
        for try await (position, record) in try await client.query(
            "SELECT position, record FROM psm_events WHERE position = ANY(\(positions.map { Int64(clamping: $0) })::bigint[]) ORDER BY position",
            logger: logger
        ).decode((Int64, ByteBuffer).self) {
            out.append(try preparer.decode(Array(record.readableBytesView), position: UInt64(position)))
        }
        return out
    }

    public func event(withID id: EventID) async throws -> StoredEvent? {
        for try await (position, record) in try await client.query(
            "SELECT position, record FROM psm_events WHERE event_id = \(ByteBuffer(bytes: id.bytes))", logger: logger
        ).decode((Int64, ByteBuffer).self) {
            return try preparer.decode(Array(record.readableBytesView), position: UInt64(position))
        }
        return nil
    }

    public func stream(_ id: ID128) async throws -> StreamInfo? {
        for try await (tenant, name, next, head, first, last) in try await client.query(
            "SELECT tenant, name, next_revision, head, first_position, last_position FROM psm_streams WHERE stream_id = \(ByteBuffer(bytes: id.bytes))",
            logger: logger
        ).decode((String, String, Int64, ByteBuffer, Int64?, Int64?).self) {
            return StreamInfo(
                stream: try StreamName(tenant: tenant, name: name), nextRevision: UInt64(next), head: Array(head.readableBytesView),
                firstPosition: UInt64(first ?? 0), lastPosition: UInt64(last ?? 0))
        }
        return nil
    }

    public func plainPayload(of event: StoredEvent) async throws -> [UInt8] {
        let h = event.header
        let key = h.keyID == 0 ? nil : try await key(h.streamID, h.keyID)
        return try preparer.payload(of: event, key: key)
    }

    // MARK: - Change feed

    /// Where a reader of a partition's feed stands: the last (transaction id, position) it has seen.
    public struct FeedCursor: Sendable, Equatable, Codable {
        public var xid: Int64
        public var position: Int64
        public init(xid: Int64 = 0, position: Int64 = 0) {
            self.xid = xid
            self.position = position
        }
    }

    /// The next events of `partition` after `cursor`, in (transaction id, position) order, only from
    /// transactions older than the oldest still open: a transaction that commits later than a newer
    /// one cannot slip in behind the cursor (issue 9's measured skip). Returns the events and the new
    /// cursor.
    public func tail(partition: Int, after cursor: FeedCursor, limit: Int = 1000) async throws -> ([StoredEvent], FeedCursor) {
        guard (0..<partitions).contains(partition) else { throw JournalError.invalidArgument("partition must be 0..<\(partitions), got \(partition)") }
        var out: [StoredEvent] = []
        var last = cursor
        for try await (xid, position, record) in try await client.query(
            """
            SELECT xid::text::bigint, position, record FROM psm_events
            WHERE partition = \(partition)
              AND (xid::text::bigint, position) > (\(cursor.xid), \(cursor.position))
              AND xid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY xid, position LIMIT \(max(1, limit))
            """, logger: logger
        ).decode((Int64, Int64, ByteBuffer).self) {
            out.append(try preparer.decode(Array(record.readableBytesView), position: UInt64(position)))
            last = FeedCursor(xid: xid, position: position)
        }
        return (out, last)
    }

    /// The feed's end now: the cursor after the last event of `partition` that ``tail(partition:after:limit:)``
    /// would show. A reader that first reads whole streams and then follows the feed from here misses
    /// nothing (events of transactions still open come after it).
    public func feedHead(partition: Int) async throws -> FeedCursor {
        for try await (xid, position) in try await client.query(
            """
            SELECT xid::text::bigint, position FROM psm_events
            WHERE partition = \(partition) AND xid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY xid DESC, position DESC LIMIT 1
            """, logger: logger
        ).decode((Int64, Int64).self) {
            return FeedCursor(xid: xid, position: position)
        }
        return FeedCursor()
    }

    /// The streams of `partition` with their names, in stream-id order.
    public func streams(inPartition partition: Int) async throws -> [StreamInfo] {
        var out: [StreamInfo] = []
        for try await (sid, tenant, name, next, head, first, last) in try await client.query(
            """
            SELECT stream_id, tenant, name, next_revision, head, first_position, last_position FROM psm_streams
            WHERE partition = \(partition) ORDER BY stream_id
            """, logger: logger
        ).decode((ByteBuffer, String, String, Int64, ByteBuffer, Int64?, Int64?).self) {
            let stream = try StreamName(tenant: tenant, name: name)
            guard stream.id.bytes == Array(sid.readableBytesView) else {
                throw JournalError.backend("stream row \(ID128(bytes: Array(sid.readableBytesView))) names \(stream), whose id differs")
            }
            out.append(StreamInfo(stream: stream, nextRevision: UInt64(next), head: Array(head.readableBytesView), firstPosition: UInt64(first ?? 0), lastPosition: UInt64(last ?? 0)))
        }
        return out
    }

    /// The leaf hashes of `tenant`'s records in the tenant's Merkle tree (SPEC.md §15.4), with each
    /// leaf's position: every stream of the tenant, in feed order (transaction id, position), only
    /// from transactions older than the oldest one still open, so the tree only ever grows at its end
    /// (an append still in flight joins it after it commits and every older transaction has ended).
    /// Leaves are hashed here from the records read, not by the server.
    public func tenantLeaves(_ tenant: String) async throws -> (leaves: [[UInt8]], positions: [Position]) {
        var leaves: [[UInt8]] = [], positions: [Position] = []
        for try await (position, record) in try await client.query(
            """
            SELECT e.position, e.record FROM psm_events e JOIN psm_streams s ON s.stream_id = e.stream_id
            WHERE s.tenant = \(tenant) AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY e.xid, e.position
            """, logger: logger
        ).decode((Int64, ByteBuffer).self) {
            leaves.append(Merkle.leafHash(Array(record.readableBytesView)))
            positions.append(UInt64(position))
        }
        return (leaves, positions)
    }

    // MARK: - API keys (schema version 2)

    /// A row of `psm_api_keys`: an API key's record as the API module keeps it (scopes comma-separated).
    public struct APIKeyRow: Sendable, Equatable {
        public var id, tenant, scopes, name, sha256, created: String
        public var revoked: String?
        public init(id: String, tenant: String, scopes: String, name: String, sha256: String, created: String, revoked: String?) {
            (self.id, self.tenant, self.scopes, self.name, self.sha256, self.created, self.revoked) = (id, tenant, scopes, name, sha256, created, revoked)
        }
    }

    public func insertAPIKey(_ k: APIKeyRow) async throws {
        try await client.query(
            """
            INSERT INTO psm_api_keys (id, tenant, scopes, name, sha256, created, revoked)
            VALUES (\(k.id), \(k.tenant), \(k.scopes), \(k.name), \(k.sha256), \(k.created), \(k.revoked))
            """, logger: logger)
    }

    /// Every key, revoked ones too, in id order.
    public func apiKeys() async throws -> [APIKeyRow] {
        var out: [APIKeyRow] = []
        for try await (id, tenant, scopes, name, sha, created, revoked) in try await client.query(
            "SELECT id, tenant, scopes, name, sha256, created, revoked FROM psm_api_keys ORDER BY id", logger: logger
        ).decode((String, String, String, String, String, String, String?).self) {
            out.append(APIKeyRow(id: id, tenant: tenant, scopes: scopes, name: name, sha256: sha, created: created, revoked: revoked))
        }
        return out
    }

    /// Marks the key revoked at `time` (kept for the audit trail; a second revocation keeps the first
    /// time). Returns the row, or nil when no key has that id.
    public func revokeAPIKey(id: String, at time: String) async throws -> APIKeyRow? {
        var out: APIKeyRow?
        for try await (id, tenant, scopes, name, sha, created, revoked) in try await client.query(
            """
            UPDATE psm_api_keys SET revoked = coalesce(revoked, \(time)) WHERE id = \(id)
            RETURNING id, tenant, scopes, name, sha256, created, revoked
            """, logger: logger
        ).decode((String, String, String, String, String, String, String?).self) {
            out = APIKeyRow(id: id, tenant: tenant, scopes: scopes, name: name, sha256: sha, created: created, revoked: revoked)
        }
        return out
    }

    /// The plain payload of `event` with the stream's data key already looked up (nil: unencrypted or
    /// destroyed).
    public func plainPayload(of event: StoredEvent, key: SymmetricKey?) throws(JournalError) -> [UInt8] {
        try preparer.payload(of: event, key: key)
    }

    /// Records where `node` stands in `partition`'s feed, for `psm cluster status` (lag).
    public func saveCursor(_ cursor: FeedCursor, partition: Int, node: String) async throws {
        try await client.query(
            """
            INSERT INTO psm_feed_cursors (partition, node, xid, position) VALUES (\(partition), \(node), \(cursor.xid), \(cursor.position))
            ON CONFLICT (partition, node) DO UPDATE SET xid = excluded.xid, position = excluded.position, updated_at = now()
            """, logger: logger)
    }

    /// Rows whose event id another row also has (0 while the unique index holds; a benchmark and
    /// audit check).
    public func repeatedEventIDs() async throws -> Int {
        var n: Int64 = 0
        for try await c in try await client.query("SELECT count(*) - count(DISTINCT event_id) FROM psm_events", logger: logger).decode(Int64.self) {
            n = c
        }
        return Int(n)
    }

    /// Runs `body` with the pool (for the cluster module's own queries).
    public func withClient<T>(_ body: (PostgresClient, Logger) async throws -> T) async throws -> T { try await body(client, logger) }

    // MARK: - Verify

    /// Checks every stream: records decode with a good CRC, each record's header agrees with its row
    /// (stream, revision, event id), revisions run 0, 1, 2 … without gaps, the chain over the records
    /// equals the stream's head, and the revision count equals `next_revision`. Stops at the first problem.
    public func verifyJournal() async throws -> VerificationReport {
        var report = VerificationReport()
        var streams: [(ByteBuffer, Int64, ByteBuffer)] = []
        for try await row in try await client.query(
            "SELECT stream_id, next_revision, head FROM psm_streams ORDER BY stream_id", logger: logger
        ).decode((ByteBuffer, Int64, ByteBuffer).self) { streams.append(row) }
        for (sidBuffer, next, head) in streams {
            let sid = ID128(bytes: Array(sidBuffer.readableBytesView))
            report.streams += 1
            var chain = [UInt8](repeating: 0, count: 32)
            var expected: Int64 = 0
            var problem: VerificationReport.Problem?
            while problem == nil {
                var page = 0
                for try await (revision, position, eventID, record) in try await client.query(
                    """
                    SELECT revision, position, event_id, record FROM psm_events
                    WHERE partition = \(partition(of: sid)) AND stream_id = \(sidBuffer) AND revision >= \(expected)
                    ORDER BY revision LIMIT 1000
                    """, logger: logger
                ).decode((Int64, Int64, ByteBuffer, ByteBuffer).self) {
                    page += 1
                    guard problem == nil else { continue }
                    let p = UInt64(position)
                    let bytes = Array(record.readableBytesView)
                    let e: StoredEvent
                    do { e = try preparer.decode(bytes, position: p) } catch {
                        problem = .init(position: p, check: "record", expected: "a valid v1 record", found: "\(error)")
                        continue
                    }
                    if revision != expected {
                        problem = .init(position: p, check: "revision sequence of stream \(sid)", expected: "\(expected)", found: "\(revision)")
                    } else if e.header.revision != UInt64(revision) || e.header.streamID != sid {
                        problem = .init(
                            position: p, check: "record header vs row", expected: "stream \(sid) revision \(revision)",
                            found: "stream \(e.header.streamID) revision \(e.header.revision)")
                    } else if e.header.eventID.bytes != Array(eventID.readableBytesView) {
                        problem = .init(position: p, check: "event id vs row", expected: "\(e.header.eventID)", found: "\(ID128(bytes: Array(eventID.readableBytesView)))")
                    }
                    chain = Journal.chain(chain, bytes)
                    report.events += 1
                    report.lastPosition = max(report.lastPosition, p)
                    if e.header.isCompressed { report.compressedEvents += 1 }
                    if e.header.keyID != 0 {
                        report.encryptedEvents += 1
                        if try await key(sid, e.header.keyID) == nil { report.shreddedEvents += 1 }
                    }
                    expected += 1
                }
                if page < 1000 { break }
            }
            if problem == nil && expected != next {
                problem = .init(position: nil, check: "event count of stream \(sid)", expected: "\(next)", found: "\(expected)")
            }
            if problem == nil && chain != Array(head.readableBytesView) {
                problem = .init(position: nil, check: "hash chain of stream \(sid)", expected: hexBytes(head.readableBytesView), found: hexBytes(chain))
            }
            report.heads[sid] = chain
            if let problem {
                report.problem = problem
                return report
            }
        }
        var orphans: Int64 = 0
        for try await n in try await client.query(
            "SELECT count(*) FROM psm_events e WHERE NOT EXISTS (SELECT 1 FROM psm_streams s WHERE s.stream_id = e.stream_id)", logger: logger
        ).decode(Int64.self) { orphans = n }
        if orphans > 0 { report.problem = .init(position: nil, check: "events without a stream row", expected: "0", found: "\(orphans)") }
        return report
    }


    /// Backend failures become `JournalError.backend`, naming the SQLSTATE and server message; the
    /// outcome of a write that failed this way is unknown and a retry with the same ids is safe.
    static func backendError(_ error: any Error, _ what: String) -> JournalError {
        if let e = error as? JournalError { return e }
        if let e = error as? PSQLError {
            let state = e.serverInfo?[.sqlState].map { " SQLSTATE \($0)" } ?? ""
            let message = e.serverInfo?[.message].map { ": \($0)" } ?? ""
            return .backend("\(what): PostgreSQL \(e.code)\(state)\(message)")
        }
        return .backend("\(what): \(error)")
    }
}
