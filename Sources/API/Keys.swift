import Crypto
import Foundation
import Journal
import Projections

/// What a key may do. `admin` includes every other scope, within the key's tenant.
public enum Scope: String, Codable, Sendable, CaseIterable, Comparable {
    case memoryRead = "memory:read"
    case memoryWrite = "memory:write"
    case journalRead = "journal:read"
    case admin = "admin"

    public static func < (a: Scope, b: Scope) -> Bool { a.rawValue < b.rawValue }

    /// Parses "memory:read,memory:write"; throws naming the bad scope and the accepted ones.
    public static func parse(_ list: String) throws -> [Scope] {
        let names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw APIError.badRequest("no scopes given (accepted: \(Scope.allCases.map(\.rawValue).joined(separator: ", ")))") }
        return try Array(Set(names.map { n in
            guard let s = Scope(rawValue: n) else { throw APIError.badRequest("unknown scope \"\(n)\" (accepted: \(Scope.allCases.map(\.rawValue).joined(separator: ", ")))") }
            return s
        })).sorted()
    }
}

/// An API key's record. The key itself is shown once at creation; only its SHA-256 is stored.
public struct KeyRecord: Codable, Sendable, Equatable {
    /// Public key id (the key's second part), used to list and revoke it.
    public var id: String
    public var tenant: String
    public var scopes: [Scope]
    public var name: String
    /// SHA-256 of the whole key string, hexadecimal.
    public var sha256: String
    public var created: String
    public var revoked: String?

    public init(id: String, tenant: String, scopes: [Scope], name: String, sha256: String, created: String, revoked: String?) {
        (self.id, self.tenant, self.scopes, self.name, self.sha256, self.created, self.revoked) = (id, tenant, scopes, name, sha256, created, revoked)
    }

    public func allows(_ scope: Scope) -> Bool { revoked == nil && (scopes.contains(.admin) || scopes.contains(scope)) }
}

/// Who a bearer token is: the store's keys (``KeyStore``), or on a cluster node those and the
/// cluster's keys held in PostgreSQL (SPEC.md §15.5).
public protocol KeyAuthority: Sendable {
    func authenticate(_ token: String) -> KeyRecord?
}

/// Keys held in memory and replaced as a whole (a cluster node refreshes the cluster's keys from
/// PostgreSQL every round), checked after `fallback` (the node's own store keys).
public final class KeyList: KeyAuthority, @unchecked Sendable {
    private let lock = NSLock()
    private var keys: [KeyRecord] = []
    public let fallback: KeyStore?

    public init(fallback: KeyStore?) { self.fallback = fallback }

    public func replace(_ keys: [KeyRecord]) { lock.withLock { self.keys = keys } }

    public var count: Int { lock.withLock { keys.count } }

    public func authenticate(_ token: String) -> KeyRecord? {
        if let k = fallback?.authenticate(token) { return k }
        return KeyStore.match(token, in: lock.withLock { keys })
    }
}

/// The store's API keys, in `STORE/keys.json` (SPEC.md §13.2). Keys look like
/// `psm_<16 hex id>_<64 hex secret>`: 256 random bits from the system's CSPRNG, so one SHA-256 is a
/// sufficient verifier (no password stretching is needed for a uniformly random secret). The file is
/// replaced atomically (write, fsync, rename) under an exclusive lock; a server re-reads it when it
/// changes, so creating or revoking a key takes effect without a restart.
public final class KeyStore: KeyAuthority, @unchecked Sendable {
    public let path: String
    private let lock = NSLock()
    private var cached: [KeyRecord] = []
    private var cachedStamp: (Int, Int) = (-1, -1)

    struct File: Codable { var version: Int; var keys: [KeyRecord] }

    public init(storeDirectory: String) { path = storeDirectory + "/keys.json" }

    /// The reserved tenant of the store's own streams (model activations).
    public static let reservedTenant = UserRef.modelStream.tenant

    public static func validateTenant(_ tenant: String) throws {
        guard tenant != reservedTenant else { throw APIError.badRequest("tenant \"\(tenant)\" is reserved for the store's own streams") }
        do { _ = try UserRef(tenant: tenant, user: "x") } catch { throw APIError.badRequest("tenant \"\(tenant.prefix(80))\": \(error)") }
    }

    /// Creates a key and returns (record, the key string — shown once, never stored).
    public func create(tenant: String, scopes: [Scope], name: String, at time: Int64 = WireTime.now()) throws -> (KeyRecord, String) {
        let (record, key) = try Self.newKey(tenant: tenant, scopes: scopes, name: name, at: time)
        try modify { $0.append(record) }
        return (record, key)
    }

