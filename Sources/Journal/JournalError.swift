import LMDB

/// Everything the journal can fail with. Messages name positions, ids, lengths and expected vs found
/// values; they never contain payload contents.
public enum JournalError: Error, CustomStringConvertible, Sendable {
    /// A caller-supplied value was rejected before anything was written.
    case invalidArgument(String)
    /// The stream's revision is not what the append expected. `actual` is nil when the stream has no events.
    case wrongExpectedRevision(stream: String, expected: ExpectedRevision, actual: UInt64?)
    /// The event id is already in the journal with different content.
    case eventIDConflict(eventID: EventID, position: Position, differs: String)
    /// Some events of a request already exist and some do not: a retry must resend the same request.
    case partialDuplicate(eventID: EventID, position: Position)
    /// A stored record failed validation.
    case corruptRecord(RecordError)
    /// An index disagrees with the records (or a record is missing).
    case corruptIndex(position: Position?, String)
    /// A payload could not be decompressed or a dictionary is missing.
    case payload(position: Position, String)
    /// LMDB returned an error.
    case storage(LMDBError)
    /// Another journal backend (PostgreSQL) failed or could not be reached; the outcome of a write that
    /// failed this way is unknown, and a retry with the same event ids is safe.
    case backend(String)
    /// A commit failed with an I/O error; the handle refuses further writes and must be reopened.
    case mustReopen(String)
    case closed
    /// The payload is encrypted with a data key that does not exist (destroyed by an erasure, or missing).
    case keyUnavailable(position: Position, stream: ID128, keyID: UInt32)

    public var description: String {
        switch self {
        case .invalidArgument(let m): return "invalid argument: \(m)"
        case .wrongExpectedRevision(let s, let e, let a):
            return "wrong expected revision on stream \(s): expected \(e), found \(a.map { "revision \($0)" } ?? "no stream")"
        case .eventIDConflict(let id, let p, let d):
            return "event id \(id) already exists at position \(p) with different content (\(d))"
        case .partialDuplicate(let id, let p):
            return "event id \(id) already exists at position \(p) but other events of the same request do not; resend the original request unchanged"
        case .corruptRecord(let e): return "corrupt record: \(e)"
        case .corruptIndex(let p, let m): return "corrupt index\(p.map { " at position \($0)" } ?? ""): \(m)"
        case .payload(let p, let m): return "payload of position \(p): \(m)"
        case .storage(let e): return "storage error: \(e)"
        case .backend(let m): return "journal backend error: \(m)"
        case .mustReopen(let m): return "the journal must be closed and reopened after a failed commit: \(m)"
        case .closed: return "the journal is closed"
        case .keyUnavailable(let p, let s, let k):
            return "payload of position \(p) is encrypted with data key \(k) of stream \(s), which does not exist (destroyed by an erasure, or missing from datakeys/)"
        }
    }
}
