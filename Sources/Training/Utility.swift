import Engine
import Foundation
import Inference
import Journal
import Projections

/// Learning from utility (SPEC.md §12.8): recalls followed by feedback in a journal become labelled
/// examples for the recall head — helped is positive, irrelevant negative, corrected a stronger
/// negative — and the head is fine-tuned from the model's weights into a new model version. The same
/// examples, with each memory's strength at the recall, calibrate decay: the stability scale under which
/// the memories' strengths best predict which were helped.
public enum UtilityLearning {
    public struct Example: Sendable {
        public var recall: EventID
        public var features: [Double]
        public var label: Bool
        public var weight: Double
        /// The memory's decay state at the recall: strength at its last anchor, seconds since then, and
        /// stability (seconds); its strength was `anchor · exp(−elapsed / stability)`.
        public var anchor: Double = 1
        public var elapsed: Double = 0
        public var stability: Double = 1

        public init(recall: EventID, features: [Double], label: Bool, weight: Double, anchor: Double = 1, elapsed: Double = 0, stability: Double = 1) {
            self.recall = recall; self.features = features; self.label = label; self.weight = weight
            self.anchor = anchor; self.elapsed = elapsed; self.stability = stability
        }
    }

    public struct Report: Sendable, Codable {
        public var base_model: String
        public var recalls_with_feedback: Int
        public var examples: Int
        public var helped: Int
        public var irrelevant: Int
        public var corrected: Int
        /// Fraction of (helped, not helped) pairs of one recall that the head orders correctly.
        public var pair_accuracy_before: Double
        public var pair_accuracy_after: Double
        public var epochs: Int
        public var learning_rate: Double
        public var anchor: Double
        /// Decay: the base model's stability scale, the one written, and the weighted log-likelihood of
        /// the feedback under each scale tried (keys: the factor on the base's scale).
        public var stability_scale_base: Double
        public var stability_scale: Double
        public var decay_log_likelihood: [String: Double]
    }

    /// Walks `journal`: each recall request's candidates are recomputed on the state just before it (as
    /// replay does), and each later feedback labels the features of the memory it names.
    public static func examples(_ journal: Journal, decider: Decider, scratch: String) throws -> [Example] {
        try? FileManager.default.removeItem(atPath: scratch)
        let state = try ProjectionStore(directory: scratch)
        defer {
            state.close()
            try? FileManager.default.removeItem(atPath: scratch)
        }
        var features: [EventID: [ID128: (x: [Double], decay: (Double, Double, Double))]] = [:]
        var out: [Example] = []
        let names = StreamNames(journal)
        let end = try journal.stats().lastPosition
        var from: Position = 1
        while from <= end {
            let page = try journal.read(from: from, limit: 1024)
            guard let last = page.last else { break }
            for e in page {
                guard let user = try names.user(e.header.streamID) else { continue }
                switch e.header.eventType {
                case MemoryEventType.recallRequest.rawValue:
                    guard case .recallRequest(let r)? = try journal.readablePayload(of: e).flatMap({ try MemoryEvent.decode(type: e.header.eventType, payload: $0) }) else { continue }
                    try state.catchUp(journal, through: e.position - 1)
                    let time = e.header.eventTime
                    let q = decider.recallQuery(r.query, k: Int(r.k), at: time)
                    var candidates = try state.candidates(user, q)
                    decider.tokens?.fill(&candidates, query: r.query)
                    var byMemory: [ID128: (x: [Double], decay: (Double, Double, Double))] = [:]
                    for (c, x) in zip(candidates, RecallFeatures.vectors(candidates, query: r.query, at: time)) {
                        let m = c.view.record
                        byMemory[c.memory] = (x, (m.anchorStrength.value, Double(max(0, time - m.anchorTime)) / 1_000_000, Double(m.stability)))
                    }
                    features[e.header.eventID] = byMemory
                case MemoryEventType.feedback.rawValue:
                    guard case .feedback(let f)? = try journal.readablePayload(of: e).flatMap({ try MemoryEvent.decode(type: e.header.eventType, payload: $0) }),
                        let x = features[f.recall]?[f.memory]
                    else { continue }
                    out.append(
                        Example(
                            recall: f.recall, features: x.x, label: f.kind == .helped, weight: f.kind == .corrected ? 2 : 1, anchor: x.decay.0,
                            elapsed: x.decay.1, stability: x.decay.2))
                default:
                    continue
                }
            }
            from = last.position + 1
        }
        return out
    }

