import ArgumentParser
import Engine
import Foundation
import Inference
import Journal
import Projections

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-run every decision of the journal and compare it with the one recorded.",
        discussion: """
            From an empty state, each command (observation, recall request, feedback, sleep request) is
            decided again with the model on the state folded up to just before it, and every recomputed
            decision is compared byte for byte with the journaled one. Prints the number of commands,
            decisions checked, divergences (with the first, its position and why) and the state hash of
            the replayed projections. Exit code 1 when anything diverges. The store is not changed.

            The model is the store's active one (journaled at its first decision), looked up among --model,
            $PSM_MODEL, the default PSM model and the store's models/encoder.psm; decisions record the model
            they were made with, and a different one shows up as divergences naming both ids.

            Example:
              psm replay --verify --json
              OPENBLAS_CORETYPE=Haswell psm replay --verify --threads 2
            """)
    @OptionGroup var store: StoreOptions
    @Flag(help: "Verify (the only mode: replay never writes to the store).") var verify = false
    @OptionGroup var modelOption: ModelOption
    @Option(help: "Threads the encoder may use (1...64).") var threads: Int = 1
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard verify else { throw ValidationError("pass --verify (replay only verifies; it never writes)") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1...64, got \(threads)") }
    }

    struct Output: Encodable {
        var commands, checked, divergent: Int
        var first_divergence: Replayer.Divergence?
        var state_hash: String
        var checkpoint: UInt64
        var model: String
        var threads: Int
        var seconds: Double
    }

    func run() throws {
        try guarded {
            let journal = try store.openJournal()
            defer { journal.close() }
            // The store's active model when it names one: found among --model, $PSM_MODEL, the default
            // PSM model and the store's encoder.
            let active = try Engine.activeModel(in: journal)
            let file = try modelOption.resolve(store, quiet: json, matching: active)
            Encoder.setThreads(threads)
            let decider = Decider(policy: try file.map { try policy(for: $0) } ?? RuleBaseline(), encoder: try file.map { try Encoder(model: $0) })
            let start = Date()
            let bar = Progress(label: "replay", total: try journal.stats().lastPosition, enabled: !json)
            let scratch = NSTemporaryDirectory() + "psm-replay-\(getpid())"
            let r = try Replayer.verify(journal: journal, decider: decider, scratch: scratch) { done, _ in bar.update(done) }
            bar.finish()
            let out = Output(
                commands: r.commands, checked: r.checked, divergent: r.divergent, first_divergence: r.first, state_hash: hexBytes(r.stateHash),
                checkpoint: r.checkpoint, model: hexBytes(decider.modelID), threads: threads, seconds: Date().timeIntervalSince(start))
            if json {
                try printJSON(out)
            } else {
                print("replayed \(r.commands) commands, checked \(r.checked) decisions: \(r.divergent) divergent")
                if let d = r.first { print("first divergence at position \(d.position) (\(d.stream), command \(d.command)): \(d.reason)") }
                print("state hash \(out.state_hash) at position \(r.checkpoint)")
            }
            if r.divergent > 0 { throw ExitCode(1) }
        }
    }
}
