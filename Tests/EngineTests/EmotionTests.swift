import Engine
import Foundation
import Inference
import Projections
import Testing
import Training

/// The emotion head (recipe 14): the gate's emotional weight, learned from the curriculum's emotional
/// disclosures, recorded in the decision and lengthening the memory's stability.
@Suite struct EmotionHeadTests {
    @Test func disclosuresReplaceSmallTalkOnly() {
        let plain = Curriculum(seed: 2, count: 25), felt = Curriculum(seed: 2, count: 25, emotions: true)
        var disclosures = 0, turns = 0
        for (p, f) in zip(plain.conversations, felt.conversations) {
            #expect(p.questions == f.questions && p.sessions.map(\.time) == f.sessions.map(\.time))
            for (ps, fs) in zip(p.sessions, f.sessions) {
                #expect(ps.turns.map(\.id) == fs.turns.map(\.id) && ps.turns.map(\.speaker) == fs.turns.map(\.speaker))
                for (a, b) in zip(ps.turns, fs.turns) {
                    turns += 1
                    if b.emotional == true {
                        disclosures += 1
                        #expect(a.fact == nil && b.fact == "life" && a.text != b.text)
                    } else {
                        #expect(a == b)
                    }
                }
            }
        }
        // About one small-talk turn in twelve.
        #expect(disclosures >= 40 && Double(disclosures) / Double(turns) < 0.08, "\(disclosures) of \(turns)")
    }

    /// Recipe 15: a quarter of the plain small talk is said warmly (thanks, support, encouragement),
    /// still small talk; every other turn and every question is the same.
    @Test func warmthReplacesSmallTalkOnly() {
        let plain = Curriculum(seed: 2, count: 25, emotions: true), warm = Curriculum(seed: 2, count: 25, emotions: true, warmth: true)
        var warmed = 0, smallTalk = 0, named = 0
        for (p, w) in zip(plain.conversations, warm.conversations) {
            #expect(p.questions == w.questions)
            for (ps, ws) in zip(p.sessions, w.sessions) {
                #expect(ps.turns.map(\.id) == ws.turns.map(\.id) && ps.turns.map(\.fact) == ws.turns.map(\.fact))
                for (a, b) in zip(ps.turns, ws.turns) {
                    if a.fact == nil { smallTalk += 1 }
                    guard a.text != b.text else { continue }
                    warmed += 1
                    #expect(a.fact == nil && b.fact == nil && b.emotional == nil)
                    let other = p.speakers.first { $0 != b.speaker } ?? ""
                    if b.text.hasPrefix(other + ", ") { named += 1 }
                    #expect(Curriculum.warmTexts.contains { b.text == $0 || b.text.hasSuffix(String($0.dropFirst())) }, "\(b.text)")
                }
            }
        }
        // A quarter of the plain small talk, which is about half the turns that state no fact (the rest are
        // reactions, topic chatter and follow-up questions): seed 2, 228 of 1,716.
        let share = Double(warmed) / Double(smallTalk)
        #expect(share > 0.09 && share < 0.18 && named > 0 && named < warmed / 2, "\(warmed) of \(smallTalk) small talk, \(named) named")
        #expect(Trainer.Options().warmth == true && Trainer.Options().emotions == true)
    }