    /// Fraction of (positive, negative) pairs within one recall that `head` scores in the right order.
    public static func pairAccuracy(_ examples: [Example], _ head: LinearHead) -> Double {
        var right = 0, total = 0
        let byRecall = Dictionary(grouping: examples, by: \.recall)
        for (_, ex) in byRecall.sorted(by: { $0.key < $1.key }) {
            for p in ex where p.label {
                for n in ex where !n.label {
                    total += 1
                    if head.score(p.features) > head.score(n.features) { right += 1 }
                }
            }
        }
        return total == 0 ? 1 : (Double(right) / Double(total) * 1e4).rounded() / 1e4
    }

    /// Gradient descent on the weighted logistic loss from `base`, with an L2 pull towards `base`'s
    /// weights (`anchor`) so a little feedback adjusts the head without forgetting the curriculum.
    public static func fineTune(_ base: LinearHead, _ examples: [Example], epochs: Int = 200, learningRate: Double = 0.2, anchor: Double = 0.05) -> LinearHead {
        var w = base.weights, b = base.bias
        let n = w.count
        let xs = examples.map { e in (0..<n).map { (e.features[$0] - base.mean[$0]) / base.scale[$0] } }
        guard !examples.isEmpty else { return base }
        for _ in 0..<epochs {
            var gw = [Double](repeating: 0, count: n), gb = 0.0, total = 0.0
            for (x, e) in zip(xs, examples) {
                var z = b
                for i in 0..<n { z += w[i] * x[i] }
                let p = 1 / (1 + DeterministicMath.exp(-z))
                let d = (p - (e.label ? 1 : 0)) * e.weight
                for i in 0..<n { gw[i] += d * x[i] }
                gb += d
                total += e.weight
            }
            for i in 0..<n { w[i] -= learningRate * (gw[i] / total + anchor * (w[i] - base.weights[i])) }
            b -= learningRate * gb / total
        }
        return LinearHead(weights: w.map { Double(Float($0)) }, bias: Double(Float(b)), mean: base.mean, scale: base.scale)
    }

    /// The factors tried on the base's stability scale: 2^(i/2) for i = −8…8 (1/16 … 16).
    public static let decayFactors: [Double] = (-8...8).map { DeterministicMath.exp(Double($0) / 2 * 0.6931471805599453) }
    /// How much better (in weighted log-likelihood) a factor must explain the feedback than the base's
    /// scale to replace it: 1.92, half the 95% point of χ² with one degree of freedom.
    public static let decayMargin = 1.92

    /// Decay from utility, in the manner of half-life regression (Settles and Meeder 2016): a memory's
    /// strength at the recall is read as the probability that it is still useful, so under a factor f on
    /// every stability the feedback's weighted log-likelihood is Σ w·[y·ln p + (1 − y)·ln(1 − p)] with
    /// p = anchor · exp(−elapsed / (f · stability)) clamped to [0.01, 0.99] (helped y = 1; irrelevant and
    /// corrected y = 0, corrected weighing 2). The best factor (ties: the one nearest 1) is taken when it
    /// beats f = 1 by ``decayMargin``, else 1; without both helped and not-helped feedback, 1. Since
    /// the feedback rules scale stability proportionally, a factor on the stability a memory starts with
    /// is, to first order, the same factor on every later stability (spaced reinforcement's s + min(Δ, s)
    /// is not proportional, so this is an approximation there).
    public static func fitDecay(_ examples: [Example]) -> (factor: Double, logLikelihood: [String: Double]) {
        func ll(_ f: Double) -> Double {
            var total = 0.0
            for e in examples {
                let p = min(0.99, max(0.01, e.anchor * DeterministicMath.exp(-e.elapsed / (f * e.stability))))
                total += e.weight * (e.label ? DeterministicMath.log(p) : DeterministicMath.log(1 - p))
            }
            return total
        }
        var table: [String: Double] = [:]
        let base = ll(1)
        var best = (i: 0, ll: base)
        for (i, f) in zip(-8...8, decayFactors) {
            let v = ll(f)
            table[String(format: "%.4f", f)] = (v * 1e4).rounded() / 1e4
            if v > best.ll || (v == best.ll && abs(i) < abs(best.i)) { best = (i, v) }
        }
        guard examples.contains(where: \.label), examples.contains(where: { !$0.label }), best.ll >= base + decayMargin else { return (1, table) }
        return (decayFactors[best.i + 8], table)
    }

