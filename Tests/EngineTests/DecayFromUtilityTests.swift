import Foundation
import Inference
import Journal
import Projections
import Testing
import Engine
import Training

/// Decay learned from utility (SPEC.md §12.8): the stability scale under which fed-back memories'
/// strengths best predict which were helped.
@Suite struct DecayFromUtilityTests {
    static func example(_ label: Bool, elapsedDays: Double, stabilityDays: Double, weight: Double = 1) -> UtilityLearning.Example {
        UtilityLearning.Example(recall: .zero, features: [], label: label, weight: weight, anchor: 1, elapsed: elapsedDays * 86_400, stability: stabilityDays * 86_400)
    }

    /// Memories still helpful long after the decay says they faded ask for slower decay; memories
    /// judged irrelevant right after they were made ask for faster; without both kinds of feedback, or
    /// when no factor explains the feedback clearly better, the scale stays.
    @Test func fitsTheFactorTheFeedbackFavours() {
        // Helped 3 stabilities after their anchor (strength e^-3 = 0.05 under the base), irrelevant 10.
        let late = Array(repeating: Self.example(true, elapsedDays: 3, stabilityDays: 1), count: 10)
            + Array(repeating: Self.example(false, elapsedDays: 10, stabilityDays: 1), count: 5)
        let slower = UtilityLearning.fitDecay(late)
        #expect(slower.factor > 2, "\(slower)")
        #expect(slower.logLikelihood.count == 17 && slower.logLikelihood["1.0000"] != nil)
        // Irrelevant (and once corrected) a tenth of a day after creation with 30-day stabilities.
        let early = Array(repeating: Self.example(false, elapsedDays: 0.1, stabilityDays: 30), count: 10)
            + [Self.example(false, elapsedDays: 0.1, stabilityDays: 30, weight: 2), Self.example(true, elapsedDays: 0.01, stabilityDays: 30)]
        let faster = UtilityLearning.fitDecay(early)
        #expect(faster.factor < 0.5, "\(faster)")
        // Only helped feedback: nothing to calibrate against.
        #expect(UtilityLearning.fitDecay(Array(repeating: Self.example(true, elapsedDays: 3, stabilityDays: 1), count: 10)).factor == 1)
        // One helped and one irrelevant at similar ages: no factor beats the base by the margin.
        #expect(UtilityLearning.fitDecay([Self.example(true, elapsedDays: 1, stabilityDays: 1), Self.example(false, elapsedDays: 1.2, stabilityDays: 1)]).factor == 1)
        // The factors are 2^(i/2), i = -8...8, with 1 exactly in the middle.
        #expect(UtilityLearning.decayFactors.count == 17 && UtilityLearning.decayFactors[8] == 1)
        #expect(abs(UtilityLearning.decayFactors[0] - 1.0 / 16) < 1e-12 && abs(UtilityLearning.decayFactors[16] - 16) < 1e-9)
    }

    /// Through the engine: memories recalled and helped months after they were made (their strength near
    /// zero under the rule's 45-day stability) train a version with a larger stability scale; that
    /// version's gate gives new memories the scaled stability, replay agrees, and learning again from
    /// the same journal is deterministic.
    @Test func utilityLearningScalesStability() async throws {
        guard !SharedEncoder.skip else { return }
        let encoder = try #require(SharedEncoder.encoder, "the all-MiniLM-L6-v2 package is missing: run scripts/setup.sh")
        let dir = TempStore()
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        // With a consolidation head (one that never groups), which the new version must keep.
        let n = InterferenceFeatures.count(dimension: encoder.config.hidden)
        let pair = Trainer.InterferenceResult(
            kept: LinearHead(weights: [Double](repeating: 0.5, count: n), bias: 0, mean: [Double](repeating: 0, count: n), scale: [Double](repeating: 1, count: n)),
            threshold: 1e9)
        _ = try Trainer.writeModel(
            encoder: encoder.model, head: ContextTests.fusedOnlyHead(), consolidation: pair, manifestJSON: Array("{}".utf8), to: dir.path + "/v1.psm")
        let v1 = try ModelFile(path: dir.path + "/v1.psm")
        #expect(try PSMPolicy(model: v1).stabilityScale == 1)
        let engine = try Engine(directory: dir.path + "/store", encoder: try Encoder(model: v1), policy: try PSMPolicy(model: v1))
        defer { engine.close() }
        let u = try UserRef(tenant: "t", user: "u")
        let facts = [
            "My sister Lena lives in Porto with her two cats.", "I work night shifts as a nurse at the hospital.",
            "We adopted a grey kitten called Pixel last spring.", "I am allergic to shellfish, so no prawns for me.",
        ]
        for (i, f) in facts.enumerated() { _ = try await engine.observe(u, .init(text: f, speaker: "Maya"), at: t0 + Int64(i) * minute) }
        let chatter = ["Haha ok, talk to you later tonight then.", "The weather has been so grey all week here."]
        for (i, f) in chatter.enumerated() { _ = try await engine.observe(u, .init(text: f, speaker: "Maya"), at: t0 + 200 * day + Int64(i) * minute) }
        // 150 days on: each fact is asked for and helped; the chatter, fresh, is judged irrelevant.
        var at = t0 + 200 * day + day
        for q in ["Where does Maya's sister live?", "What does Maya do for work?", "What is the name of Maya's kitten?", "What is Maya allergic to?"] {
            let r = try await engine.recall(u, query: q, k: 6, at: at)
            let recall = try #require(r.recall)
            for m in r.memories {
                let text = m.candidate.view.record.text
                if facts.contains(text), q.split(separator: " ").contains(where: { w in w.count > 4 && text.lowercased().contains(w.lowercased().trimmingCharacters(in: .punctuationCharacters)) }) {
                    try await engine.feedback(u, recall: recall, memory: m.candidate.memory, kind: .helped, at: at + 1)
                } else if chatter.contains(text) {
                    try await engine.feedback(u, recall: recall, memory: m.candidate.memory, kind: .irrelevant, at: at + 1)
                }
            }
            at += minute
        }
        let (id2, report) = try UtilityLearning.train(journal: engine.journal, model: v1, out: dir.path + "/v2.psm", scratch: dir.path + "/u1")
        let (id2again, _) = try UtilityLearning.train(journal: engine.journal, model: v1, out: dir.path + "/v2b.psm", scratch: dir.path + "/u2")
        #expect(id2 == id2again)
        #expect(report.helped >= 3 && report.irrelevant >= 1 && report.stability_scale_base == 1 && report.stability_scale > 1, "\(report)")
        let v2 = try ModelFile(path: dir.path + "/v2.psm")
        let p2 = try PSMPolicy(model: v2)
        #expect(p2.stabilityScale == report.stability_scale && p2.recall.weights.count == RecallFeatures.count)
        #expect(p2.consolidation?.weights == pair.head.weights && p2.consolidationThreshold == 1e9)
        // The new version's gate: the rule's 45 days times the scale, rounded to seconds.
        let e2 = try Engine(directory: dir.path + "/store2", encoder: try Encoder(model: v2), policy: p2)
        defer { e2.close() }
        let a = try await e2.observe(u, .init(text: "I started learning the cello this winter.", speaker: "Maya"), at: t0)
        let m = try e2.memory(u, try #require(a.memory))
        #expect(m.record.stability == UInt64((45.0 * 86_400 * report.stability_scale).rounded()), "\(m.record.stability)")
        let replay = try Replayer.verify(journal: e2.journal, decider: e2.decider, scratch: dir.path + "/replay")
        #expect(replay.divergent == 0 && replay.checked == 1)
    }
}
