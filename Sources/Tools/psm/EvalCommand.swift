import ArgumentParser
import Engine
import Foundation
import Inference
import Journal
import Projections

struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate recall on real conversations.", subcommands: [LoCoMo.self])

    struct LoCoMo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "locomo",
            abstract: "Ingest LoCoMo conversations through the engine and score recall of the evidence turns.",
            discussion: """
                Each conversation becomes one user: every turn is an observation (speaker, session, \
                the session's date as event time plus one second per turn, `dia_id` as the app's source \
                id; a shared photo's caption is appended to the text), the user sleeps after each session, \
                and every question is asked after the last session (a read-only recall: questions do not \
                change the store). The ranking of a question is the app source ids reached through the \
                provenance of the recalled memories, best first, deduplicated. The model is --model, else \
                $PSM_MODEL, else the default PSM model once `psm model default` has built it, else the bare \
                encoder (from $PSM_MINILM_DIR) with the rule baseline.

                Reports per category and overall (categories 1-4), and the same per conversation (JSON `by_conversation`): R_all@k and R_any@k for k = 1, 5, 10, 20, \
                NDCG@10 and MRR; the fraction of turns in the active tiers, the fraction of evidence turns the \
                gate kept, how the gate typed kept turns (of the memories made from one turn, the share not \
                typed small talk among evidence turns and among the others; JSON `evidence_fact_fraction`, \
                `other_fact_fraction`), how many semantic memories sleep made, and ingest and recall timing. \
                `--store DIR` keeps the store for inspection; \
                `--questions-only --store DIR` asks the questions again over a store an earlier run kept \
                (no ingest: for trying another model's recall weighting on the same memories; a memory's \
                sources count as kept). `--candidates OUT.jsonl` writes each question's recalled \
                candidates with their recall features, weight, slot, session and whether it is in the pool \
                (rank 1-50 in either list), for ranking analysis.

                An evidence id that names no turn of its conversation (LoCoMo has a few, e.g. "D:11:26") \
                is no evidence turn: it is left out of the question's evidence and of the kept fraction, \
                and listed (JSON `unknown_evidence`, else a warning on standard error); a question left \
                with no evidence is not scored.

                Example:
                  psm eval locomo ../shared/data/locomo-dev.json --json --rankings rankings.jsonl
                """)
        @Argument(help: "A LoCoMo JSON file (a list of conversations).") var file: String
        @Option(help: ArgumentHelp("Keep the store it builds in DIR (must not exist).", valueName: "DIR")) var store: String?
        @OptionGroup var model: ModelOption
        @Option(help: ArgumentHelp("Write one ranking per question to FILE (JSON lines).", valueName: "FILE")) var rankings: String?
        @Option(help: ArgumentHelp("Write each question's candidates with their features to FILE (JSON lines).", valueName: "FILE"))
        var candidates: String?
        @Flag(help: "Ask the questions over the existing --store DIR (built by an earlier run), without ingesting.") var questionsOnly = false
        @Option(help: "Evaluate only the first N conversations.") var limit: Int?
        @Option(help: "Memories recalled per question (50...1024).") var k: Int = 60
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard (50...1024).contains(k) else { throw ValidationError("--k must be 50...1024, got \(k)") }
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
            if questionsOnly && store == nil { throw ValidationError("--questions-only needs --store DIR (a store an earlier run kept)") }
        }

        struct Turn { var speaker, id, text: String }
        struct Session { var index: Int; var time: Int64; var turns: [Turn] }
        struct Question { var id, text: String; var evidence: [String]; var category: Int; var unknown: [String] = [] }
        struct Conversation { var sample: String; var sessions: [Session]; var questions: [Question] }

        static func parse(_ path: String) throws -> [Conversation] {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw CLIError.usage("cannot read \(path): \(error.localizedDescription)") }
            guard let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
                throw CLIError.data("\(path) is not a JSON list of LoCoMo conversations")
            }
            let dateFormat = DateFormatter()
            dateFormat.locale = Locale(identifier: "en_US_POSIX")
            dateFormat.timeZone = TimeZone(identifier: "UTC")
            dateFormat.dateFormat = "h:mm a 'on' d MMMM, yyyy"
            return try list.enumerated().map { (ci, c) in
                let sample = c["sample_id"] as? String ?? "conv-\(ci)"
                guard let conv = c["conversation"] as? [String: Any] else { throw CLIError.data("conversation \(sample) has no `conversation` object") }
                var sessions: [Session] = []
                for key in conv.keys where key.hasPrefix("session_") && !key.hasSuffix("date_time") {
                    guard let n = Int(key.dropFirst("session_".count)), let turns = conv[key] as? [[String: Any]] else { continue }
                    guard let when = conv["\(key)_date_time"] as? String, let date = dateFormat.date(from: when) else {
                        throw CLIError.data("conversation \(sample) \(key): no parseable session date (want e.g. \"1:56 pm on 8 May, 2023\")")
                    }
                    let parsed: [Turn] = try turns.enumerated().map { (ti, t) in
                        guard let id = t["dia_id"] as? String, let text = t["text"] as? String else {
                            throw CLIError.data("conversation \(sample) \(key) turn \(ti): needs string `dia_id` and `text`")
                        }
                        var full = text
                        if let caption = t["blip_caption"] as? String, !caption.isEmpty { full += " [shares a photo: \(caption)]" }
                        return Turn(speaker: t["speaker"] as? String ?? "", id: id, text: full)
                    }
                    sessions.append(Session(index: n, time: Int64(date.timeIntervalSince1970) * 1_000_000, turns: parsed))
                }
                sessions.sort { $0.index < $1.index }
                guard sessions.contains(where: { !$0.turns.isEmpty }) else { throw CLIError.data("conversation \(sample) has no turns (no `session_N` lists)") }
                guard let qa = (c["qa"] ?? [Any]()) as? [[String: Any]] else { throw CLIError.data("conversation \(sample): `qa` is not a list of questions") }
                // Evidence must name turns of this conversation; ids that do not are set aside (see the discussion).
                let ids = Set(sessions.flatMap { $0.turns.map(\.id) })
                let questions: [Question] = try qa.enumerated().map { (qi, q) in
                    guard let text = q["question"] as? String, let category = q["category"] as? Int else {
                        throw CLIError.data("conversation \(sample) question \(qi): needs a string `question` and an integer `category`")
                    }
                    guard let listed = (q["evidence"] ?? [String]()) as? [String] else {
                        throw CLIError.data("conversation \(sample) question \(qi): `evidence` is not a list of dialogue ids")
                    }
                    let evidence = listed.flatMap { $0.split(whereSeparator: { $0 == ";" || $0 == " " || $0 == "," }) }
                        .map(String.init).filter { !$0.isEmpty }
                    return Question(
                        id: "\(sample):\(qi)", text: text, evidence: evidence.filter(ids.contains), category: category,
                        unknown: evidence.filter { !ids.contains($0) })
                }
                return Conversation(sample: sample, sessions: sessions, questions: questions)
            }
        }

        struct Scores: Encodable {
            var questions = 0
            var r_all: [String: Double] = [:]
            var r_any: [String: Double] = [:]
            var ndcg_10 = 0.0
            var mrr = 0.0

            mutating func add(ranked: [String], evidence: Set<String>) {
                questions += 1
                for k in [1, 5, 10, 20] {
                    let top = Set(ranked.prefix(k))
                    r_all["\(k)", default: 0] += evidence.isSubset(of: top) ? 1 : 0
                    r_any["\(k)", default: 0] += evidence.isDisjoint(with: top) ? 0 : 1
                }
                var dcg = 0.0, idcg = 0.0
                for (i, id) in ranked.prefix(10).enumerated() where evidence.contains(id) { dcg += 1 / log2(Double(i) + 2) }
                for i in 0..<min(evidence.count, 10) { idcg += 1 / log2(Double(i) + 2) }
                ndcg_10 += idcg > 0 ? dcg / idcg : 0
                if let r = ranked.firstIndex(where: evidence.contains) { mrr += 1 / Double(r + 1) }
            }

            func averaged() -> Scores {
                guard questions > 0 else { return self }
                var s = self
                let n = Double(questions)
                s.r_all = r_all.mapValues { ($0 / n * 1000).rounded() / 1000 }
                s.r_any = r_any.mapValues { ($0 / n * 1000).rounded() / 1000 }
                s.ndcg_10 = (ndcg_10 / n * 1000).rounded() / 1000
                s.mrr = (mrr / n * 1000).rounded() / 1000
                return s
            }
        }

        /// One conversation's figures (its questions of categories 1-4 in `overall`).
        struct ConversationReport: Encodable {
            var sample_id: String
            var turns: Int
            var overall: Scores
            var categories: [String: Scores]
            var active_turn_fraction: Double
            var evidence_kept_fraction: Double
        }

        struct Report: Encodable {
            var conversations: Int
            var turns: Int
            var overall: Scores
            var categories: [String: Scores]
            var by_conversation: [ConversationReport]
            var active_turn_fraction: Double
            var evidence_kept_fraction: Double
            /// Of the memories made from one turn, the share the gate did not type small talk, among those of
            /// evidence turns and among the others (SPEC.md §12.7, "Novelty"); and how many semantic memories
            /// sleep made. A fraction is absent when there is no such memory.
            var evidence_fact_fraction: Double?
            var other_fact_fraction: Double?
            var semantic_memories: Int
            /// Absent with --questions-only (nothing is ingested).
            var ingest_turns_per_s: Double?
            var recall_p50_ms: Double
            var recall_p99_ms: Double
            var model: String
            var policy: String
            /// Questions whose evidence names ids no turn of their conversation has (left out of their evidence).
            var unknown_evidence: [UnknownEvidence]
        }

        struct UnknownEvidence: Encodable {
            var qa_id: String
            var ids: [String]
        }

        func run() async throws {
            try await guardedAsync {
                try await evaluate()
            }
        }

        func evaluate() async throws {
            var conversations = try Self.parse(file)
            if let limit { conversations = Array(conversations.prefix(limit)) }
            let dir = store ?? NSTemporaryDirectory() + "psm-eval-\(getpid())"
            if questionsOnly {
                guard FileManager.default.fileExists(atPath: dir) else { throw CLIError.usage("--questions-only: no store at \(dir)") }
            } else if store != nil, FileManager.default.fileExists(atPath: dir) {
                throw CLIError.usage("--store \(dir) already exists; give a new directory (or pass --questions-only to reuse it)")
            }
            defer { if store == nil { try? FileManager.default.removeItem(atPath: dir) } }
            if !questionsOnly { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            // A store this run created is removed again if it fails before ingesting anything (no encoder,
            // a bad model file), so the same command can simply be run again.
            let opened: (file: ModelFile, engine: Engine)
            do {
                let storeOptions = try StoreOptions.parse(["--store", dir])
                guard let file = try model.resolve(storeOptions, quiet: json) else {
                    throw CLIError.usage("no model: pass --model FILE, set PSM_MODEL, run `psm model default`, or run scripts/setup.sh (PSM_MINILM_DIR)")
                }
                opened = (file, try Engine(directory: dir, encoder: try Encoder(model: file), policy: try policy(for: file)))
            } catch {
                if !questionsOnly, store != nil { try? FileManager.default.removeItem(atPath: dir) }
                throw error
            }
            let (file, engine) = opened
            defer { engine.close() }
            if !questionsOnly, let first = conversations.first?.sessions.first?.time {
                try await engine.ensureActiveModel(name: URL(fileURLWithPath: file.path).lastPathComponent, at: first)
            }
            let totalTurns = conversations.reduce(0) { $0 + $1.sessions.reduce(0) { $0 + $1.turns.count } }
            let bar = Progress(label: "ingest", total: UInt64(totalTurns), enabled: !json)
            var done: UInt64 = 0
            var ingestSeconds = 0.0
            var overall = Scores(), categories: [Int: Scores] = [:]
            var latencies: [Double] = []
            var activeTurns = 0, evidenceTotal = 0, evidenceKept = 0
            /// Memories of one turn (evidence, other) and how many of each the gate did not type small talk.
            var typed = (evidence: 0, evidenceFacts: 0, other: 0, otherFacts: 0), semantic = 0
            var byConversation: [ConversationReport] = []
            var out = rankings.map { _ in [String]() }
            var candidateLines = candidates.map { _ in [String]() }
            for c in conversations {
                let user = try UserRef(tenant: "locomo", user: c.sample)
                let turns = c.sessions.reduce(0) { $0 + $1.turns.count }
                var kept: [String: Bool] = [:]
                let start = Date()
                var last: Int64 = 0
                if questionsOnly {
                    guard try engine.userExists(user) else { throw CLIError.data("--questions-only: the store has no user \(user); was it built from \(self.file)?") }
                    let listing = try engine.tiers(user)
                    last = listing.user.lastEventTime
                    for m in listing.memories.values.joined() { for id in m.record.sourceIDs { kept[id] = true } }
                    done += UInt64(turns)
                    bar.update(done)
                }
                for s in c.sessions where !questionsOnly {
                    var t = max(s.time, last + 1_000_000)
                    for turn in s.turns {
                        let r = try await engine.observe(
                            user, .init(text: turn.text, session: "session_\(s.index)", speaker: turn.speaker, role: "user", sourceID: turn.id), at: t)
                        kept[turn.id] = r.kept
                        last = t
                        t += 1_000_000
                        done += 1
                        bar.update(done)
                    }
                    _ = try await engine.sleep(user, at: last + 1_000_000)
                    last += 1_000_000
                }
                ingestSeconds += Date().timeIntervalSince(start)
                let listing = try engine.tiers(user)
                var active = 0, conversationEvidence = 0, conversationKept = 0
                var conversationOverall = Scores(), conversationCategories: [Int: Scores] = [:]
                for t in [Tier.working, .episodic, .semantic] {
                    for m in listing.memories[t] ?? [] { active += m.record.sourceIDs.count }
                }
                activeTurns += active
                let evidenceTurns = Set(c.questions.flatMap(\.evidence))
                semantic += listing.memories[.semantic]?.count ?? 0
                for (tier, memories) in listing.memories where tier != .semantic {
                    for m in memories where m.record.sourceIDs.count == 1 {
                        let fact = m.record.type != .smallTalk ? 1 : 0
                        if evidenceTurns.contains(m.record.sourceIDs[0]) {
                            typed.evidence += 1; typed.evidenceFacts += fact
                        } else {
                            typed.other += 1; typed.otherFacts += fact
                        }
                    }
                }
                let askAt = last + 86_400_000_000
                for q in c.questions {
                    let evidence = Set(q.evidence)
                    conversationEvidence += evidence.count
                    conversationKept += evidence.filter { kept[$0] == true }.count
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    let r = try engine.peek(user, query: q.text, k: k, at: askAt)
                    latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                    var ranked: [String] = [], seen = Set<String>()
                    for m in r.memories {
                        for id in m.provenance?.sourceIDs ?? m.candidate.view.record.sourceIDs where seen.insert(id).inserted { ranked.append(id) }
                    }
                    if let _ = rankings {
                        let line = try JSONSerialization.data(withJSONObject: ["qa_id": q.id, "ranked": ranked], options: [.sortedKeys])
                        out?.append(String(decoding: line, as: UTF8.self))
                    }
                    if candidates != nil {
                        // Every candidate of the recall (not only the k ranked), with the policy's weight.
                        var all = try engine.projections.candidates(user, engine.decider.recallQuery(q.text, k: k, at: askAt))
                        let weights = engine.decider.weigh(&all, query: q.text, at: askAt)
                        let provenance = Dictionary(r.memories.map { ($0.candidate.memory, $0.provenance?.sourceIDs) }, uniquingKeysWith: { a, _ in a })
                        let items: [[String: Any]] = zip(all, zip(weights, RecallFeatures.vectors(all, query: q.text, at: askAt))).map { (c, wx) in
                            [
                                "memory": c.memory.description, "sources": (provenance[c.memory] ?? nil) ?? c.view.record.sourceIDs,
                                "speaker": c.view.record.speaker, "tier": c.view.record.tier.description, "slot": Int(c.slot), "session": c.view.record.session,
                                "pooled": RecallFeatures.inPool(c), "weight": wx.0.value, "features": wx.1,
                            ]
                        }
                        let line = try JSONSerialization.data(
                            withJSONObject: ["qa_id": q.id, "category": q.category, "evidence": q.evidence, "candidates": items], options: [.sortedKeys])
                        candidateLines?.append(String(decoding: line, as: UTF8.self))
                    }
                    guard !evidence.isEmpty else { continue }
                    categories[q.category, default: Scores()].add(ranked: ranked, evidence: evidence)
                    conversationCategories[q.category, default: Scores()].add(ranked: ranked, evidence: evidence)
                    if (1...4).contains(q.category) {
                        overall.add(ranked: ranked, evidence: evidence)
                        conversationOverall.add(ranked: ranked, evidence: evidence)
                    }
                }
                evidenceTotal += conversationEvidence
                evidenceKept += conversationKept
                byConversation.append(
                    ConversationReport(
                        sample_id: c.sample, turns: turns, overall: conversationOverall.averaged(),
                        categories: Dictionary(uniqueKeysWithValues: conversationCategories.map { ("\($0.key)", $0.value.averaged()) }),
                        active_turn_fraction: Double(active) / Double(max(1, turns)),
                        evidence_kept_fraction: Double(conversationKept) / Double(max(1, conversationEvidence))))
            }
            bar.finish()
            if let rankings, let out { try (out.joined(separator: "\n") + "\n").write(toFile: rankings, atomically: true, encoding: .utf8) }
            if let candidates, let candidateLines {
                try (candidateLines.joined(separator: "\n") + "\n").write(toFile: candidates, atomically: true, encoding: .utf8)
            }
            latencies.sort()
            let report = Report(
                conversations: conversations.count, turns: totalTurns, overall: overall.averaged(),
                categories: Dictionary(uniqueKeysWithValues: categories.map { ("\($0.key)", $0.value.averaged()) }),
                by_conversation: byConversation,
                active_turn_fraction: Double(activeTurns) / Double(max(1, totalTurns)),
                evidence_kept_fraction: Double(evidenceKept) / Double(max(1, evidenceTotal)),
                evidence_fact_fraction: typed.evidence == 0 ? nil : Double(typed.evidenceFacts) / Double(typed.evidence),
                other_fact_fraction: typed.other == 0 ? nil : Double(typed.otherFacts) / Double(typed.other), semantic_memories: semantic,
                ingest_turns_per_s: questionsOnly ? nil : Double(totalTurns) / max(ingestSeconds, 1e-9),
                recall_p50_ms: latencies.isEmpty ? 0 : latencies[latencies.count / 2],
                recall_p99_ms: latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, latencies.count * 99 / 100)],
                model: file.id, policy: engine.policy is PSMPolicy ? "psm " + hexBytes(engine.policy.modelID) : "rule-baseline",
                unknown_evidence: conversations.flatMap { $0.questions.filter { !$0.unknown.isEmpty }.map { UnknownEvidence(qa_id: $0.id, ids: $0.unknown) } })
            if json { try printJSON(report); return }
            for u in report.unknown_evidence {
                FileHandle.standardError.write(Data("psm: warning: question \(u.qa_id) names evidence no turn has: \(u.ids.joined(separator: ", ")) (left out)\n".utf8))
            }
            print("\(report.conversations) conversations, \(report.turns) turns; policy \(report.policy), encoder \(file.id.prefix(12))…")
            func line(_ name: String, _ s: Scores) {
                print(
                    String(
                        format: "%-10@ n=%4d  R_all@1/5/10/20 %.3f %.3f %.3f %.3f  R_any@1/5/10/20 %.3f %.3f %.3f %.3f  NDCG@10 %.3f  MRR %.3f", name as NSString,
                        s.questions, s.r_all["1"] ?? 0, s.r_all["5"] ?? 0, s.r_all["10"] ?? 0, s.r_all["20"] ?? 0, s.r_any["1"] ?? 0, s.r_any["5"] ?? 0,
                        s.r_any["10"] ?? 0, s.r_any["20"] ?? 0, s.ndcg_10, s.mrr))
            }
            line("overall", report.overall)
            for (k, s) in report.categories.sorted(by: { $0.key < $1.key }) { line("category " + k, s) }
            if report.by_conversation.count > 1 {
                for c in report.by_conversation {
                    print(
                        String(
                            format: "  %@: %d turns, %d questions  R_all@10 %.3f  R_any@1 %.3f  R_any@10 %.3f  NDCG@10 %.3f  multi-hop R_all@10 %@  active %.3f  kept %.3f",
                            c.sample_id as NSString, c.turns, c.overall.questions, c.overall.r_all["10"] ?? 0, c.overall.r_any["1"] ?? 0,
                            c.overall.r_any["10"] ?? 0, c.overall.ndcg_10, (c.categories["1"].map { String(format: "%.3f", $0.r_all["10"] ?? 0) } ?? "-") as NSString,
                            c.active_turn_fraction, c.evidence_kept_fraction))
                }
            }
            print(String(format: "turns in active tiers %.3f, evidence turns kept %.3f", report.active_turn_fraction, report.evidence_kept_fraction))
            func fraction(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "-" }
            print(
                "gate: evidence turns kept as facts \(fraction(report.evidence_fact_fraction)), other turns \(fraction(report.other_fact_fraction)); "
                    + "\(report.semantic_memories) semantic memories")
            let ingest = report.ingest_turns_per_s.map { String(format: "ingest %.1f turns/s", $0) } ?? "no ingest (--questions-only)"
            print(ingest + String(format: ", recall p50 %.1f ms, p99 %.1f ms", report.recall_p50_ms, report.recall_p99_ms))
        }
    }
}
