import ArgumentParser
import Foundation
import Inference
import Journal
import Workloads

/// The README's main job for now: the journal end to end on an embedded store. The memory engine's
/// demo (ingest, consolidation, recall with provenance) replaces it as issues 5-7 land.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Journal demo: append a generated multi-session conversation to a store, read it back, verify it.",
        discussion: """
            Creates (or reuses) the store, appends --sessions sessions of observations for three users
            with exact expected revisions, retries one append to show exactly-once by event id, prints
            the journal statistics and the newest events, and runs verify.

            Example:
              psm demo --store ./psm-store
            """)
    @OptionGroup var store: StoreOptions
    @Option(help: "Sessions to generate (1...1000).") var sessions: Int = 20
    @Option(help: "Seed of the generated conversation.") var seed: UInt64 = 7
    @Option(help: ArgumentHelp("Encoder model file (default: $PSM_MODEL, else imported from $PSM_MINILM_DIR into the store).", valueName: "FILE"))
    var model: String?

    func validate() throws {
        guard (1...1000).contains(sessions) else { throw ValidationError("--sessions must be 1...1000, got \(sessions)") }
    }

    func run() throws {
        try guarded {
            let journal = try Journal(directory: store.journalPath)
            defer { journal.close() }
            let users = try ["maya", "jonas", "priya"].map { try StreamName(tenant: "demo", name: "user-\($0)/observations") }
            var gen = SampleConversation(seed: seed)
            var rng = SplitMix64(seed: seed)
            let before = try journal.stats().events
            var time: Int64 = 1_767_225_600_000_000 + Int64(before) * 60_000_000
            var appended = 0
            var lastRequest: AppendRequest?
            for s in 0..<sessions {
                let user = users[s % users.count]
                let info = try journal.streamInfo(user.id)
                var events: [EventData] = []
                for turn in 0..<Int(4 + rng.next() % 6) {
                    time += Int64(30 + rng.next() % 600) * 1_000_000
                    var w = PayloadWriter()
                    w.string(1, "session-\(before)-\(s)")
                    w.string(2, turn % 2 == 0 ? user.name.split(separator: "-")[1].split(separator: "/")[0].capitalized : "assistant")
                    w.string(3, gen.observation(targetBytes: Int(80 + rng.next() % 300)))
                    events.append(EventData(id: .timeOrdered(timeMicros: time, entropy: (rng.next(), rng.next())), type: 0xFF01, time: time, payload: w.bytes))
                }
                let request = AppendRequest(stream: user, expected: info.map { .exact($0.nextRevision - 1) } ?? .noStream, events: events)
                let result = try journal.appendBlocking([request])[0]
                appended += result.positions.count
                lastRequest = request
            }
            print("appended \(appended) observations in \(sessions) sessions for \(users.count) users to \(store.storePath)")
            if let lastRequest {
                let retry = try journal.appendBlocking([lastRequest])[0]
                print("retried the last append with the same event ids: \(retry.wasDuplicate ? "recognised, original positions \(retry.positions.first!)...\(retry.positions.last!) returned, nothing written" : "NOT recognised")")
            }
            let stats = try journal.stats()
            print("journal: \(stats.events) events, \(stats.streams) streams, \(stats.usedBytes / max(1, stats.events)) bytes/event on disk")
            print("newest events:")
            for e in try journal.read(from: UInt64.max, limit: 3, direction: .backward) {
                let fields = try PayloadReader.fields(try journal.payload(of: e))
                let text = (fields.first { $0.field == 3 }?.value.string).flatMap { $0 } ?? ""
                print("  #\(e.position) rev \(e.header.revision) \(isoTime(e.header.eventTime)) \(e.header.isCompressed ? "zstd" : "raw ") \(e.header.storedLength)/\(e.header.uncompressedLength) B: \(text.prefix(70))…")
            }
            let report = try journal.verify()
            if let p = report.problem {
                print("verify: FAILED: \(p)")
                throw ExitCode(1)
            }
            print("verify: ok — \(report.events) records, CRCs, indexes and \(report.streams) hash chains check out")
            try semanticSearch(journal)
        }
    }

    func encoderModel() throws -> ModelFile? { try store.encoderModel(model) }

    /// Brute-force semantic search over the journal's observations with the real encoder. The memory
    /// engine (projections, the PSM's recall weighting) replaces this as issues 5-7 land.
    func semanticSearch(_ journal: Journal) throws {
        guard let file = try encoderModel() else {
            print("semantic search skipped: no encoder (pass --model FILE, set PSM_MODEL, or run scripts/setup.sh for PSM_MINILM_DIR)")
            return
        }
        let encoder = try Encoder(model: file)
        var texts: [(Position, String)] = []
        try journal.scan { e in
            if e.header.eventType == 0xFF01,
                let t = (try PayloadReader.fields(try journal.payload(of: e)).first { $0.field == 3 }?.value.string).flatMap({ $0 }) {
                texts.append((e.position, t))
            }
            return true
        }
        // Split observations into sentences so each match is one statement.
        var units: [(Position, String)] = []
        for (p, t) in texts {
            for s in t.split(separator: ".", omittingEmptySubsequences: true) where s.trimmingCharacters(in: .whitespaces).count > 3 {
                units.append((p, s.trimmingCharacters(in: .whitespaces)))
            }
        }
        let start = Date()
        let vectors = stride(from: 0, to: units.count, by: 32).flatMap { encoder.embed(Array(units[$0..<min(units.count, $0 + 32)].map(\.1))) }
        print("embedded \(units.count) statements with \(file.config.source) (model \(file.id.prefix(12))…) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        for question in ["What is someone allergic to?", "Who adopted a pet?", "How much does the trip cost?"] {
            let q = encoder.embed([question])[0]
            let scored = vectors.enumerated().map { (i, v) in (i, zip(q, v).reduce(Float(0)) { $0 + $1.0 * $1.1 }) }.sorted { $0.1 > $1.1 }.prefix(3)
            print("Q: \(question)")
            for (i, score) in scored { print(String(format: "   %.3f  #%d  %@", score, units[i].0, String(units[i].1.prefix(90)))) }
        }
    }
}
