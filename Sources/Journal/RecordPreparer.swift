import Crypto
import Foundation

/// Makes and reads v1 records for a journal backend other than the LMDB one (issue 9: PostgreSQL), so
/// every backend stores the same bytes and checks them the same way (SPEC.md §4, §15).
///
/// The steps are the LMDB journal's own: validate the payload (§4.3), compress it when that helps
/// (§4.4, without a dictionary: dictionaries live in one store), seal it with the stream's data key
/// when asked (§4.7), and encode the record once the stream's revision is known.
public final class RecordPreparer: @unchecked Sendable {
    private let codecs: CodecPool

    public init(compressionLevel: Int32 = 3) { codecs = CodecPool(level: compressionLevel) }

    /// An event's stored payload, ready to be given a revision.
    public struct Prepared: Sendable {
        let event: PreparedEvent
        public var data: EventData { event.data }
    }

    /// Validates, compresses and (with `key`) seals one event of `stream`.
    public func prepare(_ e: EventData, stream: ID128, key: (id: UInt32, key: SymmetricKey)?) throws(JournalError) -> Prepared {
        let at = "event \(e.id)"
        guard !e.id.isZero else { throw .invalidArgument("\(at): the event id must not be zero") }
        guard e.type != 0 else { throw .invalidArgument("\(at): event type 0 is invalid") }
        guard e.payload.count <= RecordFormat.maxPayloadSize else {
            throw .invalidArgument("\(at): payload of \(e.payload.count) bytes exceeds \(RecordFormat.maxPayloadSize)")
        }
        do { try PayloadReader.validate(e.payload) } catch { throw .invalidArgument("\(at): \(error)") }
        var prepared = try codecs.prepare(e)
        if let key {
            let ad = DataKeys.associatedData(stream: stream, event: e.id, type: e.type, time: e.time, keyID: key.id)
            do { prepared.stored = try DataKeys.sealPayload(prepared.stored, key: key.key, ad: ad)[...] } catch {
                throw .invalidArgument("\(at): cannot encrypt: \(error)")
            }
            prepared.keyID = key.id
        }
        return Prepared(event: prepared)
    }

    /// The record bytes of `p` as revision `revision` of `stream`.
    public func record(_ p: Prepared, revision: UInt64, stream: ID128) -> [UInt8] {
        let e = p.event
        let header = RecordHeader(
            flags: e.flags, eventType: e.data.type, storedLength: UInt32(e.stored.count),
            uncompressedLength: e.uncompressedLength ?? UInt32(e.data.payload.count), keyID: e.keyID, dictionaryID: e.dictionaryID,
            eventTime: e.data.time, revision: revision, streamID: stream, eventID: e.data.id, causationID: e.data.causation)
        return RecordCodec.encode(header, storedPayload: e.stored)
    }

    /// Decodes and checks a stored record (§4.1), naming `position` in any error.
    public func decode(_ record: [UInt8], position: Position) throws(JournalError) -> StoredEvent {
        do {
            let header = try RecordCodec.decode(record, position: position)
            return StoredEvent(position: position, header: header, record: record)
        } catch {
            throw .corruptRecord(error)
        }
    }

    /// The plain payload of `event`; `key` is the stream's data key `event.header.keyID` when the
    /// record is sealed (nil when it was destroyed: `keyUnavailable`).
    public func payload(of event: StoredEvent, key: SymmetricKey?) throws(JournalError) -> [UInt8] {
        let h = event.header
        var stored = event.storedPayload
        if h.keyID != 0 {
            guard let key else { throw .keyUnavailable(position: event.position, stream: h.streamID, keyID: h.keyID) }
            let ad = DataKeys.associatedData(stream: h.streamID, event: h.eventID, type: h.eventType, time: h.eventTime, keyID: h.keyID)
            do { stored = ArraySlice(try DataKeys.unseal(stored, key: key, ad: ad)) } catch {
                throw .payload(position: event.position, "decryption failed: the sealed payload or its record identity was altered")
            }
        }
        guard h.isCompressed else { return Array(stored) }
        guard h.dictionaryID == 0 else {
            throw .payload(position: event.position, "dictionary \(h.dictionaryID) is not available in this backend")
        }
        do {
            return try codecs.decompress(stored, size: Int(h.uncompressedLength), dictionaryID: 0, dictionary: nil)
        } catch {
            throw .payload(position: event.position, "\(error)")
        }
    }

    /// Why the stored `event` differs from `data` appended to `stream`, or nil when it is the same event
    /// (the check behind exactly-once retries, §6).
    public func difference(_ event: StoredEvent, _ data: EventData, stream: ID128, key: SymmetricKey?) throws(JournalError) -> String? {
        let h = event.header
        if h.streamID != stream { return "stream \(h.streamID) vs \(stream)" }
        if h.eventType != data.type { return "type \(h.eventType) vs \(data.type)" }
        if h.eventTime != data.time { return "event time \(h.eventTime) vs \(data.time)" }
        if h.causationID != data.causation { return "causation \(h.causationID) vs \(data.causation)" }
        let payload = try payload(of: event, key: key)
        if payload != data.payload { return "payload of \(payload.count) vs \(data.payload.count) bytes" }
        return nil
    }

    /// A new random data key (ChaCha20-Poly1305, 256 bits).
    public static func newDataKey() -> SymmetricKey { SymmetricKey(size: .bits256) }
}
