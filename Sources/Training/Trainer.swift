import Engine
import Foundation
import Inference
import Journal
import Projections

/// Trains the PSM's heads (SPEC.md §12.7) and writes a PSM model file: the encoder's tensors plus the
/// heads and the training manifest. Deterministic: the same encoder, seed and options give the same
/// file bytes, hence the same model id.
public enum Trainer {
    /// Bumped whenever the curriculum, the features, the training or the baseline decisions it trains
    /// against change, so a cached default model from an older recipe is rebuilt, not reused.
    public static let recipe = 2
    public struct Options: Sendable, Codable {
        public var seed: UInt64 = 1
        public var conversations = 48
        /// Every `heldOutEvery`-th conversation is held out for the manifest's metrics.
        public var heldOutEvery = 5
        public var epochs = 300
        public var learningRate = 0.5
        public var l2 = 1e-3
        public init() {}
    }

    /// One question's candidates: features and whether each reaches an evidence turn.
    public struct Group: Sendable {
        public var features: [[Double]]
        public var labels: [Bool]
        public var baselineWeights: [Int64]
        public var heldOut: Bool
    }

    public struct Metrics: Sendable, Codable, Equatable {
        public var questions: Int
        public var r_any_1: Double
        public var r_any_10: Double
        public var mrr: Double
    }

    public struct Report: Sendable, Codable {
        public var curriculum_digest: String
        public var options: Options
        public var encoder: String
        public var questions: Int
        public var examples: Int
        public var positives: Int
        public var held_out_baseline: Metrics
        public var held_out_trained: Metrics
        public var weights: [String: Double]
        public var bias: Double
    }

    /// Ingests the curriculum through an engine (rule baseline, the given encoder) in `scratch` and
    /// collects every question's recall candidates with their features and labels.
    public static func collect(_ curriculum: Curriculum, encoder: Encoder, options: Options, scratch: String, progress: ((Int, Int) -> Void)? = nil) async throws -> [Group] {
        try? FileManager.default.removeItem(atPath: scratch)
        let engine = try Engine(directory: scratch, encoder: encoder)
        defer {
            engine.close()
            try? FileManager.default.removeItem(atPath: scratch)
        }
        var groups: [Group] = []
        let base = RuleBaseline()
        for (ci, c) in curriculum.conversations.enumerated() {
            let user = try UserRef(tenant: "curriculum", user: c.id)
            var last: Int64 = 0
            for s in c.sessions {
                var t = max(s.time, last + 1_000_000)
                for turn in s.turns {
                    _ = try await engine.observe(user, .init(text: turn.text, session: "session_\(s.index)", speaker: turn.speaker, sourceID: turn.id), at: t)
                    last = t
                    t += 60_000_000
                }
                _ = try await engine.sleep(user, at: last + 1_000_000)
                last += 1_000_000
            }
            let askAt = last + 86_400_000_000
            for q in c.questions {
                let candidates = try engine.projections.candidates(user, CandidateQuery(text: q.text, vector: engine.embed(q.text), at: askAt, perList: 50))
                let terms = RecallFeatures.queryTerms(q.text)
                let evidence = Set(q.evidence)
                groups.append(
                    Group(
                        features: candidates.map { RecallFeatures.vector($0, queryTerms: terms, at: askAt) },
                        labels: candidates.map { !evidence.isDisjoint(with: $0.view.record.sourceIDs) },
                        baselineWeights: base.weigh(candidates, query: q.text, at: askAt).map(\.raw),
                        heldOut: ci % options.heldOutEvery == options.heldOutEvery - 1))
            }
            progress?(ci + 1, curriculum.conversations.count)
        }
        return groups
    }

    /// Logistic regression by full-batch gradient descent over the training groups, in a fixed order,
    /// positives weighted to balance the classes. Features are standardized with the training mean/scale.
    public static func fit(_ groups: [Group], options: Options) -> LinearHead {
        let n = RecallFeatures.count
        let train = groups.filter { !$0.heldOut }
        var rows: [[Double]] = [], labels: [Double] = []
        for g in train {
            rows += g.features
            labels += g.labels.map { $0 ? 1 : 0 }
        }
        guard !rows.isEmpty else { return LinearHead(weights: Array(repeating: 0, count: n), bias: 0, mean: Array(repeating: 0, count: n), scale: Array(repeating: 1, count: n)) }
        var mean = [Double](repeating: 0, count: n), scale = [Double](repeating: 0, count: n)
        for r in rows { for i in 0..<n { mean[i] += r[i] } }
        for i in 0..<n { mean[i] /= Double(rows.count) }
        for r in rows { for i in 0..<n { scale[i] += (r[i] - mean[i]) * (r[i] - mean[i]) } }
        for i in 0..<n { scale[i] = (scale[i] / Double(rows.count)).squareRoot(); if !(scale[i] > 1e-9) { scale[i] = 1 } }
        let x = rows.map { r in (0..<n).map { (r[$0] - mean[$0]) / scale[$0] } }
        let positives = labels.reduce(0, +)
        let posWeight = positives > 0 ? (Double(labels.count) - positives) / positives : 1
        var w = [Double](repeating: 0, count: n), b = 0.0
        for _ in 0..<options.epochs {
            var gw = [Double](repeating: 0, count: n), gb = 0.0, total = 0.0
            for (xi, y) in zip(x, labels) {
                var z = b
                for i in 0..<n { z += w[i] * xi[i] }
                let p = 1 / (1 + DeterministicMath.exp(-z))
                let weight = y > 0 ? posWeight : 1
                let d = (p - y) * weight
                for i in 0..<n { gw[i] += d * xi[i] }
                gb += d
                total += weight
            }
            for i in 0..<n { w[i] -= options.learningRate * (gw[i] / total + options.l2 * w[i]) }
            b -= options.learningRate * gb / total
        }
        // Stored as Float32: round now so the head used for metrics is the one the file holds.
        func f(_ v: Double) -> Double { Double(Float(v)) }
        return LinearHead(weights: w.map(f), bias: f(b), mean: mean.map(f), scale: scale.map(f))
    }

