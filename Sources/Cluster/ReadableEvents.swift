import Crypto
import Journal
import JournalPostgres
import Projections

extension PostgresJournal {
    /// The events with their readable payloads and stream names, for a synchronous fold or replay.
    /// Data keys are looked up per call, never kept: an erasure on another node takes effect at once.
    /// A crypto-shredded event has no payload entry (``FetchedEvents``).
    public func readable(_ events: [StoredEvent]) async throws -> FetchedEvents {
        var keys: [String: SymmetricKey?] = [:]
        var out = FetchedEvents()
        out.events = events
        for e in events {
            let h = e.header
            if out.names[h.streamID] == nil, let info = try await stream(h.streamID) { out.names[h.streamID] = info.stream }
            var key: SymmetricKey?
            if h.keyID != 0 {
                let k = "\(h.streamID)/\(h.keyID)"
                if let cached = keys[k] {
                    key = cached
                } else {
                    key = try await self.key(h.streamID, h.keyID)
                    keys[k] = key
                }
                guard key != nil else { continue }  // crypto-shredded: the fold skips it
            }
            out.payloads[h.eventID] = try plainPayload(of: e, key: key)
        }
        return out
    }

    /// Up to `limit` events of `stream` from `revision`, readable.
    public func readableStream(_ stream: ID128, fromRevision revision: UInt64, limit: Int) async throws -> FetchedEvents {
        try await readable(try await readStream(stream, fromRevision: revision, limit: limit))
    }

    /// The whole of `stream` in revision order, readable, read in pages of 1,024.
    public func readableStream(_ stream: ID128) async throws -> FetchedEvents {
        var all = FetchedEvents()
        var from: UInt64 = 0
        while true {
            let fetched = try await readableStream(stream, fromRevision: from, limit: 1024)
            guard let last = fetched.events.last else { break }
            all.events += fetched.events
            all.payloads.merge(fetched.payloads) { a, _ in a }
            all.names.merge(fetched.names) { a, _ in a }
            from = last.header.revision + 1
            if fetched.events.count < 1024 { break }
        }
        return all
    }
}
