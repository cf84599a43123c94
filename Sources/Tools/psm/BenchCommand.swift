import ArgumentParser
import Foundation
import Inference
import Journal
import LMDB
import Workloads

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks, each measured against a peer in the same run.",
        subcommands: [JournalBench.self, EncoderBench.self, ProjectionsBench.self, RecallBench.self, ClusterBench.self]
    )
}

struct JournalBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal",
        abstract: "Journal append, scan and size against plain liblmdb puts of the same payloads.",
        discussion: """
            Generates seeded ~300-byte conversational observations, then measures in one run: \
            durable appends with one commit per event, appends in batches of --batch events per commit \
            (in --rounds rounds that alternate with the raw LMDB puts, so machine noise hits both alike), \
            a full scan (records read, CRC-checked and copied), a scan that also decompresses payloads, \
            and bytes on disk per event — and the same figures for plain mdb_put / cursor reads of the \
            raw payloads through the same liblmdb at the same (default, full) durability. Also the size \
            of each event as JSON. Stores are made in a temporary directory and removed afterwards \
            unless --keep DIR is given.

            Example:
              psm bench journal --json
            """)

    @Option(help: "Events for the batched, scan and size measurements.") var events: Int = 50_000
    @Option(help: "Events for the one-commit-per-event measurements.") var durableEvents: Int = 500
    @Option(help: "Events per commit in the batched measurement.") var batch: Int = 1000
    @Option(help: "Rounds the batched measurement alternates psm and raw LMDB in (at most one per commit).") var rounds: Int = 5
    @Option(help: "Users (streams) the events are spread over.") var users: Int = 50
    @Option(help: "Workload seed.") var seed: UInt64 = 42
    @Option(help: ArgumentHelp("Keep the stores under DIR instead of a temporary directory.", valueName: "DIR")) var keep: String?
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: .hidden) var appendOnly = false
    @Option(help: "zstd level the journal compresses with.") var level: Int32 = Zstd.defaultLevel
    @Option(help: "Threads a batch is compressed on (default: the processor count minus one).") var compressionThreads: Int?
    @Option(help: ArgumentHelp("Take texts from FILE (one per line, joined to ~300 bytes) instead of the generator.", valueName: "FILE"))
    var texts: String?
    @Flag(name: .customLong("random-ids"), help: "Random (v4-style) event ids instead of time-ordered (v7-style) ones.") var randomIDs = false

    func validate() throws {
        guard events >= 1000, events <= 10_000_000 else { throw ValidationError("--events must be 1000...10000000, got \(events)") }
        guard durableEvents >= 10, durableEvents <= 100_000 else { throw ValidationError("--durable-events must be 10...100000, got \(durableEvents)") }
        guard batch >= 1, batch <= 100_000 else { throw ValidationError("--batch must be 1...100000, got \(batch)") }
        guard users >= 1, users <= 100_000 else { throw ValidationError("--users must be 1...100000, got \(users)") }
        if let t = compressionThreads, !(1...256).contains(t) { throw ValidationError("--compression-threads must be 1...256, got \(t)") }
        guard rounds >= 1, rounds <= 100 else { throw ValidationError("--rounds must be 1...100, got \(rounds)") }
    }

    struct Report: Encodable {
        var events: Int
        var durable_events: Int
        var batch: Int
        var payload_bytes_avg: Double
        var append_durable_per_s: Double
        var raw_lmdb_durable_per_s: Double
        var append_batched_per_s: Double
        var raw_lmdb_batched_per_s: Double
        var batched_ratio_vs_raw: Double
        /// raw LMDB time / psm time for each round of the batched measurement.
        var batched_ratio_rounds: [Double]
        var batched_ratio_median: Double
        var scan_per_s: Double
        var scan_decoded_per_s: Double
        var raw_lmdb_scan_per_s: Double
        var bytes_per_event: Double
        var bytes_per_event_no_dictionary: Double
        var raw_lmdb_bytes_per_event: Double
        var json_bytes_per_event: Double
        var bytes_ratio_vs_json: Double
        var dictionary_bytes: Int
        var dictionary_train_seconds: Double
        var zstd_version: String
        var targets: [String: Bool]
        /// Nanoseconds per event of each step of an append, measured alone on the same payloads.
        var cost_ns: [String: Double]
    }

    /// Times each per-event step of an append in isolation, to show where an append's time goes.
    func componentCosts(_ payloads: [[UInt8]], dictionary: [UInt8]) throws -> [String: Double] {
        let sample = Array(payloads.prefix(20_000))
        let n = Double(sample.count)
        var out: [String: Double] = [:]
        var t = now()
        for p in sample { try PayloadReader.validate(p) }
        out["validate_payload"] = (now() - t) / n * 1e9
        let c = try Zstd.Compressor(level: level, dictionary: dictionary)
        var packed: [[UInt8]] = []
        packed.reserveCapacity(sample.count)
        t = now()
        for p in sample { packed.append(try p.withUnsafeBytes { try c.compress($0) }) }
        out["zstd_compress_dictionary"] = (now() - t) / n * 1e9
        var records: [[UInt8]] = []
        records.reserveCapacity(sample.count)
        t = now()
        for (i, p) in packed.enumerated() {
            let h = RecordHeader(flags: RecordFormat.flagZstd, eventType: 0xFF01, storedLength: 0, uncompressedLength: UInt32(sample[i].count),
                keyID: 0, dictionaryID: 1, eventTime: Int64(i), revision: UInt64(i), streamID: ID128(high: 1, low: 2), eventID: ID128(high: 3, low: UInt64(i + 1)), causationID: .zero)
            records.append(RecordCodec.encode(h, storedPayload: p))
        }
        out["encode_record_with_crc32c"] = (now() - t) / n * 1e9
        t = now()
        var head = [UInt8](repeating: 0, count: 32)
        for r in records { head = Journal.chain(head, r) }
        out["sha256_chain"] = (now() - t) / n * 1e9
        t = now()
        for r in records { _ = try RecordCodec.decode(r) }
        out["decode_record_with_crc32c"] = (now() - t) / n * 1e9
        let d = try Zstd.Decompressor(dictionary: dictionary)
        t = now()
        for (i, p) in packed.enumerated() { _ = try p.withUnsafeBytes { try d.decompress($0, size: sample[i].count) } }
        out["zstd_decompress_dictionary"] = (now() - t) / n * 1e9
        return out.mapValues { ($0 * 10).rounded() / 10 }
    }

    struct Sample {
        var stream: StreamName
        var event: EventData
        var session: String
        var speaker: String
        var text: String
    }

    func run() throws {
        try guarded {
            let root = keep ?? (NSTemporaryDirectory() + "psm-bench-\(getpid())")
            try? FileManager.default.removeItem(atPath: root)
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            defer { if keep == nil { try? FileManager.default.removeItem(atPath: root) } }

            let samples = try makeSamples(count: events + durableEvents)
            let durableSamples = Array(samples[events...])
            let main = Array(samples[..<events])
            let payloads = main.map(\.event.payload)
            let log = { (s: String) in if !json { FileHandle.standardError.write(Data((s + "\n").utf8)) } }

            // 1. One durable commit per event.
            log("durable appends (\(durableEvents), one commit each)…")
            let durableJournal = try Journal(directory: root + "/durable/journal")
            let t0 = now()
            for s in durableSamples { _ = try durableJournal.appendBlocking([AppendRequest(stream: s.stream, events: [s.event])]) }
            let durableRate = Double(durableEvents) / (now() - t0)
            durableJournal.close()

            let rawDurable = try RawLMDB(path: root + "/raw-durable")
            let t1 = now()
            for (i, s) in durableSamples.enumerated() { try rawDurable.put(batch: [(UInt64(i + 1), s.event.payload)]) }
            let rawDurableRate = Double(durableEvents) / (now() - t1)
            rawDurable.close()

            // 2. Batched appends, with a dictionary trained on the first batch (as a deployment would).
            log("batched appends (\(events) in commits of \(batch))…")
            var journalOptions = Journal.Options()
            journalOptions.compressionLevel = level
            if let compressionThreads { journalOptions.compressionThreads = compressionThreads }
            let journal = try Journal(directory: root + "/batched/journal", options: journalOptions)
            let tt = now()
            let dict = try journal.trainDictionary(samples: Array(payloads.prefix(min(2000, payloads.count))))
            let trainSeconds = now() - tt
            let dictBytes = try journal.dictionaryBytes(dict).count
            let requests = stride(from: 0, to: main.count, by: batch).map { start in
                groupByStream(Array(main[start..<min(main.count, start + batch)]))
            }
            // psm and raw LMDB take turns, round by round, on the same commits of --batch events (the
            // order alternating between rounds), so a busy neighbour on the machine slows both alike.
            let raw = try RawLMDB(path: root + "/raw-batched")
            var psmSeconds = 0.0, rawSeconds = 0.0
            var roundRatios: [Double] = []
            let perRound = (requests.count + rounds - 1) / rounds
            var rawPosition: UInt64 = 1
            for r in 0..<rounds {
                let first = r * perRound, end = min(requests.count, first + perRound)
                guard first < end else { break }
                let roundPayloads = payloads[(first * batch)..<min(payloads.count, end * batch)]
                func runPSM() throws -> Double {
                    let t = now()
                    try appendPipelined(journal, Array(requests[first..<end]))
                    return now() - t
                }
                func runRaw() throws -> Double {
                    let t = now()
                    for start in stride(from: roundPayloads.startIndex, to: roundPayloads.endIndex, by: batch) {
                        let chunk = roundPayloads[start..<min(roundPayloads.endIndex, start + batch)].map { p -> (UInt64, [UInt8]) in
                            defer { rawPosition += 1 }
                            return (rawPosition, p)
                        }
                        try raw.put(batch: chunk)
                    }
                    return now() - t
                }
                var ps = 0.0, rs = 0.0
                if r % 2 == 0 {
                    ps = try runPSM()
                    rs = try runRaw()
                } else {
                    rs = try runRaw()
                    ps = try runPSM()
                }
                psmSeconds += ps
                rawSeconds += rs
                roundRatios.append(rs / ps)
            }
            let batchedRate = Double(events) / psmSeconds
            let rawBatchedRate = Double(events) / rawSeconds
            if appendOnly { print("append_batched_per_s \(batchedRate.rounded()) raw \(rawBatchedRate.rounded())"); return }
            let costs = try componentCosts(payloads, dictionary: try journal.dictionaryBytes(dict))

            // 3. Scans.
            log("scans…")
            var seen = 0
            let t4 = now()
            try journal.scan { _ in seen += 1; return true }
            let scanRate = Double(seen) / (now() - t4)
            guard seen == events else { throw CLIError.data("scan saw \(seen) events, expected \(events)") }
            var decodedBytes = 0
            let t5 = now()
            try journal.scan { e in decodedBytes += try journal.payload(of: e).count; return true }
            let scanDecodedRate = Double(events) / (now() - t5)
            let t6 = now()
            let rawSeen = try raw.scan()
            let rawScanRate = Double(rawSeen) / (now() - t6)

            // 4. Sizes.
            let stats = try journal.stats()
            let bytesPerEvent = Double(stats.usedBytes) / Double(events)
            journal.close()
            let rawBytes = Double(try raw.usedBytes()) / Double(events)
            raw.close()
            let undict = try Journal(directory: root + "/no-dictionary/journal")
            for r in requests { _ = try undict.appendBlocking(r) }
            let undictBytes = Double(try undict.stats().usedBytes) / Double(events)
            undict.close()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var jsonBytes = 0
            for (i, s) in main.enumerated() { jsonBytes += try encoder.encode(JSONEvent(s, position: UInt64(i + 1))).count }
            let jsonPerEvent = Double(jsonBytes) / Double(events)

            let report = Report(
                events: events, durable_events: durableEvents, batch: batch,
                payload_bytes_avg: Double(payloads.reduce(0) { $0 + $1.count }) / Double(events),
                append_durable_per_s: durableRate.rounded(), raw_lmdb_durable_per_s: rawDurableRate.rounded(),
                append_batched_per_s: batchedRate.rounded(), raw_lmdb_batched_per_s: rawBatchedRate.rounded(),
                batched_ratio_vs_raw: round3(batchedRate / rawBatchedRate),
                batched_ratio_rounds: roundRatios.map(round3), batched_ratio_median: round3(roundRatios.sorted()[roundRatios.count / 2]),
                scan_per_s: scanRate.rounded(), scan_decoded_per_s: scanDecodedRate.rounded(), raw_lmdb_scan_per_s: rawScanRate.rounded(),
                bytes_per_event: round3(bytesPerEvent), bytes_per_event_no_dictionary: round3(undictBytes),
                raw_lmdb_bytes_per_event: round3(rawBytes), json_bytes_per_event: round3(jsonPerEvent),
                bytes_ratio_vs_json: round3(bytesPerEvent / jsonPerEvent), dictionary_bytes: dictBytes,
                dictionary_train_seconds: round3(trainSeconds), zstd_version: Zstd.libraryVersion,
                targets: [
                    "batched_append_at_least_0.5x_raw": batchedRate >= 0.5 * rawBatchedRate,
                    "scan_at_least_1M_per_s": scanRate >= 1_000_000,
                    "bytes_at_most_0.6x_json": bytesPerEvent <= 0.6 * jsonPerEvent,
                ], cost_ns: costs)
            if json { try printJSON(report); return }
            func row(_ name: String, _ ours: Double, _ peer: Double, _ unit: String) {
                print(
                    name.padding(toLength: 34, withPad: " ", startingAt: 0) + String(format: "%14.0f %14.0f  %6.2fx  %@", ours, peer, ours / peer, unit))
            }
            print("measure".padding(toLength: 34, withPad: " ", startingAt: 0) + "          psm       raw lmdb   ratio")
            row("append, 1 durable commit/event", durableRate, rawDurableRate, "events/s")
            row("append, \(batch)/commit", batchedRate, rawBatchedRate, "events/s")
            row("scan (CRC-checked, copied)", scanRate, rawScanRate, "events/s")
            row("scan + decompress", scanDecodedRate, rawScanRate, "events/s")
            row("bytes on disk per event", bytesPerEvent, rawBytes, "bytes")
            print(String(format: "JSON per event %.1f bytes; psm/JSON = %.3f (no dictionary: %.1f bytes/event)", jsonPerEvent, bytesPerEvent / jsonPerEvent, undictBytes))
            for (k, v) in report.targets.sorted(by: { $0.key < $1.key }) { print("target \(k): \(v ? "met" : "NOT met")") }
            print("per-event cost of each append step alone (ns): " + report.cost_ns.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
    }


    /// Keeps up to two batches in flight: the caller prepares (validates, compresses) the next batch
    /// while the writer thread commits the previous one.
    func appendPipelined(_ journal: Journal, _ batches: [[AppendRequest]]) throws {
        let slots = DispatchSemaphore(value: 2)
        let failure = ResultSlot()
        let group = DispatchGroup()
        for r in batches {
            slots.wait()
            group.enter()
            journal.append(r) { result in
                if case .failure(let e) = result { failure.set(e) }
                slots.signal()
                group.leave()
            }
        }
        group.wait()
        if let e = failure.get() { throw e }
    }

    func groupByStream(_ samples: [Sample]) -> [AppendRequest] {
        var order: [StreamName] = []
        var byStream: [StreamName: [EventData]] = [:]
        for s in samples {
            if byStream[s.stream] == nil { order.append(s.stream) }
            byStream[s.stream, default: []].append(s.event)
        }
        return order.map { AppendRequest(stream: $0, events: byStream[$0]!) }
    }

    func makeSamples(count: Int) throws -> [Sample] {
        var gen = SampleConversation(seed: seed)
        var lines: [String] = []
        if let texts {
            guard let content = try? String(contentsOfFile: texts, encoding: .utf8) else { throw CLIError.usage("cannot read --texts \(texts)") }
            lines = content.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            guard !lines.isEmpty else { throw CLIError.usage("--texts \(texts) has no lines") }
        }
        var lineIndex = 0
        func nextText() -> String {
            guard !lines.isEmpty else { return gen.observation() }
            var t = ""
            while t.utf8.count < 260 {
                t += (t.isEmpty ? "" : " ") + lines[lineIndex % lines.count]
                lineIndex += 1
            }
            return t
        }
        var rng = SplitMix64(seed: seed ^ 0xA5A5)
        let streams = try (0..<users).map { try StreamName(tenant: "bench", name: "user-\($0)/memory") }
        var time: Int64 = 1_767_225_600_000_000  // 2026-01-01T00:00:00Z
        return (0..<count).map { i in
            let user = Int(rng.next() % UInt64(users))
            let session = "session-\(i / 40)"
            let speaker = gen.speaker()
            let text = nextText()
            var w = PayloadWriter()
            w.string(1, session)
            w.string(2, speaker)
            w.string(3, text)
            time += Int64(rng.next() % 90_000_000)
            let id = randomIDs ? EventID(high: rng.next(), low: rng.next()) : EventID.timeOrdered(timeMicros: time, entropy: (rng.next(), rng.next()))
            return Sample(stream: streams[user], event: EventData(id: id, type: 0xFF01, time: time, payload: w.bytes), session: session, speaker: speaker, text: text)
        }
    }
}

/// The same event as a JSON document, for the size comparison.
struct JSONEvent: Encodable {
    var position: UInt64
    var stream: String
    var revision: UInt64 = 0
    var type: String = "observation"
    var event_id: String
    var event_time: String
    var causation_id: String? = nil
    var payload: Payload
    struct Payload: Encodable { var session: String; var speaker: String; var text: String }
    init(_ s: JournalBench.Sample, position: UInt64) {
        self.position = position
        stream = s.stream.description
        event_id = s.event.id.uuidString
        event_time = isoTime(s.event.time)
        payload = Payload(session: s.session, speaker: s.speaker, text: s.text)
    }
}

/// Plain liblmdb: payloads under big-endian positions, MDB_APPEND, default (full) sync.
final class RawLMDB {
    let env: Environment
    let db: Database
    init(path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        var o = Environment.Options()
        o.mapSize = 1 << 30
        env = try Environment(path: path, options: o)
        db = try env.openDatabase("raw")
    }
    func put(batch: [(UInt64, [UInt8])]) throws {
        try env.write { txn in
            for (k, v) in batch { try txn.put(db, bigEndianBytes(k), v, .append) }
        }
    }
    func scan() throws -> Int {
        try env.read { txn in
            try txn.withCursor(db) { c in
                var n = 0
                var total = 0
                var e = try c.first()
                while let (_, v) = e {
                    total &+= Array(v).count
                    n += 1
                    e = try c.next()
                }
                return n + (total < 0 ? 1 : 0)
            }
        }
    }
    func usedBytes() throws -> Int { let i = try env.info(); return i.usedPages * i.pageSize }
    func close() { env.close() }
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
func round3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
/// The value at fraction `p` of the sorted samples (nearest rank); `xs` must not be empty.
func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted()
    return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
}

final class ResultSlot: @unchecked Sendable {
    private let lock = NSLock()
    private var error: (any Error)?
    func set(_ e: any Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }
    func get() -> (any Error)? { lock.lock(); defer { lock.unlock() }; return error }
}
