import Foundation
import Journal
import LMDB
import Testing

@Suite struct JournalAppendReadTests {
    @Test func appendThenReadInOrder() async throws {
        let dir = TempDir(); defer { dir.remove() }
        let j = try Journal(directory: dir.path)
        defer { j.close() }
        let a = stream("user-a"), b = stream("user-b")
        let r1 = try await j.append(AppendRequest(stream: a, expected: .noStream, events: [event(1), event(2)]))
        let r2 = try await j.append(AppendRequest(stream: b, expected: .noStream, events: [event(3)]))
        let r3 = try await j.append(AppendRequest(stream: a, expected: .exact(1), events: [event(4, text: String(repeating: "long text ", count: 40))]))
        #expect(r1.positions == [1, 2] && r1.firstRevision == 0 && !r1.wasDuplicate)
        #expect(r2.positions == [3])
        #expect(r3.positions == [4] && r3.firstRevision == 2)

        let all = try j.read(from: 1, limit: 10)
        #expect(all.map(\.position) == [1, 2, 3, 4])
        #expect(all.map(\.header.eventID) == [1, 2, 3, 4].map { event($0).id })
        #expect(try j.read(from: UInt64.max, limit: 2, direction: .backward).map(\.position) == [4, 3])
        #expect(try j.read(from: 2, limit: 10, direction: .backward).map(\.position) == [2, 1])
        #expect(try j.read(from: 3, limit: 1).map(\.position) == [3])

        let streamA = try j.read(stream: a.id, fromRevision: 0, limit: 10)
        #expect(streamA.map(\.position) == [1, 2, 4])
        #expect(streamA.map(\.header.revision) == [0, 1, 2])
        #expect(try j.read(stream: a.id, fromRevision: 1, limit: 10).map(\.position) == [2, 4])
        #expect(try j.read(stream: a.id, fromRevision: UInt64.max, limit: 2, direction: .backward).map(\.header.revision) == [2, 1])
        #expect(try j.read(stream: a.id, fromRevision: 1, limit: 5, direction: .backward).map(\.header.revision) == [1, 0])
        #expect(try j.read(stream: stream("nobody").id, fromRevision: 0, limit: 5).isEmpty)

        // Payloads come back exactly, compressed or not.
        #expect(all[3].header.isCompressed)
        #expect(try j.payload(of: all[3]) == event(4, text: String(repeating: "long text ", count: 40)).payload)
        #expect(try j.payload(of: all[0]) == event(1).payload)
        #expect(try j.event(id: event(3).id)?.position == 3)
        #expect(try j.event(id: EventID(high: 9, low: 9)) == nil)
        let info = try #require(try j.streamInfo(a.id))
        #expect(info.nextRevision == 3 && info.firstPosition == 1 && info.lastPosition == 4 && info.stream == a)
        #expect(try j.verify().ok)
    }

    @Test func expectedRevisionConflicts() async throws {
        let dir = TempDir(); defer { dir.remove() }
        let j = try Journal(directory: dir.path)
        defer { j.close() }
        let s = stream("user-a")
        await #expect(throws: JournalError.self) { try await j.append(AppendRequest(stream: s, expected: .exact(0), events: [event(1)])) }
        _ = try await j.append(AppendRequest(stream: s, expected: .noStream, events: [event(1)]))
        do {
            _ = try await j.append(AppendRequest(stream: s, expected: .noStream, events: [event(2)]))
            Issue.record("noStream on an existing stream must fail")
        } catch {
            guard case .wrongExpectedRevision(_, let expected, let actual) = error else { Issue.record("\(error)"); return }
            #expect(expected == .noStream && actual == 0)
        }
        await #expect(throws: JournalError.self) { try await j.append(AppendRequest(stream: s, expected: .exact(5), events: [event(2)])) }
        _ = try await j.append(AppendRequest(stream: s, expected: .exact(0), events: [event(2)]))
        _ = try await j.append(AppendRequest(stream: s, expected: .any, events: [event(3)]))
        #expect(try j.stats().events == 3)
        // A failed request leaves nothing behind: the conflicting ids are still free.
        #expect(try j.event(id: EventID(high: 0xABCD, low: 99)) == nil)
        #expect(try j.verify().ok)
    }

