import Engine
import Foundation
import Inference
import Journal
import Projections
import Testing
import Training

/// The interference heads (the four-way relation head): a kept memory reinforces, refines or supersedes one of its
/// neighbours, or is unrelated to all of them (SPEC.md §12.7).
@Suite struct InterferenceTests {
    /// Refinements take the place of small talk only, name an earlier statement of the same speaker and
    /// kind, and keep its value; every other turn and every question is the same as without them.
    @Test func refinementsReplaceSmallTalkOnly() {
        let plain = Curriculum(seed: 2, count: 25, repeats: true, echoes: false)
        let refined = Curriculum(seed: 2, count: 25, repeats: true, echoes: false, refinements: true)
        var refinements = 0, smallTalk = 0
        for (p, r) in zip(plain.conversations, refined.conversations) {
            #expect(p.questions == r.questions && p.speakers == r.speakers)
            let turns = r.sessions.flatMap(\.turns)
            let position = Dictionary(uniqueKeysWithValues: turns.enumerated().map { ($1.id, $0) })
            for (a, b) in zip(p.sessions.flatMap(\.turns), turns) {
                #expect(a.id == b.id && a.speaker == b.speaker)
                if a.fact == nil { smallTalk += 1 }
                guard let target = b.refines else {
                    #expect(a == b)
                    continue
                }
                refinements += 1
                #expect(a.fact == nil && b.fact != nil && a.text != b.text)
                let i = try? #require(position[target]), j = position[b.id]
                guard let i, let j else { continue }
                let stated = turns[i]
                #expect(i < j && stated.speaker == b.speaker && stated.fact == b.fact && stated.refines == nil, "\(b.text) refines \(stated.text)")
            }
        }
        // A sixth of the small talk whose speaker has a fact with details to add.
        let share = Double(refinements) / Double(smallTalk)
        #expect(refinements >= 50 && share > 0.05 && share < 0.17, "\(refinements) of \(smallTalk)")
    }
}