    /// Reads the feedback of `journal`, fine-tunes `model`'s recall head and writes the new version.
    public static func train(journal: Journal, model: ModelFile, out: String, scratch: String, epochs: Int = 200) throws -> (id: String, report: Report) {
        let policy = try PSMPolicy(model: model)
        let decider = Decider(policy: policy, encoder: try Encoder(model: model))
        let ex = try examples(journal, decider: decider, scratch: scratch)
        guard !ex.isEmpty else { throw EngineError.invalidArgument("the journal has no feedback on recalled memories to learn from") }
        let head = fineTune(policy.recall, ex, epochs: epochs)
        let decay = fitDecay(ex)
        let scale = min(PSMPolicy.stabilityScaleRange.upperBound, max(PSMPolicy.stabilityScaleRange.lowerBound, Double(Float(policy.stabilityScale * decay.factor))))
        let report = Report(
            base_model: model.id, recalls_with_feedback: Set(ex.map(\.recall)).count, examples: ex.count, helped: ex.filter(\.label).count,
            irrelevant: ex.filter { !$0.label && $0.weight == 1 }.count, corrected: ex.filter { $0.weight == 2 }.count,
            pair_accuracy_before: pairAccuracy(ex, policy.recall), pair_accuracy_after: pairAccuracy(ex, head), epochs: epochs, learning_rate: 0.2, anchor: 0.05,
            stability_scale_base: policy.stabilityScale, stability_scale: scale, decay_log_likelihood: decay.logLikelihood)
        let base = PSMPolicy.manifest(model) ?? "{}"
        struct Manifest: Encodable { var utility: Report; var base_manifest: String }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json = Array(try enc.encode(Manifest(utility: report, base_manifest: base)))
        // The base's pairwise heads, kept as they are (their training metrics are in the base's manifest).
        let interference = policy.interference.map { Trainer.InterferenceResult(kept: $0, threshold: policy.interferenceThreshold) }
        let relations = policy.relationHeads.map { Trainer.RelationResult(kept: $0, thresholds: policy.relationThresholds) }
        let consolidation = policy.consolidation.map { Trainer.InterferenceResult(kept: $0, threshold: policy.consolidationThreshold) }
        let (id, _) = try Trainer.writeModel(
            encoder: model, head: head, gate: policy.gateHead, gateTypes: policy.gateTypeHeads, emotion: policy.emotionHead, interference: interference,
            relations: relations, consolidation: consolidation, context: policy.readsContext,
            fusion: model.tensors[PSMPolicy.fusionTensor] != nil ? policy.fusionConstant : nil, spread: policy.spread, spaced: policy.spacedReinforcement, recurrence: policy.consolidatesRecurrences,
            interferenceFactsOnly: policy.interferenceFactsOnly,
            episodicLifespanDays: model.tensors[PSMPolicy.lifespanTensor] != nil ? try model.f32(PSMPolicy.lifespanTensor, [1]).map(Double.init)[0] : nil,
            stabilityScale: scale, manifestJSON: json, to: out)
        return (id, report)
    }
}
