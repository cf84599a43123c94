import ArgumentParser
import Engine
import Foundation
import Journal
import Projections
import API

/// Whose memories a command reads: every memory read is scoped to one tenant and user.
struct UserOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Tenant (default: $PSM_TENANT, else \"default\").", valueName: "TENANT")) var tenant: String?
    @Option(help: ArgumentHelp("User id (1-200 bytes).", valueName: "USER")) var user: String

    func ref() throws -> UserRef {
        let t = tenant ?? ProcessInfo.processInfo.environment["PSM_TENANT"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        do { return try UserRef(tenant: t, user: user) } catch { throw CLIError.usage("--user \(user) / tenant \(t): \(error)") }
    }
}

/// `--as-of` and `--at`, shared by the reads that can look into the past.
struct TimeOptions: ParsableArguments {
    @Option(
        name: .customLong("as-of"),
        help: ArgumentHelp("Answer as of a journal position (an integer) or an event time (ISO 8601, e.g. 2026-03-01T12:00:00Z).", valueName: "POS|TIME"))
    var asOf: String?
    @Option(help: ArgumentHelp("Event time to compute strengths for (ISO 8601; default: the user's last event time).", valueName: "TIME"))
    var at: String?

    func parsedAsOf() throws -> AsOf? {
        guard let asOf else { return nil }
        if let p = UInt64(asOf) {
            guard p > 0 else { throw CLIError.usage("--as-of position must be at least 1, got 0") }
            return .position(p)
        }
        return .time(try parseTime(asOf, option: "--as-of"))
    }

    func parsedAt() throws -> Int64? { try at.map { try parseTime($0, option: "--at") } }
}

/// Parses ISO 8601 (with or without fractional seconds) into µs since the epoch.
func parseTime(_ s: String, option: String) throws -> Int64 {
    guard let t = WireTime.parse(s) else {
        throw CLIError.usage("\(option) \(s) is not an ISO 8601 time (e.g. 2026-03-01T12:00:00Z) or a position")
    }
    return t
}

func parseID(_ s: String, what: String = "memory id") throws -> ID128 {
    guard let id = WireTime.id(s) else { throw CLIError.usage("\(what) \(s) is not 32 hexadecimal digits") }
    return id
}

extension StoreOptions {
    /// Opens an existing store's engine (journal and projections, caught up); no encoder.
    func openEngine() throws -> Engine {
        guard FileManager.default.fileExists(atPath: journalPath + "/data.mdb") else {
            throw CLIError.usage("no store at \(storePath) (no journal/data.mdb); pass --store DIR or set PSM_STORE")
        }
        return try Engine(directory: storePath)
    }
}

func printMemory(_ v: MemoryView, indent: String = "") {
    let m = v.record
    print("\(indent)memory      \(m.id)  [\(m.tier), \(m.type)]")
    print("\(indent)text        \(m.text)")
    print(indent + String(format: "strength    %.4f at %@ (decays %.2f%%/day, stability %.1f days)", v.strength, isoTime(v.at), v.decayPerDay * 100, Double(m.stability) / 86_400))
    print(indent + String(format: "confidence  %.2f   emotional weight %.2f", m.confidence.value, m.emotionalWeight.value))
    print("\(indent)recalled    \(m.recallCount) times\(m.lastRecalled == 0 ? "" : ", last \(isoTime(m.lastRecalled))");  feedback: \(m.helped) helped, \(m.irrelevant) irrelevant, \(m.corrected) corrected")
    print("\(indent)valid       from \(isoTime(m.validFrom))\(m.validTo == 0 ? " (still valid)" : " to \(isoTime(m.validTo))")")
    if !m.supersededBy.isZero { print("\(indent)superseded  by \(m.supersededBy)") }
    if !m.supersedes.isZero { print("\(indent)supersedes  \(m.supersedes)") }
    if !m.consolidatedInto.isZero { print("\(indent)consolidated into \(m.consolidatedInto)") }
    if m.pruned { print("\(indent)pruned      at \(isoTime(m.archivedAt))") }
    if !m.flags.isEmpty { print("\(indent)flags       \(m.flags.joined(separator: ", "))") }
    print("\(indent)sources     \(m.sourceIDs.isEmpty ? "-" : m.sourceIDs.joined(separator: ", ")) (\(m.observations.count) observation\(m.observations.count == 1 ? "" : "s"))")
}

// MARK: - Commands

struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory", abstract: "Read one memory.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a memory: tier, text, strength now, decay, recall count, validity, provenance summary.",
            discussion: """
                Strength is computed for --at (default: the user's last event time), never the wall clock. \
                With --as-of the memory is shown as it was at that journal position or event time.

                Example:
                  psm memory show 0f3c…e1 --user alice --as-of 2026-03-01T00:00:00Z --json
                """)
        @OptionGroup var store: StoreOptions
        @OptionGroup var backend: JournalBackendOptions
        @OptionGroup var who: UserOptions
        @OptionGroup var time: TimeOptions
        @Argument(help: "Memory id (32 hex digits).") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await guardedAsync {
                let ref = try who.ref()
                let opened = try await store.openEngine(backend, for: ref)
                defer { opened.close() }
                let engine = opened.engine
                let (memory, asOf, at) = (try parseID(id), try time.parsedAsOf(), try time.parsedAt())
                let v = try await engine.withAsOf(ref, asOf) { try engine.memory(ref, memory, asOf: asOf, at: at) }
                if json { try printJSON(MemoryJSON(v)) } else { printMemory(v) }
            }
        }
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Every event that touched a memory, oldest first, with the decision's model and causation.",
        discussion: """
            Example:
              psm history 0f3c…e1 --user alice
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var who: UserOptions
    @Argument(help: "Memory id (32 hex digits).") var id: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guardedAsync {
            let ref = try who.ref()
            let opened = try await store.openEngine(backend, for: ref)
            defer { opened.close() }
            let entries = try await opened.engine.historyOfRecord(ref, try parseID(id)).map(HistoryEntryJSON.init)
            if json { try printJSON(entries); return }
            for e in entries {
                print("#\(e.position)  \(e.time)  \(e.type.padding(toLength: 14, withPad: " ", startingAt: 0))  \(e.summary)")
                if let m = e.model { print("        model \(m.allSatisfy { $0 == "0" } ? "rule-baseline" : String(m.prefix(16)) + "…")  inputs \(e.input_digest!.prefix(16))…  cause \(e.causation ?? "-")") }
            }
        }
    }
}

struct ProvenanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provenance",
        abstract: "Where a memory came from: its sources down to the observed turns and the app's source ids.",
        discussion: """
            Prints the tree memory → source memories → observations (with session, speaker, time and the \
            app's source id), and the memories derived from this one.

            Example:
              psm provenance 0f3c…e1 --user alice --json
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var who: UserOptions
    @OptionGroup var time: TimeOptions
    @Argument(help: "Memory id (32 hex digits).") var id: String
    @Flag(help: "Also print each source observation's inclusion proof in the tenant's Merkle tree (check it against psm tree-head).") var proof = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guardedAsync {
            let ref = try who.ref()
            let opened = try await store.openEngine(backend, for: ref)
            defer { opened.close() }
            let engine = opened.engine
            let (memory, asOf) = (try parseID(id), try time.parsedAsOf())
            let p = try await engine.withAsOf(ref, asOf) { try engine.provenance(ref, memory, asOf: asOf) }
            var out = ProvenanceJSON(p)
            if proof { out.proofs = try await MemoryService(engine: engine).inclusionProofs(try who.ref(), p.observations) }
            if json {
                try printJSON(out)
                return
            }
            func show(_ n: ProvenanceNode, _ depth: Int) {
                let pad = String(repeating: "  ", count: depth)
                let what = n.kind == .memory ? "memory \(n.id) [\(n.tier?.description ?? "?")]" : "observation \(n.id)"
                let meta = [n.sourceID.isEmpty ? nil : "source \(n.sourceID)", n.session.isEmpty ? nil : "session \(n.session)", n.speaker.isEmpty ? nil : n.speaker, isoTime(n.time)]
                    .compactMap { $0 }.joined(separator: ", ")
                print("\(pad)\(what)  (\(meta))")
                print("\(pad)  “\(n.text.prefix(100))”")
                for c in n.children { show(c, depth + 1) }
            }
            show(p.root, 0)
            print("app source ids: \(p.sourceIDs.isEmpty ? "-" : p.sourceIDs.joined(separator: ", "))")
            if !p.derived.isEmpty { print("derived memories: \(p.derived.map(\.description).joined(separator: ", "))") }
            for pr in out.proofs ?? [] {
                print("proof: observation \(pr.observation) at position \(pr.position) is leaf \(pr.leaf_index) of \(pr.tree_size) in tenant \(try who.ref().tenant)'s tree, root \(pr.root.prefix(16))… (\(pr.path.count) hashes)")
            }
        }
    }
}

