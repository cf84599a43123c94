/// Journal record format v1 (SPEC.md §4). One record is one immutable event:
///
///     offset size  field
///          0    4  magic "PSMJ"
///          4    1  format version (1)
///          5    1  flags: bit 0 zstd, bit 1 dictionary (needs bit 0); bits 2-7 reserved, zero
///          6    2  event type (u16 LE, 0 invalid)
///          8    4  stored payload length (u32 LE)
///         12    4  uncompressed payload length (u32 LE)
///         16    4  key id (u32 LE; 0 = plaintext, the only value v1 accepts)
///         20    4  dictionary id (u32 LE; nonzero iff flag bit 1)
///         24    8  event time (i64 LE, microseconds since 1970-01-01T00:00:00Z)
///         32    8  stream revision (u64 LE, 0 for a stream's first event)
///         40   16  stream id
///         56   16  event id (nonzero)
///         72   16  causation id (zero = none)
///         88    4  reserved (zero)
///         92    n  payload (stored length bytes)
///       92+n    4  CRC-32C (u32 LE) of bytes [0, 92+n)
public enum RecordFormat {
    public static let magic: [UInt8] = [0x50, 0x53, 0x4D, 0x4A]  // "PSMJ"
    /// The magic as a little-endian u32, for stores.
    static let magicWord: UInt32 = 0x4A4D_5350
    public static let version: UInt8 = 1
    public static let headerSize = 92
    public static let trailerSize = 4
    public static let overhead = headerSize + trailerSize
    /// Upper bound on a payload, stored or uncompressed (16 MiB). Checked before any allocation.
    public static let maxPayloadSize = 16 << 20
    /// Payloads of at least this many bytes are zstd-compressed (when that makes them smaller).
    public static let compressionThreshold = 64

    public static let flagZstd: UInt8 = 1 << 0
    public static let flagDictionary: UInt8 = 1 << 1
    static let knownFlags: UInt8 = flagZstd | flagDictionary
}

/// The decoded fixed header of a record.
public struct RecordHeader: Sendable, Equatable {
    public var flags: UInt8
    public var eventType: UInt16
    public var storedLength: UInt32
    public var uncompressedLength: UInt32
    public var keyID: UInt32
    public var dictionaryID: UInt32
    public var eventTime: Int64
    public var revision: UInt64
    public var streamID: ID128
    public var eventID: ID128
    public var causationID: ID128

    public var isCompressed: Bool { flags & RecordFormat.flagZstd != 0 }

    public init(
        flags: UInt8, eventType: UInt16, storedLength: UInt32, uncompressedLength: UInt32, keyID: UInt32, dictionaryID: UInt32,
        eventTime: Int64, revision: UInt64, streamID: ID128, eventID: ID128, causationID: ID128
    ) {
        self.flags = flags
        self.eventType = eventType
        self.storedLength = storedLength
        self.uncompressedLength = uncompressedLength
        self.keyID = keyID
        self.dictionaryID = dictionaryID
        self.eventTime = eventTime
        self.revision = revision
        self.streamID = streamID
        self.eventID = eventID
        self.causationID = causationID
    }
}

/// Why a record's bytes were rejected. Never carries payload contents.
public struct RecordError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case truncated, badMagic, unsupportedVersion, invalidEventType, unknownFlags, nonzeroReserved
        case lengthTooLarge, lengthMismatch, checksumMismatch, invalidEventID, invalidDictionary, unsupportedKeyID
    }
    public var kind: Kind
    /// Byte offset inside the record where the problem is.
    public var offset: Int
    public var expected: String
    public var found: String
    /// Journal position of the record, when known.
    public var position: Position?

    public var description: String {
        let at = position.map { "record at position \($0)" } ?? "record"
        return "\(at): \(kind.rawValue) at byte offset \(offset): expected \(expected), found \(found)"
    }
}

