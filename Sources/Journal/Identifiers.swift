import Crypto

/// A 16-byte identifier (event ids, causation ids, stream ids). Printed as 32 lowercase hex digits.
public struct ID128: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }
    public static let zero = ID128(high: 0, low: 0)
    public var isZero: Bool { high == 0 && low == 0 }

    /// Reads 16 bytes, big-endian (the byte order in records and keys).
    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= 16)
        high = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        low = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }
    public init(bytes: [UInt8]) { self = bytes.withUnsafeBytes { ID128(bytes: $0) } }

    /// Parses 32 hex digits, or a UUID with dashes (8-4-4-4-12).
    public init?(hex: String) {
        let digits = hex.filter { $0 != "-" }
        guard digits.count == 32, hex.count == 32 || hex.count == 36 else { return nil }
        guard let h = UInt64(digits.prefix(16), radix: 16), let l = UInt64(digits.suffix(16), radix: 16) else { return nil }
        high = h
        low = l
    }

    /// Stores the 16 big-endian bytes at `offset`.
    @inlinable public func store(into p: UnsafeMutableRawBufferPointer, at offset: Int) {
        p.storeBytes(of: high.bigEndian, toByteOffset: offset, as: UInt64.self)
        p.storeBytes(of: low.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
    }

    /// Calls `body` with the 16 big-endian bytes, without allocating.
    @inlinable public func withBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try withUnsafeBytes(of: (high.bigEndian, low.bigEndian)) { try body($0) }
    }

    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        out.withUnsafeMutableBytes { p in
            p.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
            p.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
        return out
    }

    public var description: String { hex(high) + hex(low) }
    /// The 8-4-4-4-12 form.
    public var uuidString: String {
        let s = description
        let c = Array(s)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-" + String(c[20..<32])
    }

    public static func < (a: ID128, b: ID128) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// A random (version 4) id from the system generator. For callers that have no id of their own;
    /// never used on the decision path.
    public static func random() -> ID128 {
        var g = SystemRandomNumberGenerator()
        var high = g.next() as UInt64
        var low = g.next() as UInt64
        high = (high & ~0xF000) | 0x4000
        low = (low & ~(0xC000_0000_0000_0000 as UInt64)) | 0x8000_0000_0000_0000
        return ID128(high: high, low: low)
    }

    /// A deterministic id: the first 16 bytes of SHA-256(domain ‖ 0x00 ‖ data).
    public static func derived(domain: String, _ data: [UInt8]) -> ID128 {
        var h = SHA256()
        h.update(data: Array(domain.utf8))
        h.update(data: [0])
        h.update(data: data)
        return ID128(bytes: Array(h.finalize()))
    }
}

@inline(__always)
func hex(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

public typealias EventID = ID128

/// A global journal position: 1 for the first event, then consecutive. 0 means "none".
public typealias Position = UInt64

/// A stream: the events of one tenant's scope (a user, for memory streams) under one name.
///
/// Its 16-byte ``id`` is derived from the tenant and name (SPEC.md §3.2), so the same stream has the same
/// id in every store and backend.
public struct StreamName: Hashable, Sendable, CustomStringConvertible {
    public let tenant: String
    public let name: String
    public let id: ID128

    public static let maxComponentBytes = 255

    public init(tenant: String, name: String) throws(JournalError) {
        for (what, value) in [("tenant", tenant), ("stream name", name)] {
            let n = value.utf8.count
            guard n > 0, n <= StreamName.maxComponentBytes, !value.utf8.contains(0) else {
                throw JournalError.invalidArgument(
                    "\(what) must be 1 to \(StreamName.maxComponentBytes) bytes of UTF-8 without NUL (got \(n) bytes)")
            }
        }
        self.tenant = tenant
        self.name = name
        id = ID128.derived(domain: "psm.stream.v1", Array(tenant.utf8) + [0] + Array(name.utf8))
    }

    public var description: String { "\(tenant)/\(name)" }
}

/// What the appender expects a stream's revision to be (optimistic concurrency).
public enum ExpectedRevision: Sendable, Equatable, CustomStringConvertible {
    /// No check.
    case any
    /// The stream must have no events.
    case noStream
    /// The stream's last event must have this revision (revisions start at 0).
    case exact(UInt64)

    public var description: String {
        switch self {
        case .any: return "any"
        case .noStream: return "no stream"
        case .exact(let r): return "revision \(r)"
        }
    }
}

/// Little-endian / big-endian helpers over byte arrays.
extension Array where Element == UInt8 {
    @inlinable public mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
    @inlinable public mutating func appendBE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.bigEndian) { append(contentsOf: $0) }
    }
}

extension UnsafeRawBufferPointer {
    @inlinable public func le<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    @inlinable public func be<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
        T(bigEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

/// Big-endian key bytes for a u64 (positions, revisions).
@inlinable public func bigEndianBytes(_ v: UInt64) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(8)
    out.appendBE(v)
    return out
}

extension ID128 {
    /// A time-ordered id in the UUIDv7 layout (RFC 9562): 48 bits of milliseconds since the epoch from
    /// `timeMicros`, the version nibble 7, then 74 bits taken from `entropy` (a counter or random bits).
    /// Ids that grow with time keep the event-id index append-like (SPEC.md §3.3); random ids work
    /// but make every batch rewrite pages across the whole index.
    public static func timeOrdered(timeMicros: Int64, entropy: (UInt64, UInt64)) -> ID128 {
        let millis = UInt64(max(0, timeMicros / 1000)) & 0xFFFF_FFFF_FFFF
        let high = (millis << 16) | 0x7000 | (entropy.0 & 0x0FFF)
        let low = (entropy.1 & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return ID128(high: high, low: low)
    }
}

extension Array where Element == UInt8 {
    /// A big-endian integer at `offset` (the caller has checked the bounds).
    @inlinable public func be<T: FixedWidthInteger>(_ offset: Int, _ type: T.Type) -> T {
        withUnsafeBytes { $0.be(offset, type) }
    }
}