    @Test func exactlyOnceByEventID() async throws {
        let dir = TempDir(); defer { dir.remove() }
        let j = try Journal(directory: dir.path)
        defer { j.close() }
        let s = stream("user-a")
        let first = try await j.append(AppendRequest(stream: s, expected: .noStream, events: [event(1), event(2)]))
        // The same request again, even with its now-stale expected revision: the original result.
        let retry = try await j.append(AppendRequest(stream: s, expected: .noStream, events: [event(1), event(2)]))
        #expect(retry.positions == first.positions && retry.wasDuplicate && retry.firstRevision == 0)
        let retryAny = try await j.append(AppendRequest(stream: s, expected: .any, events: [event(1), event(2)]))
        #expect(retryAny.positions == [1, 2] && retryAny.wasDuplicate)
        // Same id, different bytes.
        var changed = event(2)
        changed.payload = payload(text: "something else", n: 2)
        do {
            _ = try await j.append(AppendRequest(stream: s, events: [event(1), changed]))
            Issue.record("same id with other content must fail")
        } catch {
            guard case .eventIDConflict(let id, let position, _) = error else { Issue.record("\(error)"); return }
            #expect(id == changed.id && position == 2)
        }
        // Same id on another stream is also a conflict.
        await #expect(throws: JournalError.self) { try await j.append(AppendRequest(stream: stream("user-b"), events: [event(1)])) }
        // Some ids known and some new.
        do {
            _ = try await j.append(AppendRequest(stream: s, events: [event(3), event(1)]))
            Issue.record("a partial duplicate must fail")
        } catch {
            guard case .partialDuplicate = error else { Issue.record("\(error)"); return }
        }
        #expect(try j.event(id: event(3).id) == nil, "the new event of a failed request must not be written")
        // Repeated id inside one append.
        await #expect(throws: JournalError.self) { try await j.append(AppendRequest(stream: s, events: [event(7), event(7)])) }
        #expect(try j.stats().events == 2)
        #expect(try j.verify().ok)
    }

    @Test func invalidArguments() async throws {
        let dir = TempDir(); defer { dir.remove() }
        let j = try Journal(directory: dir.path)
        defer { j.close() }
        let s = stream("u")
        var zeroID = event(1); zeroID.id = .zero
        var zeroType = event(1); zeroType.type = 0
        var badPayload = event(1); badPayload.payload = [0x10, 0x01, 0x08, 0x01]
        var huge = event(1); huge.payload = [UInt8](repeating: 0, count: RecordFormat.maxPayloadSize + 1)
        for e in [zeroID, zeroType, badPayload, huge] {
            await #expect(throws: JournalError.self) { try await j.append(AppendRequest(stream: s, events: [e])) }
        }
        await #expect(throws: JournalError.self) { try await j.append(AppendRequest(stream: s, events: [])) }
        #expect(throws: JournalError.self) { try StreamName(tenant: "", name: "x") }
        #expect(throws: JournalError.self) { try StreamName(tenant: "t", name: String(repeating: "x", count: 256)) }
        #expect(throws: JournalError.self) { try StreamName(tenant: "t\u{0}", name: "x") }
        #expect(try j.stats().events == 0)
    }

