/// Journal record format v1 (SPEC.md §4). One record is one immutable event. Integers are
/// little-endian; ids are 16 bytes as stored (big-endian when read as numbers).
///
///     offset size  field
///          0    4  magic "PSMJ"
///          4    1  format version (1)
///          5    1  flags: bit 0 zstd payload, bit 1 dictionary id present (needs bit 0),
///                  bit 2 causation id present, bit 3 key id present (encrypted payload, not
///                  accepted by v1 readers yet); bits 4-7 reserved, zero
///          6    2  event type (u16, 0 invalid)
///          8    4  stored payload length (u32)
///         12    4  uncompressed payload length (u32)
///         16    8  event time (i64, microseconds since 1970-01-01T00:00:00Z)
///         24    8  stream revision (u64, 0 for a stream's first event)
///         32   16  stream id
///         48   16  event id (nonzero)
///         64       optional fields, in this order, each present iff its flag is set:
///                    4  dictionary id (u32, nonzero)          flag bit 1
///                   16  causation id (nonzero)                flag bit 2
///                    4  key id (u32, nonzero)                 flag bit 3
///          h    n  payload (stored length bytes); h = 64 + sizes of the optional fields
///        h+n    4  CRC-32C (u32) of bytes [0, h+n)
public enum RecordFormat {
    public static let magic: [UInt8] = [0x50, 0x53, 0x4D, 0x4A]  // "PSMJ"
    /// The magic as a little-endian u32, for stores.
    static let magicWord: UInt32 = 0x4A4D_5350
    public static let version: UInt8 = 1
    /// Size of the fixed part of the header.
    public static let fixedHeaderSize = 64
    public static let trailerSize = 4
    /// The smallest possible record: fixed header, empty payload, CRC.
    public static let minimumSize = fixedHeaderSize + trailerSize
    /// Upper bound on a payload, stored or uncompressed (16 MiB). Checked before any allocation.
    public static let maxPayloadSize = 16 << 20
    /// Payloads of at least this many bytes are zstd-compressed (when that makes them smaller).
    public static let compressionThreshold = 64

    public static let flagZstd: UInt8 = 1 << 0
    public static let flagDictionary: UInt8 = 1 << 1
    public static let flagCausation: UInt8 = 1 << 2
    public static let flagKeyID: UInt8 = 1 << 3
    /// Bytes an encrypted payload adds: a 12-byte nonce and a 16-byte tag (ChaCha20-Poly1305, SPEC.md §4.7).
    public static let sealOverhead = 28
    static let knownFlags: UInt8 = 0x0F

    /// Header length for `flags`: the fixed part plus the optional fields the flags announce.
    public static func headerSize(flags: UInt8) -> Int {
        fixedHeaderSize + (flags & flagDictionary != 0 ? 4 : 0) + (flags & flagCausation != 0 ? 16 : 0)
            + (flags & flagKeyID != 0 ? 4 : 0)
    }
}

/// The decoded header of a record. Absent optional fields read as zero.
public struct RecordHeader: Sendable, Equatable {
    /// Bits 0 (zstd) and 3 (key id) as stored; bits 1 and 2 follow `dictionaryID` and `causationID`
    /// when encoding.
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

    /// The flags byte as encoded: optional-field bits derived from the fields themselves.
    public var encodedFlags: UInt8 {
        var f = flags & (RecordFormat.flagZstd | RecordFormat.flagKeyID)
        if dictionaryID != 0 { f |= RecordFormat.flagDictionary }
        if !causationID.isZero { f |= RecordFormat.flagCausation }
        if keyID != 0 { f |= RecordFormat.flagKeyID }
        return f
    }