struct TiersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tiers",
        abstract: "A user's memories by tier: sensory buffer, working, episodic, semantic, archival.",
        discussion: """
            Example:
              psm tiers --user alice --as-of 1200
              psm tiers --user alice --at 2026-06-01T00:00:00Z --json
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var who: UserOptions
    @OptionGroup var time: TimeOptions
    @Option(help: "Memories to print per tier (1...100000).") var limit: Int = 20
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (1...100_000).contains(limit) else { throw ValidationError("--limit must be 1...100000, got \(limit)") }
    }

    func run() async throws {
        try await guardedAsync {
            let ref = try who.ref()
            let opened = try await store.openEngine(backend, for: ref)
            defer { opened.close() }
            let engine = opened.engine
            let (asOf, at) = (try time.parsedAsOf(), try time.parsedAt())
            let listing = try await engine.withAsOf(ref, asOf) { try engine.tiers(ref, asOf: asOf, at: at) }
            if json { try printJSON(TiersJSON(ref, listing, limit: limit)); return }
            print("\(ref): \(listing.user.events) events, last position \(listing.user.lastPosition)")
            print("sensory (\(listing.sensory.count) not yet gated)")
            for o in listing.sensory.prefix(limit) { print("  \(o.id)  \(isoTime(o.time))  “\(o.text.prefix(70))”") }
            for t in Tier.allCases where t != .sensory {
                let ms = listing.memories[t] ?? []
                print("\(t) (\(ms.count))")
                for v in ms.prefix(limit) {
                    print(String(format: "  %@  s=%.3f  %@%@", v.record.id.description, v.strength, v.record.isValid ? "" : "[superseded] ", String(v.record.text.prefix(70))))
                }
                if ms.count > limit { print("  … \(ms.count - limit) more (--limit)") }
            }
        }
    }
}

struct RebuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Rebuild the projections from the journal and compare the state hash with the incremental one.",
        discussion: """
            Folds every journal event from empty into a new projection store beside the old one, swaps it \
            in by rename, and prints both state hashes. Equal hashes mean the incrementally maintained \
            projections were exactly what the journal implies. Exit code 1 if they differ.

            Example:
              psm rebuild --store ./psm-store --json
            """)
    @OptionGroup var store: StoreOptions
    @Flag(help: "Print JSON.") var json = false

    struct Output: Encodable {
        var events_applied, events_skipped, anomalies: Int
        var checkpoint: UInt64
        var state_hash_before, state_hash_after: String
        var equal: Bool
        var seconds: Double
        var events_per_s: Double
    }

    func run() throws {
        try guarded {
            let engine = try store.openEngine()
            defer { engine.close() }
            let start = Date()
            let bar = Progress(label: "rebuild", total: try engine.journal.stats().lastPosition, enabled: !json)
            let (before, r) = try engine.rebuild { done, _ in bar.update(done) }
            bar.finish()
            let secs = Date().timeIntervalSince(start)
            let out = Output(
                events_applied: r.applied, events_skipped: r.skipped, anomalies: r.anomalies, checkpoint: r.checkpoint, state_hash_before: hexBytes(before),
                state_hash_after: hexBytes(r.stateHash), equal: before == r.stateHash, seconds: secs, events_per_s: Double(r.applied + r.skipped) / max(secs, 1e-9))
            if json { try printJSON(out) } else {
                print("folded \(r.applied) memory events (\(r.skipped) others skipped, \(r.anomalies) anomalies) to position \(r.checkpoint) in \(String(format: "%.2f", secs)) s")
                print("state hash before  \(out.state_hash_before)")
                print("state hash after   \(out.state_hash_after)  \(out.equal ? "(equal)" : "(DIFFERENT)")")
            }
            if !out.equal { throw ExitCode(1) }
        }
    }
}

struct StateHashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state-hash",
        abstract: "The projections' canonical state hash (SPEC.md §11.6) after folding every journal event.",
        discussion: """
            Example:
              psm state-hash --json
            """)
    @OptionGroup var store: StoreOptions
    @Flag(help: "Print JSON.") var json = false

    struct Output: Encodable { var state_hash: String; var checkpoint: UInt64; var anomalies: Int }

    func run() throws {
        try guarded {
            let engine = try store.openEngine()
            defer { engine.close() }
            let h = try engine.stateHash()
            let out = Output(state_hash: hexBytes(h), checkpoint: try engine.projections.checkpoint(), anomalies: try engine.projections.anomalies(limit: 1_000_000).count)
            if json { try printJSON(out) } else { print("\(out.state_hash)  (checkpoint \(out.checkpoint), \(out.anomalies) anomalies)") }
        }
    }
}