    /// Many concurrent callers are grouped into shared commits; one caller's conflict fails only that caller.
    @Test func concurrentAppendsGroupCommit() async throws {
        let dir = TempDir(); defer { dir.remove() }
        let j = try Journal(directory: dir.path)
        defer { j.close() }
        _ = try await j.append(AppendRequest(stream: stream("conflicted"), events: [event(100_000)]))
        let results = await withTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<200 {
                group.addTask {
                    let s = i % 10 == 0 ? stream("conflicted") : stream("user-\(i % 7)")
                    let expected: ExpectedRevision = i % 10 == 0 ? .exact(999) : .any
                    do {
                        _ = try await j.append(AppendRequest(stream: s, expected: expected, events: [event(UInt64(i) * 2), event(UInt64(i) * 2 + 1)]))
                        return (i, true)
                    } catch {
                        return (i, false)
                    }
                }
            }
            var out: [(Int, Bool)] = []
            for await r in group { out.append(r) }
            return out
        }
        for (i, ok) in results { #expect(ok == (i % 10 != 0), "caller \(i)") }
        #expect(try j.stats().events == 1 + 180 * 2)
        let report = try j.verify()
        #expect(report.ok && report.events == 361 && report.streams == 8)
        // Each caller's two events are adjacent and in order.
        for e in try j.read(from: 2, limit: 1000) where e.header.eventID.low % 2 == 0 {
            #expect(try j.event(id: EventID(high: 0xABCD, low: e.header.eventID.low + 1))?.position == e.position + 1)
        }
    }

    @Test func mapGrowsUnderSmallInitialMap() throws {
        let dir = TempDir(); defer { dir.remove() }
        var o = Journal.Options()
        o.initialMapSize = 256 << 10
        let j = try Journal(directory: dir.path, options: o)
        defer { j.close() }
        let s = stream("user-a")
        var rng = UInt64(1)
        for batch in 0..<40 {
            // Incompressible payloads of ~4 KB so the data really outgrows the map.
            let events = (0..<16).map { i -> EventData in
                let bytes = (0..<4000).map { _ -> UInt8 in rng = rng &* 6364136223846793005 &+ 1442695040888963407; return UInt8(truncatingIfNeeded: rng >> 56) }
                var w = PayloadWriter(); w.bytes(2, bytes)
                return EventData(id: EventID(high: 7, low: UInt64(batch * 16 + i + 1)), type: 5, time: 0, payload: w.bytes)
            }
            _ = try j.appendBlocking([AppendRequest(stream: s, events: events)])
        }
        let stats = try j.stats()
        #expect(stats.events == 640)
        #expect(stats.mapSize > 256 << 10)
        #expect(try j.verify().ok)
    }

    @Test func persistsAcrossReopenAndRefusesDoubleOpen() async throws {
        let dir = TempDir(); defer { dir.remove() }
        do {
            let j = try Journal(directory: dir.path)
            #expect(throws: EnvironmentOpenError.self) { try Journal(directory: dir.path) }
            _ = try await j.append(AppendRequest(stream: stream("a"), events: [event(1), event(2)]))
            j.close()
        }
        let j = try Journal(directory: dir.path)
        defer { j.close() }
        #expect(try j.read(from: 1, limit: 10).count == 2)
        let r = try await j.append(AppendRequest(stream: stream("a"), expected: .exact(1), events: [event(3)]))
        #expect(r.positions == [3])
        #expect(try j.verify().ok)
    }