    @Test func feltMemoriesWeighMoreAndLastLonger() async throws {
        guard !SharedEncoder.skip else { return }
        let encoder = try #require(SharedEncoder.encoder, "the all-MiniLM-L6-v2 package is missing: run scripts/setup.sh")
        let turns = Trainer.gateTurns(Curriculum(seed: 2, count: 25, emotions: true), encoder: encoder)
        let (gate, _) = Trainer.fitGate(turns.map { ($0.x, $0.kind != nil, $0.heldOut) })
        let (emotion, metrics) = Trainer.fitEmotion(turns)
        #expect(metrics.held_out_turns > 300 && metrics.held_out_emotional_recall >= 0.9 && metrics.held_out_other_recall >= 0.95, "\(metrics)")

        let dir = TempStore()
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        _ = try Trainer.writeModel(
            encoder: encoder.model, head: ContextTests.fusedOnlyHead(), gate: gate, emotion: emotion, manifestJSON: Array("{}".utf8), to: dir.path + "/e.psm")
        let file = try ModelFile(path: dir.path + "/e.psm")
        let policy = try PSMPolicy(model: file)
        #expect(policy.emotionHead != nil)
        let engine = try Engine(directory: dir.path + "/store", encoder: try Encoder(model: file), policy: policy)
        defer { engine.close() }
        let u = try UserRef(tenant: "t", user: "u")
        // Sentences that are not curriculum templates.
        let texts = [
            "My father passed away this morning and I can't stop shaking.", "We just found out we're having twins, I'm crying happy tears!",
            "I work as an accountant at a small firm in Leeds.", "My favorite snack is salted almonds.", "Haha ok, talk to you later!",
        ]
        var weights: [Double] = [], stabilities: [UInt64] = [], types: [MemoryType] = []
        for (i, text) in texts.enumerated() {
            let o = try await engine.observe(u, .init(text: text, speaker: "Rosa"), at: t0 + Int64(i) * minute)
            let id = try #require(o.memory)
            let m = try engine.memory(u, id)
            weights.append(m.record.emotionalWeight.value)
            stabilities.append(m.record.stability)
            types.append(m.record.type)
            // The decision records the weight as its last score.
            guard case .gated(let g) = try engine.history(u, id)[0].event else { Issue.record("first event is not gated"); continue }
            #expect(g.scores.last == m.record.emotionalWeight && g.emotionalWeight == m.record.emotionalWeight)
        }
        #expect(weights[0] >= 0.5 && weights[1] >= 0.5, "\(weights)")
        #expect(weights[2...].allSatisfy { $0 < 0.5 }, "\(weights)")
        // A felt fact lasts longer than a plain one: stability × (1 + weight).
        #expect(types[0] == .fact && types[2] == .fact, "\(types)")
        #expect(stabilities[0] > stabilities[2] && stabilities[2] < 2 * PSMPolicy.factStability, "\(stabilities)")
        for i in texts.indices {
            let base = types[i] == .smallTalk ? PSMPolicy.chatStability : PSMPolicy.factStability
            #expect(stabilities[i] == PSMPolicy.emotionalStability(base, weight: Fixed(weights[i])))
        }
        let replay = try Replayer.verify(journal: engine.journal, decider: engine.decider, scratch: dir.path + "/replay")
        #expect(replay.divergent == 0 && replay.checked == texts.count)

        // An emotion head needs the gate head, and its shape is checked.
        _ = try Trainer.writeModel(encoder: encoder.model, head: ContextTests.fusedOnlyHead(), emotion: emotion, manifestJSON: Array("{}".utf8), to: dir.path + "/bad.psm")
        do { _ = try PSMPolicy(model: try ModelFile(path: dir.path + "/bad.psm")); Issue.record("an emotion head without a gate head loaded") } catch {
            #expect("\(error)".contains("needs the gate head"), "\(error)")
        }
    }

    @Test func emotionalStabilityIsExactAndCapped() {
        #expect(PSMPolicy.emotionalStability(1_000, weight: .zero) == 1_000)
        #expect(PSMPolicy.emotionalStability(1_000, weight: .one) == 2_000)
        #expect(PSMPolicy.emotionalStability(1_000, weight: Fixed(0.25)) == 1_250)
        #expect(PSMPolicy.emotionalStability(3, weight: Fixed(0.5)) == 5)  // 4.5 rounds up
        #expect(PSMPolicy.emotionalStability(1_000, weight: Fixed(-1)) == 1_000 && PSMPolicy.emotionalStability(1_000, weight: Fixed(3)) == 2_000)
        #expect(PSMPolicy.emotionalStability(MemoryEvent.maxStability, weight: .one) == MemoryEvent.maxStability)
    }
}