extension InterferenceTests {
    /// The relation head learns the four relations from the curriculum: its calibrated thresholds keep
    /// held-out precision up (floors below). With its thresholds at 0 (each pair's highest row decides) a
    /// PSM carrying it reinforces a fact said again, flags a detail added to it as refining it, supersedes
    /// it when the speaker states a new value, and leaves the speaker's other facts alone; replay agrees.
    @Test func relationsReinforceRefineSupersede() async throws {
        guard !SharedEncoder.skip else { return }
        let encoder = try #require(SharedEncoder.encoder, "the all-MiniLM-L6-v2 package is missing: run scripts/setup.sh")
        var options = Trainer.Options()
        options.conversations = 60
        let pairs = Trainer.relationPairs(Trainer.relationCurriculum(options), encoder: encoder, context: true)
        let calibrated = Trainer.fitRelations(pairs)
        let m = calibrated.metrics
        for (name, r) in [("reinforces", m.reinforces), ("refines", m.refines), ("supersedes", m.supersedes)] {
            #expect(r.held_out_positives >= 10, "\(name): \(r)")
            #expect(r.held_out_recall == 0 || r.held_out_precision >= 0.7, "\(name): \(r)")
        }
        #expect(m.reinforces.held_out_recall >= 0.2, "\(m.reinforces)")
        #expect(Double(m.held_out_unrelated_related) <= 0.01 * Double(m.held_out_pairs), "\(m)")
        let result = Trainer.RelationResult(rows: calibrated.rows, thresholds: [0, 0, 0, 0], metrics: calibrated.metrics)

        let dir = TempStore()
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        _ = try Trainer.writeModel(
            encoder: encoder.model, head: ContextTests.fusedOnlyHead(), relations: result, context: true, interferenceFactsOnly: true,
            manifestJSON: Array("{}".utf8), to: dir.path + "/r.psm")
        let file = try ModelFile(path: dir.path + "/r.psm")
        let policy = try PSMPolicy(model: file)
        #expect(policy.relationHeads?.count == 4 && policy.interferenceFactsOnly)
        // A file with the two-way head as well, or with a negative margin, is refused.
        let twoWay = Trainer.InterferenceResult(kept: calibrated.rows[3], threshold: 1)
        _ = try Trainer.writeModel(
            encoder: encoder.model, head: ContextTests.fusedOnlyHead(), interference: twoWay, relations: result, manifestJSON: Array("{}".utf8), to: dir.path + "/both.psm")
        #expect(throws: EngineError.self) { try PSMPolicy(model: try ModelFile(path: dir.path + "/both.psm")) }
        let negative = Trainer.RelationResult(rows: calibrated.rows, thresholds: [0, -1, 0, 0], metrics: calibrated.metrics)
        _ = try Trainer.writeModel(encoder: encoder.model, head: ContextTests.fusedOnlyHead(), relations: negative, manifestJSON: Array("{}".utf8), to: dir.path + "/neg.psm")
        #expect(throws: EngineError.self) { try PSMPolicy(model: try ModelFile(path: dir.path + "/neg.psm")) }
        let engine = try Engine(directory: dir.path + "/store", encoder: try Encoder(model: file), policy: policy)
        defer { engine.close() }
        let u = try UserRef(tenant: "t", user: "u")
        var turn: Int64 = 0
        @discardableResult func say(_ text: String, _ who: String, day d: Int64, session: String) async throws -> Engine.ObserveResult {
            turn += 1
            return try await engine.observe(u, .init(text: text, session: session, speaker: who), at: t0 + d * day + minute * turn)
        }
        let city = try #require(try await say("I live in Krakow now, close to the river.", "Vera", day: 0, session: "s1").memory)
        let food = try await say("My favorite food has to be dumplings.", "Vera", day: 0, session: "s1")
        try await say("Haha, that's great! How was your week?", "Sven", day: 0, session: "s1")
        try await say("Sorry, I was busy all day.", "Sven", day: 3, session: "s2")
        let again = try await say("Like I said, I live in Krakow now, close to the river.", "Vera", day: 3, session: "s2")
        try await say("Oh wow, really?", "Sven", day: 6, session: "s3")
        let detail = try await say("The public transport in Krakow is so good I sold my car.", "Vera", day: 6, session: "s3")
        try await say("Anyway, what's new with you?", "Sven", day: 9, session: "s4")
        let moved = try await say("Guess what, I relocated to Toronto for good.", "Vera", day: 9, session: "s4")
        let cityStatements = [city, try #require(again.memory)]

        // The observe answers name each relation, and the projections hold its effect.
        #expect(food.relation == nil)
        #expect(again.relation?.relation == .reinforces && again.relation?.memory == city, "\(String(describing: again.relation))")
        #expect(detail.relation?.relation == .refines && cityStatements.contains(detail.relation?.memory ?? .zero), "\(String(describing: detail.relation))")
        #expect(moved.relation?.relation == .supersedes && cityStatements.contains(moved.relation?.memory ?? .zero), "\(String(describing: moved.relation))")
        let c = try engine.memory(u, city), d = try engine.memory(u, try #require(detail.memory)), f = try engine.memory(u, try #require(food.memory))
        #expect(c.record.reinforcements == 1, "saying the city again did not reinforce it")
        #expect(d.record.flags == ["refines:\(detail.relation?.memory ?? .zero)"], "the detail: \(d.record.flags)")
        let old = try engine.memory(u, moved.relation?.memory ?? city)
        #expect(old.record.supersededBy == moved.memory && !old.record.isValid)
        #expect(f.record.isValid && f.record.flags.isEmpty && f.record.reinforcements == 0, "the food fact was touched")
        // A retry answers with the original's memory but names no relation.
        let retry = try await engine.observe(u, .init(text: "Guess what, I relocated to Toronto for good.", session: "s4", speaker: "Vera"), at: t0 + 9 * day + minute * turn, id: moved.observation)
        #expect(retry.wasDuplicate && retry.memory == moved.memory && retry.relation == nil)
        let replay = try Replayer.verify(journal: engine.journal, decider: engine.decider, scratch: dir.path + "/replay")
        #expect(replay.divergent == 0 && replay.checked >= 5)
    }
}