    @Test func dictionaryCompressionSurvivesReopen() async throws {
        let dir = TempDir(); defer { dir.remove() }
        let texts = (0..<300).map { "Session \($0 % 9): I told Maya I'm training for a half marathon in \($0 % 12 + 1) weeks and I love ramen." }
        do {
            let j = try Journal(directory: dir.path)
            let id = try j.trainDictionary(samples: texts.map { Array($0.utf8) }, capacity: 4096)
            #expect(id == 1 && j.activeDictionaryID == 1)
            _ = try await j.append(AppendRequest(stream: stream("a"), events: texts.prefix(50).enumerated().map { event(UInt64($0.offset + 1), text: $0.element) }))
            j.close()
        }
        let j = try Journal(directory: dir.path)
        defer { j.close() }
        #expect(j.activeDictionaryID == 1)
        let events = try j.read(from: 1, limit: 100)
        #expect(events.count == 50)
        #expect(events.allSatisfy { $0.header.dictionaryID == 1 })
        for (i, e) in events.enumerated() { #expect(try j.payload(of: e) == event(UInt64(i + 1), text: texts[i]).payload) }
        #expect(try j.verify().ok)
    }

    @Test func scanPagesThroughEverything() throws {
        let dir = TempDir(); defer { dir.remove() }
        let j = try Journal(directory: dir.path)
        defer { j.close() }
        for b in 0..<10 {
            _ = try j.appendBlocking([AppendRequest(stream: stream("s\(b % 3)"), events: (0..<37).map { event(UInt64(b * 37 + $0 + 1)) })])
        }
        var positions: [Position] = []
        try j.scan(pageSize: 16) { positions.append($0.position); return true }
        #expect(positions == Array(1...370))
        var stopped = 0
        try j.scan(pageSize: 16) { _ in stopped += 1; return stopped < 20 }
        #expect(stopped == 20)
        let report = try j.verify(pageSize: 7)
        #expect(report.ok && report.events == 370 && report.streams == 3)
    }

    /// Appends requests of 1–7 events to 4 streams in a seeded order (some requests grouped in one
    /// append), so each stream's index holds runs of many lengths; returns every stored event.
    func interleavedJournal(_ j: Journal) throws -> [StoredEvent] {
        var x: UInt64 = 0x2545_F491_4F6C_DD1D
        func next(_ n: UInt64) -> UInt64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x % n }
        var id: UInt64 = 0
        for _ in 0..<40 {
            let requests = (0...next(2)).map { _ in
                AppendRequest(stream: stream("s\(next(4))"), events: (0...next(7)).map { _ in id += 1; return event(id) })
            }
            // Two requests for one stream in one append are fine: they become two runs.
            _ = try j.appendBlocking(requests)
        }
        var all: [StoredEvent] = []
        try j.scan { all.append($0); return true }
        return all
    }

    /// Reads by stream from every revision, both directions, several limits, equal a filter of the full
    /// scan: the run index (SPEC.md §3.5) answers exactly as one entry per event would.
    @Test func streamReadsAcrossRunsMatchAFullScan() throws {
        let dir = TempDir(); defer { dir.remove() }
        let j = try Journal(directory: dir.path)
        defer { j.close() }
        let all = try interleavedJournal(j)
        for s in 0..<5 {
            let sid = stream("s\(s)").id
            let mine = all.filter { $0.header.streamID == sid }
            #expect(mine.map(\.header.revision) == Array(0..<UInt64(mine.count)))
            for from in [0, 1, 2, 5, 9, 17, mine.count - 1, mine.count, mine.count + 3].filter({ $0 >= 0 }).map(UInt64.init) {
                for limit in [1, 3, 8, 1000] {
                    let forward = try j.read(stream: sid, fromRevision: from, limit: limit).map(\.position)
                    #expect(forward == Array(mine.filter { $0.header.revision >= from }.prefix(limit).map(\.position)), "s\(s) from \(from) limit \(limit)")
                    let backward = try j.read(stream: sid, fromRevision: from, limit: limit, direction: .backward).map(\.position)
                    #expect(backward == Array(mine.filter { $0.header.revision <= from }.reversed().prefix(limit).map(\.position)), "s\(s) back from \(from) limit \(limit)")
                }
            }
            #expect(try j.read(stream: sid, fromRevision: .max, limit: 2, direction: .backward).map(\.position) == Array(mine.reversed().prefix(2).map(\.position)))
        }
        #expect(try j.verify().ok)
    }