    /// A new key and its record, stored nowhere yet (this store's file, or a cluster's table).
    public static func newKey(tenant: String, scopes: [Scope], name: String, at time: Int64 = WireTime.now()) throws -> (KeyRecord, String) {
        try validateTenant(tenant)
        guard !scopes.isEmpty else { throw APIError.badRequest("a key needs at least one scope") }
        var rng = SystemRandomNumberGenerator()
        let idBytes = (0..<8).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let secret = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let id = hexBytes(idBytes)
        let key = "psm_\(id)_\(hexBytes(secret))"
        let record = KeyRecord(id: id, tenant: tenant, scopes: scopes.sorted(), name: name, sha256: digest(key), created: WireTime.format(time), revoked: nil)
        return (record, key)
    }

    /// Marks a key revoked (kept, so the audit trail of who held it stays).
    public func revoke(id: String, at time: Int64 = WireTime.now()) throws -> KeyRecord {
        var found: KeyRecord?
        try modify { keys in
            guard let i = keys.firstIndex(where: { $0.id == id }) else { return }
            if keys[i].revoked == nil { keys[i].revoked = WireTime.format(time) }
            found = keys[i]
        }
        guard let found else { throw APIError.notFound("no key with id \(id.prefix(40))") }
        return found
    }

    public func list() throws -> [KeyRecord] { try load() }

    /// The live key `token` names, or nil (unknown, malformed, revoked or wrong secret).
    public func authenticate(_ token: String) -> KeyRecord? {
        guard let keys = try? load() else { return nil }
        return Self.match(token, in: keys)
    }

    /// The live key of `keys` that `token` names, or nil (unknown, malformed, revoked or wrong secret).
    public static func match(_ token: String, in keys: [KeyRecord]) -> KeyRecord? {
        let parts = token.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "psm", parts[1].count == 16, parts[2].count == 64, token.utf8.count == 85 else { return nil }
        guard let k = keys.first(where: { $0.id == parts[1] }), k.revoked == nil else { return nil }
        // Compare digests in constant time.
        let a = Array(Self.digest(token).utf8), b = Array(k.sha256.utf8)
        guard a.count == b.count else { return nil }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0 ? k : nil
    }

    static func digest(_ key: String) -> String { hexBytes(Array(SHA256.hash(data: Array(key.utf8)))) }

    // MARK: File

    private func stamp() -> (Int, Int) {
        var st = stat()
        guard stat(path, &st) == 0 else { return (0, 0) }
        return (Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec), Int(st.st_ino))
    }

    private func load() throws -> [KeyRecord] {
        lock.lock()
        defer { lock.unlock() }
        let s = stamp()
        if s == cachedStamp { return cached }
        guard s != (0, 0), let data = FileManager.default.contents(atPath: path) else {
            cached = []
            cachedStamp = s
            return []
        }
        guard data.count <= 16 << 20 else { throw APIError(500, "keys", "\(path) is \(data.count) bytes; refusing a key file over 16 MiB") }
        do {
            let f = try JSONDecoder().decode(File.self, from: data)
            guard f.version == 1 else { throw APIError(500, "keys", "\(path) has version \(f.version); this psm reads version 1") }
            cached = f.keys
            cachedStamp = s
            return f.keys
        } catch let e as APIError {
            throw e
        } catch {
            throw APIError(500, "keys", "\(path) is not a valid key file: \(error)")
        }
    }

    private func modify(_ change: (inout [KeyRecord]) throws -> Void) throws {
        let lockFD = open(path + ".lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw APIError(500, "keys", "cannot open \(path).lock: \(String(cString: strerror(errno)))") }
        defer { close(lockFD) }
        guard flock(lockFD, LOCK_EX) == 0 else { throw APIError(500, "keys", "cannot lock \(path).lock: \(String(cString: strerror(errno)))") }
        var keys = try load()
        try change(&keys)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(File(version: 1, keys: keys))
        let tmp = path + ".tmp"
        let fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw APIError(500, "keys", "cannot write \(tmp): \(String(cString: strerror(errno)))") }
        let ok = data.withUnsafeBytes { b in write(fd, b.baseAddress, b.count) == b.count } && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else { throw APIError(500, "keys", "cannot replace \(path): \(String(cString: strerror(errno)))") }
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_CLOEXEC)
        if dir >= 0 { fsync(dir); close(dir) }
    }
}