    /// Ranking quality on the held-out groups: by the baseline's weights, or by `head`.
    public static func evaluate(_ groups: [Group], head: LinearHead?) -> Metrics {
        let held = groups.filter(\.heldOut)
        var any1 = 0.0, any10 = 0.0, mrr = 0.0
        for g in held {
            let scores: [Double] = head.map { h in g.features.map { Double(Fixed(h.score($0)).raw) } } ?? g.baselineWeights.map(Double.init)
            let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
            if let r = order.firstIndex(where: { g.labels[$0] }) {
                if r < 1 { any1 += 1 }
                if r < 10 { any10 += 1 }
                mrr += 1 / Double(r + 1)
            }
        }
        let n = Double(max(1, held.count))
        func r3(_ v: Double) -> Double { (v / n * 1000).rounded() / 1000 }
        return Metrics(questions: held.count, r_any_1: r3(any1), r_any_10: r3(any10), mrr: r3(mrr))
    }

    /// Writes the PSM model file: every tensor of `encoder` plus the heads and the manifest.
    public static func write(encoder: ModelFile, head: LinearHead, manifest: Report, to path: String) throws -> (id: String, bytes: Int) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return try writeModel(encoder: encoder, head: head, manifestJSON: Array(try enc.encode(manifest)), to: path)
    }

    /// Writes `encoder`'s tensors (not its `psm.*` heads) plus `head` and the manifest bytes.
    public static func writeModel(encoder: ModelFile, head: LinearHead, manifestJSON json: [UInt8], to path: String) throws -> (id: String, bytes: Int) {
        var config = encoder.config
        if !config.source.hasPrefix("psm: ") { config.source = "psm: \(encoder.config.source) + recall head" }
        var w = ModelFileWriter(config: config, vocabulary: encoder.vocabulary)
        for (name, info) in encoder.tensors.sorted(by: { $0.key < $1.key }) where !name.hasPrefix("psm.") {
            switch info.dtype {
            case .f32: w.add(name, f32: Array(try encoder.f32(name, info.shape)), shape: info.shape)
            case .i8: w.add(name, i8: Array(try encoder.i8(name, info.shape)), shape: info.shape)
            }
        }
        let n = RecallFeatures.count
        w.add(PSMPolicy.tensorNames.weights, f32: head.weights.map(Float.init), shape: [n])
        w.add(PSMPolicy.tensorNames.bias, f32: [Float(head.bias)], shape: [1])
        w.add(PSMPolicy.tensorNames.mean, f32: head.mean.map(Float.init), shape: [n])
        w.add(PSMPolicy.tensorNames.scale, f32: head.scale.map(Float.init), shape: [n])
        w.add(PSMPolicy.manifestTensor, i8: json.map { Int8(bitPattern: $0) }, shape: [json.count])
        return try w.write(to: path)
    }

    /// The whole pipeline: curriculum → candidates → fit → held-out metrics → model file.
    public static func train(
        encoderFile: ModelFile, options: Options, out: String, scratch: String, progress: ((Int, Int) -> Void)? = nil
    ) async throws -> (id: String, report: Report) {
        let curriculum = Curriculum(seed: options.seed, count: options.conversations)
        let encoder = try Encoder(model: encoderFile)
        let groups = try await collect(curriculum, encoder: encoder, options: options, scratch: scratch, progress: progress)
        let head = fit(groups, options: options)
        let report = Report(
            curriculum_digest: curriculum.digest, options: options, encoder: encoderFile.id, questions: groups.count,
            examples: groups.reduce(0) { $0 + $1.labels.count }, positives: groups.reduce(0) { $0 + $1.labels.filter { $0 }.count },
            held_out_baseline: evaluate(groups, head: nil), held_out_trained: evaluate(groups, head: head),
            weights: Dictionary(uniqueKeysWithValues: zip(RecallFeatures.names, head.weights)), bias: head.bias)
        let (id, _) = try write(encoder: encoderFile, head: head, manifest: report, to: out)
        return (id, report)
    }
}