    /// A `psm-journal/1` store (one `stream_revisions` entry per event) is rewritten to runs when opened:
    /// reads answer the same, verify passes, the old database is gone and the marker is the new one.
    @Test func migratesAVersion1StreamIndex() throws {
        let dir = TempDir(); defer { dir.remove() }
        var before: [[Position]] = []
        var allBefore: [StoredEvent] = []
        do {
            let j = try Journal(directory: dir.path)
            allBefore = try interleavedJournal(j)
            for s in 0..<4 { before.append(try j.read(stream: stream("s\(s)").id, fromRevision: 0, limit: 1000).map(\.position)) }
            j.close()
        }
        do {
            // Rewrite the store into the version-1 layout, as an older psm left it.
            let env = try Environment(path: dir.path)
            defer { env.close() }
            let runs = try env.openDatabase("stream_runs", flags: [.dupSort, .dupFixed])
            let old = try env.openDatabase("stream_revisions", flags: [.create, .dupSort, .dupFixed])
            let meta = try env.openDatabase("meta", flags: [])
            try env.write { txn in
                for e in allBefore {
                    try txn.put(old, e.header.streamID.bytes, bigEndianBytes(e.header.revision) + bigEndianBytes(e.position), [.noDupData])
                }
                try txn.drop(runs)
                try txn.put(meta, Array("format".utf8), Array("psm-journal/1".utf8))
            }
        }
        let j = try Journal(directory: dir.path)
        defer { j.close() }
        for s in 0..<4 { #expect(try j.read(stream: stream("s\(s)").id, fromRevision: 0, limit: 1000).map(\.position) == before[s]) }
        let report = try j.verify()
        #expect(report.ok && report.events == allBefore.count, "\(String(describing: report.problem))")
        j.close()
        let env = try Environment(path: dir.path)
        defer { env.close() }
        try env.write { txn in
            #expect(try txn.openDatabaseIfPresent("stream_revisions") == nil)
            let meta = try #require(try txn.openDatabaseIfPresent("meta"))
            #expect(try txn.get(meta, Array("format".utf8)).map { String(decoding: $0, as: UTF8.self) } == Journal.formatMarker)
            let runs = try #require(try txn.openDatabaseIfPresent("stream_runs", flags: [.dupSort, .dupFixed]))
            // Fewer entries than events: consecutive revisions at consecutive positions became one run.
            #expect(try txn.count(runs) < allBefore.count)
        }
    }

    /// A format marker of another version is the caller's mismatch (invalid argument); a marker that is
    /// not one at all — a flipped bit, say — is reported as a damaged index (exit 65), and nothing is
    /// written to the store.
    @Test func unknownFormatMarkersAreClassified() throws {
        let dir = TempDir("psm-marker")
        defer { dir.remove() }
        do {
            let j = try Journal(directory: dir.path)
            _ = try interleavedJournal(j)
            j.close()
        }
        for (marker, expectCorrupt) in [("psm-hournal/2", true), ("psm-journal/9", false), ("psm-journal/x\u{1}", true)] {
            do {
                let env = try Environment(path: dir.path)
                defer { env.close() }
                let meta = try env.openDatabase("meta", flags: [])
                try env.write { txn in try txn.put(meta, Array("format".utf8), Array(marker.utf8)) }
            }
            do {
                _ = try Journal(directory: dir.path)
                Issue.record("opened a journal marked \(marker)")
            } catch let e as JournalError {
                switch e {
                case .corruptIndex(_, let m): #expect(expectCorrupt && m.contains("meta table is damaged"), "\(marker): \(m)")
                case .invalidArgument(let m): #expect(!expectCorrupt && m.contains("psm-journal/9 journal"), "\(marker): \(m)")
                default: Issue.record("\(marker): \(e)")
                }
            }
            let env = try Environment(path: dir.path)
            defer { env.close() }
            let meta = try env.openDatabase("meta", flags: [])
            let stored: [UInt8]? = try env.read { txn in try txn.get(meta, Array("format".utf8)).map { Array($0) } }
            #expect(stored == [UInt8](marker.utf8), "the marker was left as found")
        }
    }
}
