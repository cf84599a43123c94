import Foundation

/// Symmetric int8 quantization with one fp32 scale per row: `q = round(w / s)`, `s = max|w| / 127`.
public enum Quantizer {
    public struct Error: Sendable, Codable {
        /// ‖w − ŵ‖ / ‖w‖ over the tensor.
        public var relativeRMS: Double
        public var maxAbs: Double
    }

    /// Quantizes `rows × cols` values (row-major) and returns the int8 values, the per-row scales and the error.
    public static func rows(_ w: [Float], rows: Int, cols: Int) -> (q: [Int8], scales: [Float], error: Error) {
        var q = [Int8](repeating: 0, count: w.count)
        var scales = [Float](repeating: 0, count: rows)
        var num = 0.0, den = 0.0, maxAbs = 0.0
        for r in 0..<rows {
            var m: Float = 0
            for c in 0..<cols { m = max(m, abs(w[r * cols + c])) }
            let s = m > 0 ? m / 127 : 1
            scales[r] = s
            for c in 0..<cols {
                let v = w[r * cols + c]
                let qi = Int8(max(-127, min(127, (v / s).rounded(.toNearestOrEven))))
                q[r * cols + c] = qi
                let e = Double(v) - Double(Float(qi) * s)
                num += e * e
                den += Double(v) * Double(v)
                maxAbs = max(maxAbs, abs(e))
            }
        }
        return (q, scales, Error(relativeRMS: den > 0 ? (num / den).squareRoot() : 0, maxAbs: maxAbs))
    }
}

/// Reads a BERT-family sentence-transformers folder (config.json, vocab.txt, model.safetensors,
/// optional sentence_bert_config.json, tokenizer_config.json, 1_Pooling/config.json, modules.json) and
/// writes a PSM model file (SPEC.md §12.4).
public struct ModelImporter {
    public struct Report: Sendable, Codable {
        public var id: String
        public var bytes: Int
        public var config: ModelConfig
        public var tensors: [TensorReport]
    }
    public struct TensorReport: Sendable, Codable {
        public var name: String
        public var shape: [Int]
        public var dtype: String
        public var error: Quantizer.Error?
    }

    public let directory: String
    public init(directory: String) { self.directory = directory }

    func json(_ name: String, required: Bool) throws -> [String: Any]? {
        let path = directory + "/" + name
        guard FileManager.default.fileExists(atPath: path) else {
            if required { throw InferenceError("\(directory): \(name) is missing (expected a BERT-family sentence-transformers folder)") }
            return nil
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count <= 16 << 20, let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw InferenceError("\(path): not a JSON object")
        }
        return obj
    }

