import Foundation
import Inference

/// A tiny BERT with seeded random weights, written in our format by the test itself.
enum TinyModel {
    static let config = ModelConfig(
        vocabSize: 40, hidden: 24, layers: 2, heads: 3, intermediate: 40, maxPositions: 32, typeVocabSize: 2,
        maxSequenceLength: 16, layerNormEps: 1e-12, source: "tiny-test")

    static var vocabulary: [String] {
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + "abcdefghijklmnopqrstuvwxyz".map { String($0) } + ["##a", "##b", "##c", "the", "cat", "sat", "on", "mat", "##t"]
    }

    struct RNG { var s: UInt64; mutating func next() -> Float { s = s &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: s >> 11) % 2001 - 1000) / 1000 } }

    static func writer(seed: UInt64 = 1) -> ModelFileWriter {
        var rng = RNG(s: seed)
        let c = config, h = c.hidden, i = c.intermediate
        var w = ModelFileWriter(config: c, vocabulary: vocabulary)
        func rand(_ n: Int, _ scale: Float = 1) -> [Float] { (0..<n).map { _ in rng.next() * scale } }
        func linear(_ name: String, k: Int, n: Int) {
            let (q, s, _) = Quantizer.rows(rand(n * k, 0.3), rows: n, cols: k)
            var t = [Int8](repeating: 0, count: q.count)
            for r in 0..<n { for col in 0..<k { t[col * n + r] = q[r * k + col] } }
            w.add(name + ".weight", i8: t, shape: [k, n])
            w.add(name + ".weight.scale", f32: s, shape: [n])
            w.add(name + ".bias", f32: rand(n, 0.1), shape: [n])
        }
        let (wq, ws, _) = Quantizer.rows(rand(c.vocabSize * h), rows: c.vocabSize, cols: h)
        w.add("embeddings.word_embeddings.weight", i8: wq, shape: [c.vocabSize, h])
        w.add("embeddings.word_embeddings.weight.scale", f32: ws, shape: [c.vocabSize])
        w.add("embeddings.position_embeddings.weight", f32: rand(c.maxPositions * h, 0.5), shape: [c.maxPositions, h])
        w.add("embeddings.token_type_embeddings.weight", f32: rand(c.typeVocabSize * h, 0.5), shape: [c.typeVocabSize, h])
        w.add("embeddings.LayerNorm.weight", f32: rand(h, 0.2).map { $0 + 1 }, shape: [h])
        w.add("embeddings.LayerNorm.bias", f32: rand(h, 0.1), shape: [h])
        for l in 0..<c.layers {
            let p = "encoder.layer.\(l)."
            for n in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] { linear(p + n, k: h, n: h) }
            linear(p + "intermediate.dense", k: h, n: i)
            linear(p + "output.dense", k: i, n: h)
            for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
                w.add(p + n + ".weight", f32: rand(h, 0.2).map { $0 + 1 }, shape: [h])
                w.add(p + n + ".bias", f32: rand(h, 0.1), shape: [h])
            }
        }
        return w
    }

    static func write(to path: String, seed: UInt64 = 1) throws -> ModelFile {
        _ = try writer(seed: seed).write(to: path)
        return try ModelFile(path: path)
    }
}

func tempPath(_ name: String) -> String { NSTemporaryDirectory() + "psm-\(getpid())-\(UInt64.random(in: 0...UInt64.max))-\(name)" }
