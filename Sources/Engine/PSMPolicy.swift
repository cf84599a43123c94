import Foundation
import Inference
import Journal
import Projections

/// The features the recall-weighting head sees for one candidate (SPEC.md §12.7). Computed with
/// IEEE operations in a fixed order and `DeterministicMath`, so a weight depends only on its inputs.
public enum RecallFeatures {
    public static let names = [
        "lexical_log1p", "lexical_hit", "lexical_rrf", "dense", "dense_hit", "dense_rrf", "strength", "age_log1p_days",
        "recalls_log1p", "confidence", "valid", "semantic", "archival", "speaker_named",
    ]
    public static var count: Int { names.count }

    /// The query's terms, computed once per query.
    public static func queryTerms(_ query: String) -> Set<String> { Set(Analyzer.terms(query)) }

    public static func vector(_ c: Candidate, queryTerms: Set<String>, at: Int64) -> [Double] {
        let m = c.view.record
        let ageDays = Double(max(0, at - m.createdAt)) / 86_400_000_000
        let speakerNamed = !m.speaker.isEmpty && !queryTerms.isDisjoint(with: Analyzer.terms(m.speaker))
        return [
            DeterministicMath.log(1 + max(0, c.lexical)), c.lexicalRank > 0 ? 1 : 0, c.lexicalRank > 0 ? 60 / (60 + Double(c.lexicalRank)) : 0,
            c.dense, c.denseRank > 0 ? 1 : 0, c.denseRank > 0 ? 60 / (60 + Double(c.denseRank)) : 0, c.view.strength,
            DeterministicMath.log(1 + ageDays), DeterministicMath.log(1 + Double(m.recallCount)), m.confidence.value, m.isValid ? 1 : 0,
            m.tier == .semantic ? 1 : 0, m.tier == .archival ? 1 : 0, speakerNamed ? 1 : 0,
        ]
    }
}

/// A linear head over standardized features: `score = bias + Σ w[i] · (x[i] − mean[i]) / scale[i]`.
public struct LinearHead: Sendable, Equatable {
    public var weights: [Double]
    public var bias: Double
    public var mean: [Double]
    public var scale: [Double]

    public init(weights: [Double], bias: Double, mean: [Double], scale: [Double]) {
        self.weights = weights; self.bias = bias; self.mean = mean; self.scale = scale
    }

    public func score(_ x: [Double]) -> Double {
        var s = bias
        for i in 0..<weights.count { s += weights[i] * ((x[i] - mean[i]) / scale[i]) }
        return s
    }
}

/// The Personal Small Model as a policy: the encoder plus learned heads from one model file (its id
/// is what every decision records). Heads not trained yet fall back to the rule baseline's decisions,
/// recorded under this model's id.
public struct PSMPolicy: MemoryPolicy {
    public let modelID: [UInt8]
    public let recall: LinearHead
    let base = RuleBaseline()

    public static let tensorNames = (weights: "psm.recall.weight", bias: "psm.recall.bias", mean: "psm.recall.mean", scale: "psm.recall.scale")
    public static let manifestTensor = "psm.manifest"

    /// Loads the heads of a PSM model file; throws when it has none (a bare encoder).
    public init(model: ModelFile) throws {
        let n = RecallFeatures.count
        guard model.tensors[PSMPolicy.tensorNames.weights] != nil else {
            throw EngineError.invalidArgument("\(model.path) has no PSM heads (psm.recall.*): it is a bare encoder; run `psm train`")
        }
        func f(_ name: String, _ shape: [Int]) throws -> [Double] {
            do { return try model.f32(name, shape).map(Double.init) } catch { throw EngineError.invalidArgument("\(model.path): \(error)") }
        }
        let w = try f(PSMPolicy.tensorNames.weights, [n]), b = try f(PSMPolicy.tensorNames.bias, [1])
        let mean = try f(PSMPolicy.tensorNames.mean, [n]), scale = try f(PSMPolicy.tensorNames.scale, [n])
        guard scale.allSatisfy({ $0 > 0 && $0.isFinite }), w.allSatisfy(\.isFinite), mean.allSatisfy(\.isFinite), b[0].isFinite else {
            throw EngineError.invalidArgument("\(model.path): recall head has non-finite values or a non-positive scale")
        }
        recall = LinearHead(weights: w, bias: b[0], mean: mean, scale: scale)
        modelID = Decider.bytes(hex: model.id)
    }

    /// The training manifest stored in the model file (JSON), if any.
    public static func manifest(_ model: ModelFile) -> String? {
        guard let info = model.tensors[manifestTensor], let bytes = try? model.i8(manifestTensor, info.shape) else { return nil }
        return String(decoding: bytes.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func gate(_ input: GateInput) -> GateDecision { base.gate(input) }

    public func weigh(_ candidates: [Candidate], query: String, at: Int64) -> [Fixed] {
        let terms = RecallFeatures.queryTerms(query)
        return candidates.map { c in
            let s = recall.score(RecallFeatures.vector(c, queryTerms: terms, at: at))
            return Fixed(max(-1e6, min(1e6, s)))
        }
    }

    public func feedback(_ kind: FeedbackKind, on memory: MemoryView) -> MemoryEvent? { base.feedback(kind, on: memory) }
    public func sleep(_ input: SleepInput) -> [MemoryEvent] { base.sleep(input) }
}