    public func config() throws -> ModelConfig {
        let c = try json("config.json", required: true)!
        func int(_ key: String) throws -> Int {
            guard let v = c[key] as? Int else { throw InferenceError("\(directory)/config.json: \(key) is missing or not an integer") }
            return v
        }
        let type = c["model_type"] as? String ?? "?"
        guard ["bert"].contains(type) else { throw InferenceError("\(directory)/config.json: model_type \(type), expected bert") }
        let act = c["hidden_act"] as? String ?? "gelu"
        guard act == "gelu" else { throw InferenceError("\(directory)/config.json: hidden_act \(act), expected gelu") }
        if let pet = c["position_embedding_type"] as? String, pet != "absolute" {
            throw InferenceError("\(directory)/config.json: position_embedding_type \(pet), expected absolute")
        }
        let st = try json("sentence_bert_config.json", required: false)
        let tok = try json("tokenizer_config.json", required: false)
        let pool = try json("1_Pooling/config.json", required: false)
        let modulesData = (try? Data(contentsOf: URL(fileURLWithPath: directory + "/modules.json"))).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [[String: Any]] }
        let maxPositions = try int("max_position_embeddings")
        let lower = tok?["do_lower_case"] as? Bool ?? true
        var pooling = ModelConfig.Pooling.mean
        if let pool {
            if pool["pooling_mode_cls_token"] as? Bool == true { pooling = .cls }
            else if pool["pooling_mode_mean_tokens"] as? Bool != true {
                throw InferenceError("\(directory)/1_Pooling/config.json: only mean or CLS pooling is supported")
            }
        }
        let normalize = modulesData.map { $0.contains { ($0["type"] as? String)?.hasSuffix("Normalize") == true } } ?? true
        let config = ModelConfig(
            vocabSize: try int("vocab_size"), hidden: try int("hidden_size"), layers: try int("num_hidden_layers"),
            heads: try int("num_attention_heads"), intermediate: try int("intermediate_size"), maxPositions: maxPositions,
            typeVocabSize: c["type_vocab_size"] as? Int ?? 2,
            maxSequenceLength: min(st?["max_seq_length"] as? Int ?? maxPositions, maxPositions),
            layerNormEps: c["layer_norm_eps"] as? Double ?? 1e-12, pooling: pooling, normalize: normalize, lowerCase: lower,
            stripAccents: tok?["strip_accents"] as? Bool ?? lower, tokenizeChineseChars: tok?["tokenize_chinese_chars"] as? Bool ?? true,
            source: (c["_name_or_path"] as? String).map { String($0.prefix(200)) } ?? URL(fileURLWithPath: directory).lastPathComponent)
        try config.validate()
        return config
    }

    /// Imports and writes `out`. `progress` is called with each tensor's report as it is done.
    public func run(out: String, progress: (TensorReport) -> Void = { _ in }) throws -> Report {
        let config = try config()
        let vocabText = try String(contentsOfFile: directory + "/vocab.txt", encoding: .utf8)
        var vocab = vocabText.split(separator: "\n", omittingEmptySubsequences: false).map { String($0.hasSuffix("\r") ? $0.dropLast() : $0) }
        if vocab.last == "" { vocab.removeLast() }
        guard vocab.count == config.vocabSize else {
            throw InferenceError("\(directory)/vocab.txt has \(vocab.count) tokens, config.json says vocab_size \(config.vocabSize)")
        }
        let st = try SafeTensors(path: directory + "/model.safetensors")
        let prefix = st.entries["bert.embeddings.word_embeddings.weight"] != nil ? "bert." : ""
        var writer = ModelFileWriter(config: config, vocabulary: vocab)
        var reports: [TensorReport] = []
        let h = config.hidden, i = config.intermediate

        func load(_ name: String, _ shape: [Int]) throws -> [Float] {
            let (v, s) = try st.floats(prefix + name)
            guard s == shape else { throw InferenceError("\(directory)/model.safetensors: \(prefix + name) has shape \(s), config implies \(shape)") }
            return v
        }
        func plain(_ name: String, _ shape: [Int]) throws {
            writer.add(name, f32: try load(name, shape), shape: shape)
            let r = TensorReport(name: name, shape: shape, dtype: "f32", error: nil)
            reports.append(r)
            progress(r)
        }
        /// A linear layer stored by PyTorch as [out, in]: quantized per output channel, written transposed [in, out].
        func linear(_ name: String, out o: Int, in k: Int) throws {
            let w = try load(name + ".weight", [o, k])
            let (q, scales, error) = Quantizer.rows(w, rows: o, cols: k)
            var t = [Int8](repeating: 0, count: q.count)
            for r in 0..<o { for c in 0..<k { t[c * o + r] = q[r * k + c] } }
            writer.add(name + ".weight", i8: t, shape: [k, o])
            writer.add(name + ".weight.scale", f32: scales, shape: [o])
            writer.add(name + ".bias", f32: try load(name + ".bias", [o]), shape: [o])
            let r = TensorReport(name: name + ".weight", shape: [k, o], dtype: "i8", error: error)
            reports.append(r)
            progress(r)
        }

        let word = try load("embeddings.word_embeddings.weight", [config.vocabSize, h])
        let (wq, ws, we) = Quantizer.rows(word, rows: config.vocabSize, cols: h)
        writer.add("embeddings.word_embeddings.weight", i8: wq, shape: [config.vocabSize, h])
        writer.add("embeddings.word_embeddings.weight.scale", f32: ws, shape: [config.vocabSize])
        let wr = TensorReport(name: "embeddings.word_embeddings.weight", shape: [config.vocabSize, h], dtype: "i8", error: we)
        reports.append(wr)
        progress(wr)
        try plain("embeddings.position_embeddings.weight", [config.maxPositions, h])
        try plain("embeddings.token_type_embeddings.weight", [config.typeVocabSize, h])
        try plain("embeddings.LayerNorm.weight", [h])
        try plain("embeddings.LayerNorm.bias", [h])
        for l in 0..<config.layers {
            let p = "encoder.layer.\(l)."
            try linear(p + "attention.self.query", out: h, in: h)
            try linear(p + "attention.self.key", out: h, in: h)
            try linear(p + "attention.self.value", out: h, in: h)
            try linear(p + "attention.output.dense", out: h, in: h)
            try plain(p + "attention.output.LayerNorm.weight", [h])
            try plain(p + "attention.output.LayerNorm.bias", [h])
            try linear(p + "intermediate.dense", out: i, in: h)
            try linear(p + "output.dense", out: h, in: i)
            try plain(p + "output.LayerNorm.weight", [h])
            try plain(p + "output.LayerNorm.bias", [h])
        }
        let (id, bytes) = try writer.write(to: out)
        return Report(id: id, bytes: bytes, config: config, tensors: reports)
    }
}
