import ArgumentParser
import Engine
import Foundation
import Inference
import Journal
import Projections

struct ReconsolidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconsolidate",
        abstract: "Rehearse a model upgrade: replay the store's commands through another model into a new store and diff.",
        discussion: """
            Every command of the store (observations, recalls with their ids, feedback, sleeps, erasures) is \
            re-run in order through --model into the new store --out; the original store is only read. The \
            report compares the final memories (gained, lost, re-tiered, superseded, reinforced or flagged differently, mean strength \
            shift) and every journaled recall (how many surfaced a different set, mean Jaccard similarity). \
            Feedback on a memory the new model did not surface for that recall is skipped and counted. \
            `psm adopt DIR` then switches the store to the new one.

            Example:
              psm reconsolidate --model psm-v2.psm --out ./psm-store-v2 --json
            """)
    @OptionGroup var store: StoreOptions
    @Option(help: ArgumentHelp("The new model file.", valueName: "FILE")) var model: String
    @Option(help: ArgumentHelp("Directory for the new store (must not exist).", valueName: "DIR")) var out: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guardedAsync {
            guard !FileManager.default.fileExists(atPath: out) else { throw CLIError.usage("--out \(out) already exists; give a new directory") }
            let source = try store.openJournal()
            defer { source.close() }
            let file = try ModelFile(path: model)
            let target = try Engine(directory: out, encoder: try Encoder(model: file), policy: try policy(for: file))
            defer { target.close() }
            let bar = Progress(label: "reconsolidate", total: try source.stats().lastPosition, enabled: !json)
            let diff = try await Reconsolidation.run(source: source, target: target) { done, _ in bar.update(done) }
            bar.finish()
            if json {
                struct Out: Encodable { var out: String; var model: String; var diff: Reconsolidation.Diff }
                try printJSON(Out(out: out, model: file.id, diff: diff))
                return
            }
            print("replayed \(diff.commands) commands of \(diff.users) users through \(file.id.prefix(16))… into \(out)")
            print("memories \(diff.memories_before) → \(diff.memories_after): \(diff.gained) gained, \(diff.lost) lost, \(diff.retiered) re-tiered, \(diff.retyped) re-typed, \(diff.superseded_differently) superseded differently, \(diff.reinforced_differently) reinforced differently, \(diff.flagged_differently) flagged differently, mean |Δ strength| \(diff.mean_abs_strength_shift)")
            func byTier(_ counts: [String: Int]) -> String { counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") }
            if diff.gained + diff.lost > 0 { print("  gained: \(diff.gained == 0 ? "none" : byTier(diff.gained_by_tier)); lost: \(diff.lost == 0 ? "none" : byTier(diff.lost_by_tier))") }
            print("recalls: \(diff.recalls_changed) of \(diff.recalls_compared) surface a different set (mean Jaccard \(diff.recall_jaccard)); \(diff.feedback_skipped) feedback skipped")
            for e in diff.examples { print("  \(e)") }
        }
    }
}

struct AdoptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adopt",
        abstract: "Switch the store to a reconsolidated store, journaled as a model activation.",
        discussion: """
            Moves the current store aside to <store>.replaced-<unix time> (kept, never deleted), moves DIR \
            into its place, and appends a model activation naming the adopted model to its journal. \
            Nothing may have either store open. The steps are recorded first in <store>.adopting; if \
            adoption is interrupted (a crash, a kill), running the same command again finishes it.

            Example:
              psm adopt ./psm-store-v2 --store ./psm-store
            """)
    @OptionGroup var store: StoreOptions
    @Argument(help: "The reconsolidated store.") var directory: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guardedAsync {
            let fm = FileManager.default
            let intentPath = store.storePath + ".adopting"
            struct Intent: Codable { var directory: String; var aside: String }
            var intent: Intent
            if let data = fm.contents(atPath: intentPath) {
                // Resuming an interrupted adoption.
                do { intent = try JSONDecoder().decode(Intent.self, from: data) } catch { throw CLIError.data("\(intentPath) is damaged: \(error)") }
                guard intent.directory == directory else {
                    throw CLIError.usage("an adoption of \(intent.directory) into \(store.storePath) was interrupted; run psm adopt \(intent.directory) to finish it first")
                }
            } else {
                guard fm.fileExists(atPath: directory + "/journal/data.mdb") else { throw CLIError.usage("\(directory) is not a store (no journal/data.mdb)") }
                _ = try store.openJournal().close()
                let probe = try Journal(directory: directory + "/journal")
                let hasModel = try Engine.activeModel(in: probe) != nil
                probe.close()
                guard hasModel else { throw CLIError.usage("\(directory) has no model activation: make it with psm reconsolidate") }
                intent = Intent(directory: directory, aside: store.storePath + ".replaced-\(Int(Date().timeIntervalSince1970))")
                let data = try JSONEncoder().encode(intent)
                let tmp = intentPath + ".tmp"
                guard fm.createFile(atPath: tmp, contents: data), rename(tmp, intentPath) == 0 else { throw CLIError.io("cannot write \(intentPath)") }
            }
            let aside = intent.aside
            // Each step is done only if its result is not there yet, so a re-run after a crash resumes.
            if fm.fileExists(atPath: store.storePath) && !fm.fileExists(atPath: aside) && fm.fileExists(atPath: directory) {
                try fm.moveItem(atPath: store.storePath, toPath: aside)
            }
            if !fm.fileExists(atPath: store.storePath) && fm.fileExists(atPath: directory) {
                try fm.moveItem(atPath: directory, toPath: store.storePath)
            }
            guard fm.fileExists(atPath: store.storePath + "/journal/data.mdb") else { throw CLIError.io("adoption of \(directory) left no store at \(store.storePath); see \(intentPath)") }
            let probe = try Journal(directory: store.storePath + "/journal")
            guard let active = try Engine.activeModel(in: probe) else {
                probe.close()
                throw CLIError.data("\(store.storePath) has no model activation")
            }
            let last = try probe.read(from: .max, limit: 1, direction: .backward).first?.header.eventTime ?? 0
            probe.close()
            let engine = try Engine(directory: store.storePath)
            defer { engine.close() }
            let event = MemoryEvent.modelActivation(.init(model: active, name: "adopted"))
            let id = ID128.derived(domain: "psm.adopt.v1", active + Array(aside.utf8))
            _ = try await engine.journal.append(
                AppendRequest(stream: UserRef.modelStream, events: [EventData(id: id, type: event.type.rawValue, time: last, payload: event.payload())]))
            try engine.projections.catchUp(engine.journal)
            try? fm.removeItem(atPath: intentPath)
            struct Out: Encodable { var store: String; var previous: String; var model: String }
            let out = Out(store: store.storePath, previous: aside, model: hexBytes(active))
            if json { try printJSON(out) } else { print("adopted: \(out.store) now runs model \(out.model.prefix(16))…; the previous store is kept at \(aside)") }
        }
    }
}