    public var headerSize: Int { RecordFormat.headerSize(flags: encodedFlags) }

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
        case truncated, badMagic, unsupportedVersion, invalidEventType, unknownFlags
        case lengthTooLarge, lengthMismatch, checksumMismatch, invalidEventID, invalidDictionary, invalidCausation, invalidKeyID
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
    /// The stored length is taken from `storedPayload`; optional fields are written when nonzero.
    public static func encode(_ header: RecordHeader, storedPayload: UnsafeRawBufferPointer) -> [UInt8] {
        let total = encodedSize(header, storedCount: storedPayload.count)
        return [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            encode(header, storedPayload: storedPayload, into: UnsafeMutableRawBufferPointer(buffer))
            count = total
        }
    }

    /// The size of the record for `header` with a stored payload of `storedCount` bytes.
    public static func encodedSize(_ header: RecordHeader, storedCount: Int) -> Int {
        RecordFormat.headerSize(flags: header.encodedFlags) + storedCount + RecordFormat.trailerSize
    }

    /// Writes the record into `p`, which is exactly ``encodedSize(_:storedCount:)`` bytes (for
    /// instance space reserved in an LMDB page).
    public static func encode(_ header: RecordHeader, storedPayload: UnsafeRawBufferPointer, into p: UnsafeMutableRawBufferPointer) {
        let flags = header.encodedFlags
        let total = p.count
        precondition(total == RecordFormat.headerSize(flags: flags) + storedPayload.count + RecordFormat.trailerSize)
        p.storeBytes(of: RecordFormat.magicWord.littleEndian, toByteOffset: 0, as: UInt32.self)
        p[4] = RecordFormat.version
        p[5] = flags
        p.storeBytes(of: header.eventType.littleEndian, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: UInt32(storedPayload.count).littleEndian, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: header.uncompressedLength.littleEndian, toByteOffset: 12, as: UInt32.self)
        p.storeBytes(of: header.eventTime.littleEndian, toByteOffset: 16, as: Int64.self)
        p.storeBytes(of: header.revision.littleEndian, toByteOffset: 24, as: UInt64.self)
        header.streamID.store(into: p, at: 32)
        header.eventID.store(into: p, at: 48)
        var o = RecordFormat.fixedHeaderSize
        if flags & RecordFormat.flagDictionary != 0 {
            p.storeBytes(of: header.dictionaryID.littleEndian, toByteOffset: o, as: UInt32.self)
            o += 4
        }
        if flags & RecordFormat.flagCausation != 0 {
            header.causationID.store(into: p, at: o)
            o += 16
        }
        if flags & RecordFormat.flagKeyID != 0 {
            p.storeBytes(of: header.keyID.littleEndian, toByteOffset: o, as: UInt32.self)
            o += 4
        }
        if storedPayload.count > 0 {
            UnsafeMutableRawBufferPointer(rebasing: p[o..<(o + storedPayload.count)]).copyMemory(from: storedPayload)
        }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: p[0..<(total - 4)]))
        p.storeBytes(of: crc.littleEndian, toByteOffset: total - 4, as: UInt32.self)
    }

    public static func encode(_ header: RecordHeader, storedPayload: [UInt8]) -> [UInt8] {
        storedPayload.withUnsafeBytes { encode(header, storedPayload: $0) }
    }

    public static func encode(_ header: RecordHeader, storedPayload: ArraySlice<UInt8>) -> [UInt8] {
        storedPayload.withUnsafeBytes { encode(header, storedPayload: $0) }
    }

    /// Validates every header field, the lengths and the CRC, and returns the header.
    /// The payload is `bytes[header.headerSize ..< header.headerSize + storedLength]`.
    public static func decode(_ bytes: UnsafeRawBufferPointer, position: Position? = nil) throws(RecordError) -> RecordHeader {
        func fail(_ kind: RecordError.Kind, _ offset: Int, _ expected: String, _ found: String) -> RecordError {
            RecordError(kind: kind, offset: offset, expected: expected, found: found, position: position)
        }
        guard bytes.count >= RecordFormat.minimumSize else {
            throw fail(.truncated, bytes.count, "at least \(RecordFormat.minimumSize) bytes", "\(bytes.count) bytes")
        }
        for i in 0..<4 where bytes[i] != RecordFormat.magic[i] {
            throw fail(.badMagic, 0, "50534d4a (\"PSMJ\")", hexString(bytes, 0, 4))
        }
        guard bytes[4] == RecordFormat.version else {
            throw fail(.unsupportedVersion, 4, "version \(RecordFormat.version)", "version \(bytes[4])")
        }
        let flags = bytes[5]
        guard flags & ~RecordFormat.knownFlags == 0 else {
            throw fail(.unknownFlags, 5, "flag bits within 0x0f", "0x" + String(flags, radix: 16))
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
        let h = RecordFormat.headerSize(flags: flags)
        let total = h + Int(stored) + RecordFormat.trailerSize
        guard bytes.count >= total else {
            throw fail(.truncated, bytes.count, "\(total) bytes (header \(h), stored length \(stored))", "\(bytes.count) bytes")
        }
        guard bytes.count == total else {
            throw fail(.lengthMismatch, total, "\(total) bytes (header \(h), stored length \(stored))", "\(bytes.count) bytes")
        }
        let compressed = flags & RecordFormat.flagZstd != 0
        let encrypted = flags & RecordFormat.flagKeyID != 0
        if encrypted {
            guard stored >= RecordFormat.sealOverhead else {
                throw fail(.lengthMismatch, 8, "stored length ≥ \(RecordFormat.sealOverhead) (nonce and tag of an encrypted payload)", "\(stored)")
            }
            if !compressed && stored != uncompressed + UInt32(RecordFormat.sealOverhead) {
                throw fail(.lengthMismatch, 12, "uncompressed length \(stored - UInt32(RecordFormat.sealOverhead)) (stored − \(RecordFormat.sealOverhead), encrypted, not compressed)", "\(uncompressed)")
            }
        } else if !compressed && stored != uncompressed {
            throw fail(.lengthMismatch, 12, "uncompressed length \(stored) (= stored, payload not compressed)", "\(uncompressed)")
        }
        let eventID = ID128(bytes: UnsafeRawBufferPointer(rebasing: bytes[48..<64]))
        guard !eventID.isZero else { throw fail(.invalidEventID, 48, "a nonzero event id", "zero") }
        var o = RecordFormat.fixedHeaderSize
        var dictionary: UInt32 = 0
        if flags & RecordFormat.flagDictionary != 0 {
            dictionary = bytes.le(o, UInt32.self)
            guard compressed else { throw fail(.invalidDictionary, 5, "a dictionary only with zstd (flag bit 0)", "flags 0x\(String(flags, radix: 16))") }
            guard dictionary != 0 else { throw fail(.invalidDictionary, o, "a nonzero dictionary id", "0") }
            o += 4
        }
        var causation = ID128.zero
        if flags & RecordFormat.flagCausation != 0 {
            causation = ID128(bytes: UnsafeRawBufferPointer(rebasing: bytes[o..<(o + 16)]))
            guard !causation.isZero else { throw fail(.invalidCausation, o, "a nonzero causation id (flag bit 2 set)", "zero") }
            o += 16
        }
        var keyID: UInt32 = 0
        if encrypted {
            keyID = bytes.le(o, UInt32.self)
            guard keyID != 0 else { throw fail(.invalidKeyID, o, "a nonzero key id (flag bit 3 set)", "0") }
            o += 4
        }
        let storedCRC = bytes.le(total - 4, UInt32.self)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<(total - 4)]))
        guard storedCRC == computed else {
            throw fail(.checksumMismatch, total - 4, "crc32c \(hex32(computed)) (computed)", "\(hex32(storedCRC)) (stored)")
        }
        return RecordHeader(
            flags: flags, eventType: type, storedLength: stored, uncompressedLength: uncompressed, keyID: keyID,
            dictionaryID: dictionary, eventTime: bytes.le(16, Int64.self), revision: bytes.le(24, UInt64.self),
            streamID: ID128(bytes: UnsafeRawBufferPointer(rebasing: bytes[32..<48])), eventID: eventID, causationID: causation)
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
