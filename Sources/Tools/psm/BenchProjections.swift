import ArgumentParser
import Foundation
import Journal
import Projections
import Workloads

struct ProjectionsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projections",
        abstract: "Projection rebuild rate, recall-candidate latency at 10k and 100k memories, bytes per memory.",
        discussion: """
            Writes a seeded journal with two users: one with --small memories, one with --memories \
            (each memory = an observation of ~120 bytes plus its gate decision carrying a 384-dimension \
            int8 vector). Then measures, in one run:
              - rebuild: folding the whole journal from empty into a new projection store (events/s),
                next to a plain journal scan that decompresses every payload (the peer: what reading
                the same events costs without folding them);
              - candidate generation (BM25 + brute-force dense + fusion + reading the candidates'
                records; query encoding excluded) for --queries queries per user, p50 and p99;
              - projection store bytes per memory.
            Stores live in a temporary directory, removed afterwards unless --keep DIR is given.

            Example:
              psm bench projections --json
            """)

    @Option(help: "Memories of the large user (1000...1000000).") var memories: Int = 100_000
    @Option(help: "Memories of the small user (100...1000000).") var small: Int = 10_000
    @Option(help: "Queries per user for the latency percentiles (10...100000).") var queries: Int = 300
    @Option(help: "Vector dimension (8...4096).") var dimension: Int = 384
    @Option(help: "Workload seed.") var seed: UInt64 = 42
    @Flag(help: "Gate decisions read turns in context, as recipe-5 models do: each names the previous turn of its session and indexes the date with it.")
    var contextual = false
    @Option(help: ArgumentHelp("Keep the store under DIR instead of a temporary directory.", valueName: "DIR")) var keep: String?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (1000...1_000_000).contains(memories) else { throw ValidationError("--memories must be 1000...1000000, got \(memories)") }
        guard (100...1_000_000).contains(small) else { throw ValidationError("--small must be 100...1000000, got \(small)") }
        guard (10...100_000).contains(queries) else { throw ValidationError("--queries must be 10...100000, got \(queries)") }
        guard (8...4096).contains(dimension) else { throw ValidationError("--dimension must be 8...4096, got \(dimension)") }
    }

    struct Report: Encodable {
        var memories_large: Int
        var memories_small: Int
        var journal_events: Int
        var dimension: Int
        var contextual: Bool
        var rebuild_events_per_s: Double
        var rebuild_seconds: Double
        var journal_scan_events_per_s: Double
        var rebuild_vs_scan: Double
        var candidates_p50_ms_10k: Double
        var candidates_p99_ms_10k: Double
        var candidates_p50_ms_100k: Double
        var candidates_p99_ms_100k: Double
        var index_load_ms_100k: Double
        var store_bytes: Int
        var store_bytes_per_memory: Double
        var journal_bytes_per_event: Double
    }

    func run() throws {
        try guarded {
            let base = keep ?? NSTemporaryDirectory() + "psm-bench-projections-\(getpid())"
            if keep == nil { try? FileManager.default.removeItem(atPath: base) }
            defer { if keep == nil { try? FileManager.default.removeItem(atPath: base) } }
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
            let journal = try Journal(directory: base + "/journal")
            defer { journal.close() }
            let users = [try UserRef(tenant: "bench", user: "small"), try UserRef(tenant: "bench", user: "large")]
            let sizes = [small, memories]
            var rng = SplitMix64(seed: seed)
            var text = SampleConversation(seed: seed)
            var time: Int64 = 1_767_225_600_000_000
            let progress = Progress(label: "writing journal", total: UInt64(sizes.reduce(0, +)), enabled: !json)
            var written: UInt64 = 0
            for (user, n) in zip(users, sizes) {
                var i = 0
                var previous = EventID.zero
                while i < n {
                    var events: [EventData] = []
                    for _ in 0..<min(500, n - i) {
                        time += 1_000_000
                        let obs = ID128.timeOrdered(timeMicros: time, entropy: (rng.next(), rng.next()))
                        let o = MemoryEvent.observation(.init(text: text.observation(targetBytes: 120), session: "s\(i / 20)", speaker: text.speaker()))
                        let v = QuantizedVector(normalizing: (0..<dimension).map { _ in Float(Int64(rng.next() % 2001) - 1000) / 1000 })
                        let g = MemoryEvent.gated(
                            .init(
                                decision: .baseline, observation: obs, kept: true, memory: ID128.derived(domain: "psm.memory.v1", obs.bytes), tier: .episodic,
                                type: .event, strength: Fixed(0.6), stability: 30 * 86_400, vector: v,
                                context: contextual && i % 20 != 0 ? previous : .zero, dated: contextual))
                        previous = obs
                        events.append(EventData(id: obs, type: o.type.rawValue, time: time, payload: o.payload()))
                        events.append(EventData(id: ID128.derived(domain: "psm.decision.v1", obs.bytes), type: g.type.rawValue, time: time, causation: obs, payload: g.payload()))
                        i += 1
                    }
                    _ = try journal.appendBlocking([AppendRequest(stream: user.stream, events: events)])
                    written += UInt64(events.count / 2)
                    progress.update(written)
                }
            }
            progress.finish()
            let jstats = try journal.stats()

            // Peer: reading and decompressing every event without folding.
            var scanned = 0
            let scanStart = Date()
            try journal.scan { e in
                scanned += try journal.payload(of: e).isEmpty ? 0 : 1
                return true
            }
            let scanSecs = Date().timeIntervalSince(scanStart)

            let dir = base + "/projections"
            let rebuildStart = Date()
            let bar = Progress(label: "rebuild", total: jstats.lastPosition, enabled: !json)
            let report = try ProjectionStore.rebuild(journal: journal, directory: dir) { done, _ in bar.update(done) }
            bar.finish()
            let rebuildSecs = Date().timeIntervalSince(rebuildStart)
            guard report.anomalies == 0 else { throw CLIError.checkFailed("rebuild reported \(report.anomalies) anomalies") }

            let store = try ProjectionStore(directory: dir)
            defer { store.close() }
            var latencies: [[Double]] = [[], []]
            var loadMs = 0.0
            for (ui, user) in users.enumerated() {
                let loadStart = Date()
                _ = try store.candidates(user, CandidateQuery(text: "warm up", vector: nil, at: time))
                if ui == 1 { loadMs = Date().timeIntervalSince(loadStart) * 1000 }
                for _ in 0..<queries {
                    let q = CandidateQuery(
                        text: text.observation(targetBytes: 40),
                        vector: QuantizedVector(normalizing: (0..<dimension).map { _ in Float(Int64(rng.next() % 2001) - 1000) / 1000 }), at: time)
                    let start = DispatchTime.now().uptimeNanoseconds
                    let c = try store.candidates(user, q)
                    latencies[ui].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                    guard !c.isEmpty else { throw CLIError.checkFailed("a query returned no candidates") }
                }
            }
            let counts = try store.counts()
            let total = memories + small
            let r = Report(
                memories_large: memories, memories_small: small, journal_events: jstats.events, dimension: dimension, contextual: contextual,
                rebuild_events_per_s: Double(jstats.events) / rebuildSecs, rebuild_seconds: rebuildSecs,
                journal_scan_events_per_s: Double(scanned) / scanSecs, rebuild_vs_scan: (Double(jstats.events) / rebuildSecs) / (Double(scanned) / scanSecs),
                candidates_p50_ms_10k: percentile(latencies[0], 0.5), candidates_p99_ms_10k: percentile(latencies[0], 0.99),
                candidates_p50_ms_100k: percentile(latencies[1], 0.5), candidates_p99_ms_100k: percentile(latencies[1], 0.99), index_load_ms_100k: loadMs,
                store_bytes: counts.bytes, store_bytes_per_memory: Double(counts.bytes) / Double(total),
                journal_bytes_per_event: Double(jstats.usedBytes) / Double(jstats.events))
            if json { try printJSON(r); return }
            print("journal: \(jstats.events) events (\(small) + \(memories) memories, \(dimension)-d vectors), \(Int(r.journal_bytes_per_event)) bytes/event")
            print(String(format: "rebuild            %10.0f events/s  (%.2f s; plain scan %.0f events/s, ratio %.2f)", r.rebuild_events_per_s, rebuildSecs, r.journal_scan_events_per_s, r.rebuild_vs_scan))
            print(String(format: "candidates at %6dk  p50 %.2f ms  p99 %.2f ms", small / 1000, r.candidates_p50_ms_10k, r.candidates_p99_ms_10k))
            print(String(format: "candidates at %6dk  p50 %.2f ms  p99 %.2f ms  (index load %.0f ms, once)", memories / 1000, r.candidates_p50_ms_100k, r.candidates_p99_ms_100k, loadMs))
            print(String(format: "store              %d bytes, %.0f bytes/memory", counts.bytes, r.store_bytes_per_memory))
        }
    }
}
