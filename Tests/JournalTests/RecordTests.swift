import Foundation
import Journal
import Testing

/// Golden v1 records in Fixtures/journal and one byte-surgery test per decoder error.
/// Regenerate the fixtures (only when the format changes on purpose) with
/// `PSM_REGENERATE_FIXTURES=1 swift test --filter RecordTests`.
@Suite struct RecordTests {
    static let goldenStream = try! StreamName(tenant: "acme", name: "user-42/memory")
    static let goldenText = "I moved to Lisbon in May."

    static var goldenHeader: RecordHeader {
        RecordHeader(
            flags: 0, eventType: 0xFF02, storedLength: 0, uncompressedLength: UInt32(goldenPayload.count), keyID: 0,
            dictionaryID: 0, eventTime: 1_767_225_600_000_000, revision: 0, streamID: goldenStream.id,
            eventID: ID128(hex: "019b7a00-0000-7000-8000-000000000001")!, causationID: .zero)
    }
    static var goldenPayload: [UInt8] { payload(text: goldenText, n: 1) }

    static var compressedPayload: [UInt8] {
        payload(text: String(repeating: "We talked about the trip to Kyoto again; she still prefers ramen to sushi. ", count: 6), n: 2)
    }

    func read(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: fixture("journal/\(name)")))) }

    @Test func regenerateIfAsked() throws {
        guard ProcessInfo.processInfo.environment["PSM_REGENERATE_FIXTURES"] == "1" else { return }
        let plain = RecordCodec.encode(Self.goldenHeader, storedPayload: Self.goldenPayload)
        try Data(plain).write(to: URL(fileURLWithPath: fixture("journal/v1-uncompressed.record")))
        let p = Self.compressedPayload
        let packed = try p.withUnsafeBytes { try Zstd.Compressor().compress($0) }
        var h = Self.goldenHeader
        h.flags = RecordFormat.flagZstd
        h.uncompressedLength = UInt32(p.count)
        h.revision = 1
        h.eventID = ID128(hex: "019b7a00-0000-7000-8000-000000000002")!
        h.causationID = Self.goldenHeader.eventID
        try Data(RecordCodec.encode(h, storedPayload: packed)).write(to: URL(fileURLWithPath: fixture("journal/v1-zstd.record")))
    }

    @Test func goldenUncompressedRecordIsByteExact() throws {
        let golden = try read("v1-uncompressed.record")
        let encoded = RecordCodec.encode(Self.goldenHeader, storedPayload: Self.goldenPayload)
        #expect(encoded == golden)
        var expected = Self.goldenHeader
        expected.storedLength = UInt32(Self.goldenPayload.count)
        #expect(try RecordCodec.decode(golden) == expected)
        #expect(Array(golden[RecordFormat.fixedHeaderSize..<(golden.count - 4)]) == Self.goldenPayload)
    }

    @Test func goldenCompressedRecordDecodes() throws {
        let golden = try read("v1-zstd.record")
        let h = try RecordCodec.decode(golden)
        #expect(h.isCompressed && h.dictionaryID == 0 && h.revision == 1)
        #expect(h.headerSize == RecordFormat.fixedHeaderSize + 16)
        #expect(h.causationID == Self.goldenHeader.eventID)
        let stored = Array(golden[h.headerSize..<(golden.count - 4)])
        let out = try stored.withUnsafeBytes { try Zstd.Decompressor().decompress($0, size: Int(h.uncompressedLength)) }
        #expect(out == Self.compressedPayload)
    }

    /// Changes bytes of the golden record and re-seals the CRC (unless told not to), so that the
    /// check under test — not the CRC — is what rejects it.
    func surgery(_ edit: (inout [UInt8]) -> Void, reseal: Bool = true) throws -> [UInt8] {
        var b = try read("v1-uncompressed.record")
        edit(&b)
        if reseal && b.count >= RecordFormat.minimumSize {
            let crc = CRC32C.checksum(Array(b.dropLast(4)))
            withUnsafeBytes(of: crc.littleEndian) { b.replaceSubrange((b.count - 4)..<b.count, with: $0) }
        }
        return b
    }

    func expectKind(_ bytes: [UInt8], _ kind: RecordError.Kind, offset: Int? = nil) {
        do {
            _ = try RecordCodec.decode(bytes, position: 9)
            Issue.record("decoded a record that should fail with \(kind)")
        } catch {
            #expect(error.kind == kind)
            #expect(error.position == 9)
            if let offset { #expect(error.offset == offset) }
            #expect(!error.description.contains(RecordTests.goldenText))
        }
    }

    @Test func badMagic() throws { expectKind(try surgery { $0[0] = 0x51 }, .badMagic, offset: 0) }
    @Test func badVersion() throws { expectKind(try surgery { $0[4] = 2 }, .unsupportedVersion, offset: 4) }
    @Test func zeroEventType() throws { expectKind(try surgery { $0[6] = 0; $0[7] = 0 }, .invalidEventType, offset: 6) }
    @Test func unknownFlag() throws { expectKind(try surgery { $0[5] = 0x10 }, .unknownFlags, offset: 5) }
    @Test func hugeLength() throws { expectKind(try surgery { $0[11] = 0x7F }, .lengthTooLarge, offset: 8) }
    @Test func lengthLongerThanRecord() throws { expectKind(try surgery { $0[8] &+= 1; $0[12] &+= 1 }, .truncated) }
    @Test func trailingBytes() throws { expectKind(try surgery({ $0.append(0) }, reseal: false), .lengthMismatch) }
    @Test func truncatedTail() throws { expectKind(try surgery({ $0.removeLast(2) }, reseal: false), .truncated) }
    @Test func truncatedHeader() throws { expectKind(try surgery({ $0.removeLast($0.count - 50) }, reseal: false), .truncated) }
    @Test func uncompressedLengthDisagrees() throws { expectKind(try surgery { $0[12] &+= 1 }, .lengthMismatch, offset: 12) }
    @Test func keyIDFlagWithoutRoomForNonceAndTag() throws {
        // Flag bit 3 announces a 4-byte key id; with it inserted, a stored payload shorter than nonce + tag is refused.
        expectKind(try surgery { $0[5] = 0x08; $0.insert(contentsOf: [1, 0, 0, 0], at: 64) }, .lengthMismatch)
    }
    @Test func zeroKeyID() throws {
        // A plausible encrypted header (stored = uncompressed + 28) with key id 0.
        expectKind(try surgery { r in
            r[5] = 0x08
            let n = Int(r[8]) | Int(r[9]) << 8
            r[8] = UInt8((n + 28) & 0xFF); r[9] = UInt8((n + 28) >> 8)
            r.insert(contentsOf: [0, 0, 0, 0], at: 64)
            r.insert(contentsOf: [UInt8](repeating: 7, count: 28), at: 68 + n)
        }, .invalidKeyID, offset: 64)
    }
    @Test func dictionaryWithoutZstd() throws {
        // Flag bit 1 announces 4 more header bytes: insert them so only the flag combination is wrong.
        expectKind(try surgery { $0[5] = 0x02; $0.insert(contentsOf: [1, 0, 0, 0], at: 64) }, .invalidDictionary, offset: 5)
    }
    @Test func zeroDictionaryID() throws {
        expectKind(try surgery { $0[5] = 0x03; $0.insert(contentsOf: [0, 0, 0, 0], at: 64); $0[12] = 0xFF }, .invalidDictionary, offset: 64)
    }
    @Test func zeroCausationWithFlag() throws {
        expectKind(try surgery { $0[5] = 0x04; $0.insert(contentsOf: [UInt8](repeating: 0, count: 16), at: 64) }, .invalidCausation, offset: 64)
    }
    @Test func optionalFieldAnnouncedButMissing() throws {
        // Causation flag set without its 16 bytes: the lengths no longer add up.
        expectKind(try surgery { $0[5] = 0x04 }, .truncated)
    }
    @Test func zeroEventID() throws { expectKind(try surgery { for i in 48..<64 { $0[i] = 0 } }, .invalidEventID, offset: 48) }
    @Test func payloadBitFlip() throws {
        expectKind(try surgery({ $0[RecordFormat.fixedHeaderSize + 3] ^= 0x10 }, reseal: false), .checksumMismatch)
    }
    @Test func headerBitFlipCaughtByCRC() throws {
        // Event time is not otherwise validated: only the CRC can catch a flip there.
        expectKind(try surgery({ $0[20] ^= 0x01 }, reseal: false), .checksumMismatch)
    }
    @Test func everySingleBitFlipIsDetected() throws {
        let golden = try read("v1-uncompressed.record")
        for bit in 0..<(golden.count * 8) {
            var b = golden
            b[bit / 8] ^= UInt8(1 << (bit % 8))
            #expect(throws: RecordError.self, "bit \(bit)") { try RecordCodec.decode(b) }
        }
    }
}
