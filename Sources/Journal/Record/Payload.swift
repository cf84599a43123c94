/// The canonical binary payload encoding (SPEC.md §4.3).
///
/// A payload is a sequence of fields. Each field is a key — the unsigned LEB128 varint
/// `fieldNumber << 3 | wireType` — followed by its value:
///
/// - wire type 0, varint: an unsigned LEB128 integer in its shortest form (signed integers zig-zag first);
/// - wire type 1, fixed64: 8 bytes little-endian (IEEE-754 doubles, raw 64-bit values);
/// - wire type 2, bytes: a varint length then that many bytes (UTF-8 strings, nested payloads, ids).
///
/// Canonical form: field numbers from 1 to 2^29-1 in non-decreasing order, a repeated field's
/// values adjacent and of one wire type, varints minimal, lengths within the payload. Every
/// encoder produces it; ``PayloadReader`` rejects anything else, so one value has exactly one
/// encoding and digests over payloads are stable.
public struct PayloadWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    private var lastField: UInt32 = 0
    private var lastWire: UInt8 = 0

    public init() { bytes.reserveCapacity(64) }
    /// A writer whose buffer starts with room for `capacity` bytes.
    public init(capacity: Int) { bytes.reserveCapacity(capacity) }

    private mutating func key(_ field: UInt32, _ wire: UInt8) {
        precondition(field >= 1 && field < (1 << 29), "field number out of range")
        precondition(field >= lastField, "payload fields must be written in ascending order (\(field) after \(lastField))")
        precondition(field != lastField || wire == lastWire, "a repeated field keeps one wire type")
        lastField = field
        lastWire = wire
        varint(UInt64(field) << 3 | UInt64(wire))
    }

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    public mutating func uint(_ field: UInt32, _ value: UInt64) { key(field, 0); varint(value) }
    public mutating func int(_ field: UInt32, _ value: Int64) {
        key(field, 0)
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }
    public mutating func bool(_ field: UInt32, _ value: Bool) { uint(field, value ? 1 : 0) }
    public mutating func fixed64(_ field: UInt32, _ value: UInt64) { key(field, 1); bytes.appendLE(value) }
    public mutating func double(_ field: UInt32, _ value: Double) { fixed64(field, value.bitPattern) }
    public mutating func bytes(_ field: UInt32, _ value: [UInt8]) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }
    public mutating func bytes(_ field: UInt32, _ value: UnsafeBufferPointer<UInt8>) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }
    public mutating func string(_ field: UInt32, _ value: String) {
        key(field, 2)
        varint(UInt64(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }
    public mutating func id(_ field: UInt32, _ value: ID128) {
        key(field, 2)
        varint(16)
        bytes.appendBE(value.high)
        bytes.appendBE(value.low)
    }
}

/// One decoded field value.
public enum PayloadValue: Sendable, Equatable {
    case varint(UInt64)
    case fixed64(UInt64)
    case bytes([UInt8])

    /// The value as a signed (zig-zag) integer, for fields written with ``PayloadWriter/int(_:_:)``.
    public var zigzag: Int64? {
        guard case .varint(let v) = self else { return nil }
        return Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
    }
    public var string: String? {
        guard case .bytes(let b) = self else { return nil }
        return String(validating: b, as: UTF8.self)
    }
}

public struct PayloadError: Error, Equatable, Sendable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "non-canonical payload at byte \(offset): \(reason)" }
}

/// Reads and validates a canonical payload.
public enum PayloadReader {
    public static func fields(_ bytes: [UInt8]) throws(PayloadError) -> [(field: UInt32, value: PayloadValue)] {
        var out: [(UInt32, PayloadValue)] = []
        try visit(bytes, materialize: true) { f, v in out.append((f, v)) }
        return out
    }

    /// Validates `bytes` (used on every append) without building values.
    public static func validate(_ bytes: [UInt8]) throws(PayloadError) { try visit(bytes, materialize: false) { _, _ in } }

    static func visit(_ bytes: [UInt8], materialize: Bool, _ body: (UInt32, PayloadValue) -> Void) throws(PayloadError) {
        var i = 0
        var lastField: UInt32 = 0
        var lastWire: UInt64 = 0
        func varint() throws(PayloadError) -> UInt64 {
            let start = i
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard i < bytes.count else { throw PayloadError(offset: start, reason: "varint runs past the end") }
                let b = bytes[i]
                i += 1
                guard shift < 64, !(shift == 63 && b > 1) else { throw PayloadError(offset: start, reason: "varint overflows 64 bits") }
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 {
                    if b == 0 && i - start > 1 { throw PayloadError(offset: start, reason: "varint not in shortest form") }
                    return result
                }
                shift += 7
            }
        }
        while i < bytes.count {
            let keyOffset = i
            let key = try varint()
            let wire = key & 7
            let field64 = key >> 3
            guard field64 >= 1, field64 < (1 << 29) else {
                throw PayloadError(offset: keyOffset, reason: "field number \(field64) outside 1...\((1 << 29) - 1)")
            }
            let field = UInt32(field64)
            guard field >= lastField else {
                throw PayloadError(offset: keyOffset, reason: "field \(field) after field \(lastField) (must ascend)")
            }
            guard field != lastField || wire == lastWire else {
                throw PayloadError(offset: keyOffset, reason: "field \(field) repeated with another wire type")
            }
            lastField = field
            lastWire = wire
            switch wire {
            case 0:
                body(field, .varint(try varint()))
            case 1:
                guard bytes.count - i >= 8 else { throw PayloadError(offset: i, reason: "fixed64 runs past the end") }
                let v = bytes.withUnsafeBytes { $0.le(i, UInt64.self) }
                i += 8
                body(field, .fixed64(v))
            case 2:
                let lengthOffset = i
                let n = try varint()
                guard n <= UInt64(bytes.count - i) else {
                    throw PayloadError(offset: lengthOffset, reason: "length \(n) runs past the end (\(bytes.count - i) bytes left)")
                }
                if materialize { body(field, .bytes(Array(bytes[i..<(i + Int(n))]))) }
                i += Int(n)
            default:
                throw PayloadError(offset: keyOffset, reason: "unknown wire type \(wire)")
            }
        }
    }
}
