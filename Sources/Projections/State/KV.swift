import LMDB

/// The projection store's tables (SPEC.md §11.3). Every key of a per-user table starts with the
/// user's 16-byte stream id, so a read scoped to one user cannot reach another's entries.
public enum Table: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// "format", "checkpoint", "active_model" → values.
    case meta
    /// user → ``UserRecord``.
    case users
    /// user ‖ observation id → ``ObservationRecord``.
    case observations
    /// user ‖ memory id → ``MemoryRecord``.
    case memories
    /// user ‖ slot (u32 BE) → ``IndexEntry``: memory id, analyzed terms and length, vector.
    case slots
    /// user ‖ source id ‖ derived memory id → empty (source → derived; memory → sources is in the record).
    case provenance
    /// user ‖ memory id ‖ position (u64 BE) → event type (u16 LE): every event that touched a memory.
    case history
    /// user ‖ recall request id → ``RecallRecord``.
    case recalls
    /// position (u64 BE) → reason: events the fold could not apply (never expected; see SPEC.md §11.5).
    case anomalies

    public var description: String {
        ["meta", "users", "observations", "memories", "slots", "provenance", "history", "recalls", "anomalies"][rawValue]
    }
}

/// Reads shared by the LMDB store and the in-memory store used for as-of folds.
public protocol KVReading {
    func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]?
    /// Visits entries whose key starts with `prefix`, in key order, until `body` returns false.
    func scan(_ table: Table, prefix: [UInt8], _ body: (_ key: [UInt8], _ value: [UInt8]) throws -> Bool) throws
}

public protocol KVWriting: KVReading {
    func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws
    /// Stores `value` under `key` unless the key exists; false (and nothing written) if it does.
    func insert(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws -> Bool
    func delete(_ table: Table, _ key: [UInt8]) throws
}

extension KVReading {
    func keys(_ table: Table, prefix: [UInt8]) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        try scan(table, prefix: prefix) { k, _ in out.append(k); return true }
        return out
    }
}

/// An in-memory store: the state of one as-of fold, or of a test's reference fold. Each table is a
/// dictionary plus its keys kept sorted, so prefix scans are a binary search and a walk.
public final class MemoryKV: KVWriting, @unchecked Sendable {
    private var values: [[[UInt8]: [UInt8]]] = Array(repeating: [:], count: Table.allCases.count)
    private var sortedKeys: [[[UInt8]]] = Array(repeating: [], count: Table.allCases.count)

    public init() {}

    /// The index of the first key not less than `key`.
    private func lowerBound(_ t: Int, _ key: [UInt8]) -> Int {
        var lo = 0, hi = sortedKeys[t].count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sortedKeys[t][mid].lexicographicallyPrecedes(key) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    public func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? { values[table.rawValue][key] }

    public func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws {
        let t = table.rawValue
        if values[t].updateValue(value, forKey: key) == nil { sortedKeys[t].insert(key, at: lowerBound(t, key)) }
    }

    public func insert(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws -> Bool {
        guard values[table.rawValue][key] == nil else { return false }
        try put(table, key, value)
        return true
    }

    public func delete(_ table: Table, _ key: [UInt8]) throws {
        let t = table.rawValue
        if values[t].removeValue(forKey: key) != nil { sortedKeys[t].remove(at: lowerBound(t, key)) }
    }

    public func scan(_ table: Table, prefix: [UInt8], _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        let t = table.rawValue
        var i = lowerBound(t, prefix)
        while i < sortedKeys[t].count {
            let k = sortedKeys[t][i]
            guard k.starts(with: prefix), try body(k, values[t][k]!) else { return }
            i += 1
        }
    }

    public func count(_ table: Table) -> Int { values[table.rawValue].count }
}

/// The projection store's LMDB databases, one per table.
struct LMDBTables: Sendable {
    let databases: [Database]
    init(env: Environment) throws {
        databases = try Table.allCases.map { try env.openDatabase($0.description) }
    }
    subscript(_ t: Table) -> Database { databases[t.rawValue] }
}

/// A read transaction seen as a ``KVReading``.
public struct LMDBReader<T: TransactionReading>: KVReading {
    let txn: T
    let tables: LMDBTables

    public func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? {
        try txn.get(tables[table], key).map { Array($0) }
    }

    public func scan(_ table: Table, prefix: [UInt8], _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        try txn.withCursor(tables[table]) { c in
            var entry = prefix.isEmpty ? try c.first() : try c.seek(atLeast: prefix)
            while let (k, v) = entry {
                guard k.starts(with: prefix) else { return }
                guard try body(Array(k), Array(v)) else { return }
                entry = try c.next()
            }
        }
    }
}

/// A write transaction seen as a ``KVWriting``.
struct LMDBWriter: KVWriting {
    let txn: WriteTransaction
    let tables: LMDBTables
    var reader: LMDBReader<WriteTransaction> { LMDBReader(txn: txn, tables: tables) }

    func get(_ table: Table, _ key: [UInt8]) throws -> [UInt8]? { try reader.get(table, key) }
    func scan(_ table: Table, prefix: [UInt8], _ body: ([UInt8], [UInt8]) throws -> Bool) throws { try reader.scan(table, prefix: prefix, body) }
    func put(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws { try txn.put(tables[table], key, value) }
    func insert(_ table: Table, _ key: [UInt8], _ value: [UInt8]) throws -> Bool {
        do {
            try txn.put(tables[table], key, value, .noOverwrite)
            return true
        } catch let e as LMDBError where e.isKeyExists {
            return false
        }
    }
    func delete(_ table: Table, _ key: [UInt8]) throws { _ = try txn.delete(tables[table], key) }
}

/// The live store's reader type.
public typealias LiveKV = LMDBReader<ReadTransaction>