/// Encoding and decoding of v1 records.
public enum RecordCodec {
    /// Builds a record from its header fields and already-prepared stored payload bytes.
    /// The header's `storedLength` is taken from `storedPayload`.
    public static func encode(_ header: RecordHeader, storedPayload: UnsafeRawBufferPointer) -> [UInt8] {
        let total = RecordFormat.overhead + storedPayload.count
        return [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            let p = UnsafeMutableRawBufferPointer(buffer)
            p.storeBytes(of: RecordFormat.magicWord.littleEndian, toByteOffset: 0, as: UInt32.self)
            p[4] = RecordFormat.version
            p[5] = header.flags
            p.storeBytes(of: header.eventType.littleEndian, toByteOffset: 6, as: UInt16.self)
            p.storeBytes(of: UInt32(storedPayload.count).littleEndian, toByteOffset: 8, as: UInt32.self)
            p.storeBytes(of: header.uncompressedLength.littleEndian, toByteOffset: 12, as: UInt32.self)
            p.storeBytes(of: header.keyID.littleEndian, toByteOffset: 16, as: UInt32.self)
            p.storeBytes(of: header.dictionaryID.littleEndian, toByteOffset: 20, as: UInt32.self)
            p.storeBytes(of: header.eventTime.littleEndian, toByteOffset: 24, as: Int64.self)
            p.storeBytes(of: header.revision.littleEndian, toByteOffset: 32, as: UInt64.self)
            header.streamID.store(into: p, at: 40)
            header.eventID.store(into: p, at: 56)
            header.causationID.store(into: p, at: 72)
            p.storeBytes(of: UInt32(0), toByteOffset: 88, as: UInt32.self)
            if storedPayload.count > 0 {
                UnsafeMutableRawBufferPointer(rebasing: p[RecordFormat.headerSize..<(total - 4)]).copyMemory(from: storedPayload)
            }
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: p[0..<(total - 4)]))
            p.storeBytes(of: crc.littleEndian, toByteOffset: total - 4, as: UInt32.self)
            count = total
        }
    }

    public static func encode(_ header: RecordHeader, storedPayload: [UInt8]) -> [UInt8] {
        storedPayload.withUnsafeBytes { encode(header, storedPayload: $0) }
    }

    /// Validates every header field, the lengths and the CRC, and returns the header.
    /// The payload is `bytes[headerSize ..< headerSize + storedLength]`.
    public static func decode(_ bytes: UnsafeRawBufferPointer, position: Position? = nil) throws(RecordError) -> RecordHeader {
        func fail(_ kind: RecordError.Kind, _ offset: Int, _ expected: String, _ found: String) -> RecordError {
            RecordError(kind: kind, offset: offset, expected: expected, found: found, position: position)
        }
        guard bytes.count >= RecordFormat.overhead else {
            throw fail(.truncated, bytes.count, "at least \(RecordFormat.overhead) bytes", "\(bytes.count) bytes")
        }
        for i in 0..<4 where bytes[i] != RecordFormat.magic[i] {
            throw fail(.badMagic, 0, "50534d4a (\"PSMJ\")", hexString(bytes, 0, 4))
        }
        guard bytes[4] == RecordFormat.version else {
            throw fail(.unsupportedVersion, 4, "version \(RecordFormat.version)", "version \(bytes[4])")
        }
        let flags = bytes[5]
        guard flags & ~RecordFormat.knownFlags == 0 else {
            throw fail(.unknownFlags, 5, "flag bits within 0x03", "0x" + String(flags, radix: 16))
        }
        let type = bytes.le(6, UInt16.self)
        guard type != 0 else { throw fail(.invalidEventType, 6, "a nonzero event type", "0") }
        let stored = bytes.le(8, UInt32.self)
        let uncompressed = bytes.le(12, UInt32.self)
        guard stored <= RecordFormat.maxPayloadSize else {
            throw fail(.lengthTooLarge, 8, "stored length ≤ \(RecordFormat.maxPayloadSize)", "\(stored)")
        }
        guard uncompressed <= RecordFormat.maxPayloadSize else {
            throw fail(.lengthTooLarge, 12, "uncompressed length ≤ \(RecordFormat.maxPayloadSize)", "\(uncompressed)")
        }
        let total = RecordFormat.overhead + Int(stored)
        guard bytes.count >= total else {
            throw fail(.truncated, bytes.count, "\(total) bytes (stored length \(stored))", "\(bytes.count) bytes")
        }
        guard bytes.count == total else {
            throw fail(.lengthMismatch, total, "\(total) bytes (stored length \(stored))", "\(bytes.count) bytes")
        }
        let compressed = flags & RecordFormat.flagZstd != 0
        if !compressed && stored != uncompressed {
            throw fail(.lengthMismatch, 12, "uncompressed length \(stored) (= stored, payload not compressed)", "\(uncompressed)")
        }
        let keyID = bytes.le(16, UInt32.self)
        guard keyID == 0 else { throw fail(.unsupportedKeyID, 16, "key id 0 (plaintext)", "\(keyID)") }
        let dict = bytes.le(20, UInt32.self)
        let hasDict = flags & RecordFormat.flagDictionary != 0
        if hasDict && (!compressed || dict == 0) {
            throw fail(.invalidDictionary, 20, "a nonzero dictionary id on a zstd payload", "id \(dict), flags 0x\(String(flags, radix: 16))")
        }
        if !hasDict && dict != 0 { throw fail(.invalidDictionary, 20, "dictionary id 0 (flag bit 1 clear)", "\(dict)") }
        let reserved = bytes.le(88, UInt32.self)
        guard reserved == 0 else { throw fail(.nonzeroReserved, 88, "0", "\(reserved)") }
        let eventID = ID128(bytes: UnsafeRawBufferPointer(rebasing: bytes[56..<72]))
        guard !eventID.isZero else { throw fail(.invalidEventID, 56, "a nonzero event id", "zero") }
        let storedCRC = bytes.le(total - 4, UInt32.self)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<(total - 4)]))
        guard storedCRC == computed else {
            throw fail(.checksumMismatch, total - 4, "crc32c \(hex32(computed)) (computed)", "\(hex32(storedCRC)) (stored)")
        }
        return RecordHeader(
            flags: flags, eventType: type, storedLength: stored, uncompressedLength: uncompressed, keyID: keyID,
            dictionaryID: dict, eventTime: bytes.le(24, Int64.self), revision: bytes.le(32, UInt64.self),
            streamID: ID128(bytes: UnsafeRawBufferPointer(rebasing: bytes[40..<56])), eventID: eventID,
            causationID: ID128(bytes: UnsafeRawBufferPointer(rebasing: bytes[72..<88])))
    }

    public static func decode(_ bytes: [UInt8], position: Position? = nil) throws(RecordError) -> RecordHeader {
        let result = bytes.withUnsafeBytes { p in
            Result { () throws(RecordError) -> RecordHeader in try decode(p, position: position) }
        }
        return try result.get()
    }
}

func hex32(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}

func hexString(_ b: UnsafeRawBufferPointer, _ from: Int, _ count: Int) -> String {
    var s = ""
    for i in from..<min(b.count, from + count) {
        let h = String(b[i], radix: 16)
        s += h.count == 1 ? "0" + h : h
    }
    return s
}
