import ArgumentParser
import Cluster
import Engine
import Foundation
import Inference
import Journal
import JournalPostgres
import Projections

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-run every decision of the journal and compare it with the one recorded.",
        discussion: """
            From an empty state, each command (observation, recall request, feedback, sleep request) is \
            decided again with the model on the state folded up to just before it, and every recomputed \
            decision is compared byte for byte with the journaled one. Prints the number of commands, \
            decisions checked, divergences (with the first, its position and why) and the state hash of \
            the replayed projections. Exit code 1 when anything diverges. The store is not changed.

            The model is the store's active one (journaled at its first decision), looked up among --model, \
            $PSM_MODEL, the default PSM model and the store's models/encoder.psm; decisions record the model \
            they were made with, and a different one shows up as divergences naming both ids.

            With --journal postgres://… (or $PSM_JOURNAL) it replays the journal of record of a cluster \
            (SPEC.md §15.6) user by user: each user's stream, read from PostgreSQL, is folded and decided \
            again on its own (a user's decisions depend on that user's state only). The model is the one \
            the cluster's model stream last activated, looked up as above; --user replays one user. The \
            JSON then has users and no state_hash (there is no single journal order to hash).

            Example:
              psm replay --verify --json
              OPENBLAS_CORETYPE=Haswell psm replay --verify --threads 2
              psm replay --verify --journal postgres://psm@db1:5432/psm --user ana --tenant acme
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @Option(help: ArgumentHelp("With --journal: replay this user only (tenant: --tenant, $PSM_TENANT, else \"default\").", valueName: "USER"))
    var user: String?
    @Option(help: ArgumentHelp("Tenant of --user.", valueName: "TENANT")) var tenant: String?
    @Flag(help: "Verify (the only mode: replay never writes to the store).") var verify = false
    @OptionGroup var modelOption: ModelOption
    @Option(help: "Threads the encoder may use (1...64; default: $PSM_THREADS, else the processor count up to 8). Decisions do not depend on it.") var threads: Int?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard verify else { throw ValidationError("pass --verify (replay only verifies; it never writes)") }
        if let threads, !(1...64).contains(threads) { throw ValidationError("--threads must be 1...64, got \(threads)") }
    }

    struct Output: Encodable {
        var commands, checked, divergent: Int
        var first_divergence: Replayer.Divergence?
        var state_hash: String?
        var checkpoint: UInt64?
        /// Users replayed (PostgreSQL journal of record only).
        var users: Int?
        var backend: String
        var model: String
        var threads: Int
        var seconds: Double
    }

    func run() async throws {
        if let url = backend.url {
            do { try await replayRecord(url) } catch { throw reportedExit(error) }
            return
        }
        guard user == nil && tenant == nil else { throw reportedExit(CLIError.usage("--user and --tenant select a user of the journal of record; add --journal")) }
        try guarded {
            let journal = try store.openJournal()
            defer { journal.close() }
            // The store's active model when it names one: found among --model, $PSM_MODEL, the default
            // PSM model and the store's encoder.
            let active = try Engine.activeModel(in: journal)
            let file = try modelOption.resolve(store, quiet: json, matching: active)
            if let threads { Encoder.setThreads(threads) }
            let decider = Decider(policy: try file.map { try policy(for: $0) } ?? RuleBaseline(), encoder: try file.map { try Encoder(model: $0) })
            let start = Date()
            let bar = Progress(label: "replay", total: try journal.stats().lastPosition, enabled: !json)
            let scratch = NSTemporaryDirectory() + "psm-replay-\(getpid())"
            let r = try Replayer.verify(journal: journal, decider: decider, scratch: scratch) { done, _ in bar.update(done) }
            bar.finish()
            let out = Output(
                commands: r.commands, checked: r.checked, divergent: r.divergent, first_divergence: r.first, state_hash: hexBytes(r.stateHash),
                checkpoint: r.checkpoint, backend: "lmdb", model: hexBytes(decider.modelID), threads: Encoder.currentThreads, seconds: Date().timeIntervalSince(start))
            if json {
                try printJSON(out)
            } else {
                print("replayed \(r.commands) commands, checked \(r.checked) decisions: \(r.divergent) divergent")
                if let d = r.first { print("first divergence at position \(d.position) (\(d.stream), command \(d.command)): \(d.reason)") }
                print("state hash \(hexBytes(r.stateHash)) at position \(r.checkpoint)")
            }
            if r.divergent > 0 { throw ExitCode(1) }
        }
    }

    /// Replays the PostgreSQL journal of record user by user into one scratch projection store.
    func replayRecord(_ url: String) async throws {
        let journal = try await backend.open(url)
        defer { journal.close() }
        var active: [UInt8]? = nil
        let models = try await journal.readableStream(UserRef.modelStream.id)
        if let last = models.events.last, let payload = models.payloads[last.header.eventID],
            case .modelActivation(let m)? = try MemoryEvent.decode(type: last.header.eventType, payload: payload)
        {
            active = m.model
        }
        let file = try modelOption.resolve(store, quiet: json, matching: active)
        if let threads { Encoder.setThreads(threads) }
        let decider = Decider(policy: try file.map { try policy(for: $0) } ?? RuleBaseline(), encoder: try file.map { try Encoder(model: $0) })
        var users: [UserRef] = []
        if let user {
            let t = tenant ?? ProcessInfo.processInfo.environment["PSM_TENANT"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
            let ref: UserRef
            do { ref = try UserRef(tenant: t, user: user) } catch { throw CLIError.usage("--user \(user) / tenant \(t): \(error)") }
            guard try await journal.stream(ref.key) != nil else { throw CLIError.usage("user \(user) of tenant \(t) has no events in \(PostgresJournal.redacted(url))") }
            users = [ref]
        } else {
            for p in 0..<journal.partitions {
                users += try await journal.streams(inPartition: p).compactMap { UserRef(stream: $0.stream) }
            }
        }
        let start = Date()
        let scratch = NSTemporaryDirectory() + "psm-replay-\(getpid())"
        try? FileManager.default.removeItem(atPath: scratch)
        let state = try ProjectionStore(directory: scratch)
        defer {
            state.close()
            try? FileManager.default.removeItem(atPath: scratch)
        }
        let bar = Progress(label: "replay", total: UInt64(users.count), enabled: !json)
        var total = Replayer.Report()
        for (i, u) in users.enumerated() {
            let r = try Replayer.verify(stream: try await journal.readableStream(u.key), user: u, decider: decider, into: state)
            total.commands += r.commands
            total.checked += r.checked
            total.divergent += r.divergent
            total.shredded += r.shredded
            if total.first == nil { total.first = r.first }
            bar.update(UInt64(i + 1))
        }
        bar.finish()
        let out = Output(
            commands: total.commands, checked: total.checked, divergent: total.divergent, first_divergence: total.first, users: users.count,
            backend: "postgres", model: hexBytes(decider.modelID), threads: Encoder.currentThreads, seconds: Date().timeIntervalSince(start))
        if json {
            try printJSON(out)
        } else {
            print("replayed \(users.count) users of \(PostgresJournal.redacted(url)): \(total.commands) commands, checked \(total.checked) decisions: \(total.divergent) divergent")
            if let d = total.first { print("first divergence at position \(d.position) (\(d.stream), command \(d.command)): \(d.reason)") }
        }
        if total.divergent > 0 { throw ExitCode(1) }
    }
}
