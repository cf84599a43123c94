import CKernels
import COpenBLAS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sentence encoder: embeddings → LayerNorm → N × (self-attention, GELU feed-forward, residuals,
/// LayerNorm) → mean (or CLS) pooling → L2 normalisation.
///
/// Determinism (SPEC.md §12.6): every dense layer multiplies integer activations (10 or 11 bits, one
/// scale per token) by int8 weights (one scale per output channel) through OpenBLAS `sgemm` on
/// integer-valued floats, in chunks along k short enough (``Kernels/exactChunk(levels:)``) that every
/// partial sum is an exact integer below 2^24; chunk results are added exactly in Double. So the product is the
/// same whatever kernel, blocking or thread split OpenBLAS picks. Everything else runs per token or per sequence in fixed order. So an embedding depends
/// only on its own text and the model: not on the batch, the thread count or the CPU's BLAS kernel.
public final class Encoder: @unchecked Sendable {
    public let model: ModelFile
    public let config: ModelConfig
    public let tokenizer: WordPieceTokenizer

    struct Dense {
        static let qkv = 1, out = 2, up = 4, down = 8
        let kind: Int
        let k: Int, n: Int
        /// [k, n] row-major, integer-valued (int8 weights widened to fp32 once, at load); empty when
        /// the integer kernel is used.
        let weight: [Float]
        /// The int8 weights packed for `psm_igemm` (AVX-512 VNNI or AVX2); empty when sgemm is used.
        let packed: [Int16]
        let scale: [Float]
        let bias: [Float]
    }
    struct Layer {
        let qkv: Dense, out: Dense, up: Dense, down: Dense
        let ln1g: [Float], ln1b: [Float], ln2g: [Float], ln2b: [Float]
    }
    let word: UnsafeBufferPointer<Int8>
    let wordScale: UnsafeBufferPointer<Float>
    let position: [Float], tokenType: [Float], embG: [Float], embB: [Float]
    let layers: [Layer]

    public init(model: ModelFile) throws {
        self.model = model
        config = model.config
        tokenizer = try WordPieceTokenizer(model: model)
        let h = config.hidden, i = config.intermediate
        word = try model.i8("embeddings.word_embeddings.weight", [config.vocabSize, h])
        wordScale = try model.f32("embeddings.word_embeddings.weight.scale", [config.vocabSize])
        position = Array(try model.f32("embeddings.position_embeddings.weight", [config.maxPositions, h]))
        tokenType = Array(try model.f32("embeddings.token_type_embeddings.weight", [config.typeVocabSize, h]))
        embG = Array(try model.f32("embeddings.LayerNorm.weight", [h]))
        embB = Array(try model.f32("embeddings.LayerNorm.bias", [h]))
        let integer = Encoder.integerKernel
        func dense(_ names: [String], k: Int, n: Int, kind: Int) throws -> Dense {
            // Several layers with the same input (query, key, value) become one wider product.
            let total = n * names.count
            var w8 = [Int8](repeating: 0, count: k * total)
            var scale: [Float] = [], bias: [Float] = []
            for (p, name) in names.enumerated() {
                let q = try model.i8(name + ".weight", [k, n])
                for r in 0..<k { for c in 0..<n { w8[r * total + p * n + c] = q[r * n + c] } }
                scale += try model.f32(name + ".weight.scale", [n])
                bias += try model.f32(name + ".bias", [n])
            }
            var w: [Float] = [], packed: [Int16] = []
            if integer {
                packed = [Int16](repeating: 0, count: psm_igemm_packed_count(k, total))
                w8.withUnsafeBufferPointer { src in packed.withUnsafeMutableBufferPointer { psm_igemm_pack(src.baseAddress, k, total, $0.baseAddress) } }
            } else {
                w = w8.map { Float($0) }
            }
            if let bad = scale.firstIndex(where: { !($0 > 0) }) {
                throw InferenceError("\(model.path): \(names[bad / n]).weight.scale[\(bad % n)] is \(scale[bad]), expected a positive scale")
            }
            return Dense(kind: kind, k: k, n: total, weight: w, packed: packed, scale: scale, bias: bias)
        }
        layers = try (0..<config.layers).map { l in
            let p = "encoder.layer.\(l)."
            return Layer(
                qkv: try dense([p + "attention.self.query", p + "attention.self.key", p + "attention.self.value"], k: h, n: h, kind: Dense.qkv),
                out: try dense([p + "attention.output.dense"], k: h, n: h, kind: Dense.out),
                up: try dense([p + "intermediate.dense"], k: h, n: i, kind: Dense.up),
                down: try dense([p + "output.dense"], k: i, n: h, kind: Dense.down),
                ln1g: Array(try model.f32(p + "attention.output.LayerNorm.weight", [h])),
                ln1b: Array(try model.f32(p + "attention.output.LayerNorm.bias", [h])),
                ln2g: Array(try model.f32(p + "output.LayerNorm.weight", [h])),
                ln2b: Array(try model.f32(p + "output.LayerNorm.bias", [h])))
        }
    }

    /// Which products quantize their input in two parts (hi + lo/254, about 15 bits): the ones fed by a
    /// LayerNorm (query/key/value and the feed-forward expansion), whose outlier channels cost the most
    /// accuracy at 8 bits. Measured on the reference sentences (SPEC.md §12.6): int8 everywhere gives mean
    /// cosine 0.9970, minimum 0.9708; two-part after LayerNorm 0.9990 / 0.9916 for 1.58× the products.
    /// Activation precision per product: integers in ±1023 (11 bits) for the inputs that come from a
    /// LayerNorm (query/key/value and the feed-forward expansion), whose outlier channels cost the most
    /// accuracy, ±511 (10 bits) for the others. Weights stay int8. Measured on 200 reference sentences
    /// (SPEC.md §12.6): ±127 everywhere gives mean cosine 0.9970 / minimum 0.9708; this choice
    /// 0.9994 / 0.9948 with the same number of multiply-adds (only the chunking along k changes).
    static func levels(_ kind: Int) -> Int { kind == Dense.qkv || kind == Dense.up ? 1023 : 511 }

    /// Whether encoders made from now on multiply with the integer kernel (`psm_igemm`: AVX-512 VNNI, or
    /// AVX2 `vpmaddwd`) rather than exact-integer sgemm. All give the same products bit for bit (SPEC.md
    /// §10); the integer kernel is the default where the CPU has either (on AVX2 alone it is about half
    /// the VNNI speed and still ahead of sgemm). `PSM_ENCODER_KERNEL=sgemm` forces sgemm.
    nonisolated(unsafe) public static var integerKernel: Bool = {
        if let forced = getenv("PSM_ENCODER_KERNEL").map({ String(cString: $0) }), forced == "sgemm" { return false }
        return psm_igemm_path() >= 1
    }()

    /// Whether this encoder multiplies with the integer kernel.
    public var usesIntegerKernel: Bool { layers.first.map { !$0.qkv.packed.isEmpty } ?? false }

    /// Sets OpenBLAS's thread count (results do not depend on it).
    public static func setThreads(_ n: Int) {
        BLAS.setThreads(n)
        threads = max(1, n)
    }
    nonisolated(unsafe) static var threads = 1
    /// The thread count ``setThreads(_:)`` last set (1 until then).
    public static var currentThreads: Int { threads }

    /// Embeds each text (tokenized, truncated to the model's maximum sequence length).
    public func embed(_ texts: [String]) -> [[Float]] {
        embed(tokens: sequences(texts))
    }

    /// Each text as [CLS] tokens… [SEP], truncated to the model's maximum sequence length.
    func sequences(_ texts: [String]) -> [[Int32]] { texts.map { tokenizer.encode($0, maxLength: config.maxSequenceLength).ids } }

    /// Embeds token sequences ([CLS] … [SEP]), each at most `maxSequenceLength` long. The tokens of the
    /// whole batch are packed without padding for the dense layers.
    public func embed(tokens batch: [[Int32]]) -> [[Float]] {
        if batch.isEmpty { return [] }
        let (x, lengths) = hiddenStates(batch)
        return pool(x, lengths)
    }

    /// Each text's embedding and token states from one forward pass (what ``embed(_:)`` and
    /// ``tokenStates(_:)`` give separately).
    public func embedWithStates(_ texts: [String]) -> (embeddings: [[Float]], states: [TokenStates]) {
        let batch = sequences(texts)
        if batch.isEmpty { return ([], []) }
        let (x, lengths) = hiddenStates(batch)
        return (pool(x, lengths), split(x, lengths, batch))
    }

    /// Pooling and normalisation, per sequence of the packed states.
    func pool(_ x: [Float], _ lengths: [Int]) -> [[Float]] {
        let h = config.hidden
        var out: [[Float]] = []
        var start = 0
        for len in lengths {
            var v = [Float](repeating: 0, count: h)
            if config.pooling == .cls {
                for c in 0..<h { v[c] = x[start * h + c] }
            } else {
                for p in 0..<len { for c in 0..<h { v[c] += x[(start + p) * h + c] } }
                let inv = 1 / Float(max(len, 1))
                for c in 0..<h { v[c] *= inv }
            }
            if config.normalize {
                var sq: Float = 0
                for c in 0..<h { sq += v[c] * v[c] }
                let inv = 1 / max(sq.squareRoot(), 1e-12)
                for c in 0..<h { v[c] *= inv }
            }
            out.append(v)
            start += len
        }
        return out
    }

    /// The last layer's states of every token of a text, before pooling: what token matching reads.
    public struct TokenStates: Sendable {
        /// [CLS] tokens… [SEP] (truncated like ``embed(_:)``).
        public var ids: [Int32]
        /// `ids.count` rows of `hidden` values, row-major.
        public var states: [Float]
    }

    /// Each text's token states (tokenized and truncated as ``embed(_:)`` does). Deterministic in the same
    /// way as the embedding: a text's states depend only on the text and the model.
    public func tokenStates(_ texts: [String]) -> [TokenStates] {
        let batch = sequences(texts)
        if batch.isEmpty { return [] }
        let (x, lengths) = hiddenStates(batch)
        return split(x, lengths, batch)
    }

    /// The packed states cut into each sequence's tokens.
    func split(_ x: [Float], _ lengths: [Int], _ batch: [[Int32]]) -> [TokenStates] {
        let h = config.hidden
        var out: [TokenStates] = []
        var start = 0
        for (s, len) in lengths.enumerated() {
            out.append(TokenStates(ids: Array(batch[s].prefix(len)), states: Array(x[(start * h)..<((start + len) * h)])))
            start += len
        }
        return out
    }

    /// The forward pass over a batch: the last layer's states of all tokens, packed (sequence after
    /// sequence), and each sequence's length.
    func hiddenStates(_ batch: [[Int32]]) -> (states: [Float], lengths: [Int]) {
        let h = config.hidden, inter = config.intermediate
        let lengths = batch.map { min($0.count, config.maxSequenceLength) }
        let total = lengths.reduce(0, +)
        var x: [Float] = workspace(total * h)
        var qkv: [Float] = workspace(total * 3 * h)
        var ctx: [Float] = workspace(total * h)
        var mid: [Float] = workspace(total * inter)
        var xq: [Float] = workspace(total * max(h, inter))
        var iacc: [Double] = workspace(total * max(3 * h, inter))
        var rowScale = [Float](repeating: 0, count: total)
        var acc: [Float] = workspace(total * max(3 * h, inter))
        var acc2: [Float] = workspace(total * max(3 * h, inter))
        var scratch: [Float] = workspace(config.maxSequenceLength * config.heads)

        // Embeddings.
        var t = 0
        for (s, seq) in batch.enumerated() {
            for p in 0..<lengths[s] {
                let id = Int(seq[p])
                let rowBase = id >= 0 && id < config.vocabSize ? id : Int(tokenizer.unkID)
                let sc = wordScale[rowBase]
                for c in 0..<h {
                    x[t * h + c] = Float(word[rowBase * h + c]) * sc + position[p * h + c] + tokenType[c]
                }
                t += 1
            }
        }
        let eps = Float(config.layerNormEps)
        x.withUnsafeMutableBufferPointer { p in layerNorm(p.baseAddress!, rows: total, cols: h, gamma: embG, beta: embB, eps: eps) }

        for layer in layers {
            // Attention.
            apply(layer.qkv, input: x, rows: total, xq: &xq, rowScale: &rowScale, acc: &acc, acc2: &acc2, iacc: &iacc, residual: nil, into: &qkv)
            var start = 0
            let heads = config.heads, threads = Encoder.threads
            for len in lengths {
                qkv.withUnsafeBufferPointer { q in
                    ctx.withUnsafeMutableBufferPointer { c in
                        scratch.withUnsafeMutableBufferPointer { sc in
                            let qb = q.baseAddress! + start * 3 * h, cb = c.baseAddress! + start * h, sb = sc.baseAddress!
                            // Heads are independent: each thread takes a range of them (and its own scratch row).
                            Kernels.parallel(heads, threads: len >= 8 ? threads : 1) { r in
                                Kernels.attention(qkv: qb, length: len, hidden: h, heads: heads, out: cb,
                                    scratch: sb + r.lowerBound * config.maxSequenceLength, headRange: r)
                            }
                        }
                    }
                }
                start += len
            }
            var attnOut: [Float] = workspace(total * h)
            apply(layer.out, input: ctx, rows: total, xq: &xq, rowScale: &rowScale, acc: &acc, acc2: &acc2, iacc: &iacc, residual: x, into: &attnOut)
            attnOut.withUnsafeMutableBufferPointer { p in layerNorm(p.baseAddress!, rows: total, cols: h, gamma: layer.ln1g, beta: layer.ln1b, eps: eps) }
            // Feed-forward.
            apply(layer.up, input: attnOut, rows: total, xq: &xq, rowScale: &rowScale, acc: &acc, acc2: &acc2, iacc: &iacc, residual: nil, into: &mid)
            mid.withUnsafeMutableBufferPointer { p in
                let base = p.baseAddress!
                Kernels.parallel(total * inter, threads: Encoder.threads, minimumPerThread: 4096) { r in Kernels.gelu(base + r.lowerBound, count: r.count) }
            }
            apply(layer.down, input: mid, rows: total, xq: &xq, rowScale: &rowScale, acc: &acc, acc2: &acc2, iacc: &iacc, residual: attnOut, into: &x)
            x.withUnsafeMutableBufferPointer { p in layerNorm(p.baseAddress!, rows: total, cols: h, gamma: layer.ln2g, beta: layer.ln2b, eps: eps) }
        }

        return (x, lengths)
    }

    /// One dense layer on `rows` tokens: per-token quantization of `input` to integers in ±levels,
    /// exact integer products through sgemm in chunks along k short enough to stay exact, chunk sums
    /// added exactly (in Double), then dequantization, bias and residual.
    func apply(
        _ d: Dense, input: [Float], rows: Int, xq: inout [Float], rowScale: inout [Float], acc: inout [Float], acc2: inout [Float],
        iacc: inout [Double], residual: [Float]?, into y: inout [Float]
    ) {
        let levels = Encoder.levels(d.kind)
        if !d.packed.isEmpty {
            integerProduct(d, input: input, rows: rows, levels: levels, rowScale: &rowScale, into: &acc)
        } else {
            input.withUnsafeBufferPointer { inp in
                xq.withUnsafeMutableBufferPointer { q in
                    rowScale.withUnsafeMutableBufferPointer { s in
                        let (ib, qb, sb) = (inp.baseAddress!, q.baseAddress!, s.baseAddress!)
                        Kernels.parallel(rows, threads: Encoder.threads, minimumPerThread: 8) { r in
                            Kernels.quantizeRows(ib + r.lowerBound * d.k, rows: r.count, cols: d.k, levels: levels, into: qb + r.lowerBound * d.k,
                                scales: sb + r.lowerBound)
                        }
                    }
                }
            }
            sgemmProduct(d, rows: rows, levels: levels, xq: xq, acc: &acc, acc2: &acc2, iacc: &iacc)
        }
        acc.withUnsafeBufferPointer { a in
            rowScale.withUnsafeBufferPointer { s in
                y.withUnsafeMutableBufferPointer { o in
                    if let residual {
                        residual.withUnsafeBufferPointer { r in
                            dequantize(d, a.baseAddress!, rows: rows, s.baseAddress!, r.baseAddress!, o.baseAddress!)
                        }
                    } else {
                        dequantize(d, a.baseAddress!, rows: rows, s.baseAddress!, nil, o.baseAddress!)
                    }
                }
            }
        }
    }

    /// The exact integer product through OpenBLAS sgemm: integer-valued floats in chunks along k short
    /// enough that every partial sum is exact, chunk sums added in Double.
    private func sgemmProduct(_ d: Dense, rows: Int, levels: Int, xq: [Float], acc: inout [Float], acc2: inout [Float], iacc: inout [Double]) {
        let chunk = Kernels.exactChunk(levels: levels)
        let count = rows * d.n
        xq.withUnsafeBufferPointer { q in
            d.weight.withUnsafeBufferPointer { w in
                acc.withUnsafeMutableBufferPointer { a in
                    acc2.withUnsafeMutableBufferPointer { a2 in
                        iacc.withUnsafeMutableBufferPointer { ia in
                            var k0 = 0
                            while k0 < d.k {
                                let kc = min(chunk, d.k - k0)
                                let target = k0 == 0 ? a.baseAddress! : a2.baseAddress!
                                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(d.n), Int32(kc), 1,
                                    q.baseAddress! + k0, Int32(d.k), w.baseAddress! + k0 * d.n, Int32(d.n), 0, target, Int32(d.n))
                                if k0 > 0 {
                                    // Chunk results are exact integers; their sum stays exact in Double (< 2^53).
                                    if k0 == chunk { for i in 0..<count { ia[i] = Double(a[i]) } }
                                    for i in 0..<count { ia[i] += Double(a2[i]) }
                                }
                                k0 += kc
                            }
                            if d.k > chunk { for i in 0..<count { a[i] = Float(ia[i]) } }
                        }
                    }
                }
            }
        }
    }

    /// The exact integer product through `psm_igemm`: `input` quantized per token straight to int16 rows
    /// (padded to an even length; the same integers and scales as ``Kernels/quantizeRows(_:rows:cols:levels:into:scales:)``),
    /// threads splitting the rows for that and the 16-column blocks, in pairs, for the product.
    private func integerProduct(_ d: Dense, input: [Float], rows: Int, levels: Int, rowScale: inout [Float], into acc: inout [Float]) {
        let lda = (d.k + 1) & ~1
        var a = [Int16](unsafeUninitializedCapacity: rows * lda) { _, n in n = rows * lda }
        input.withUnsafeBufferPointer { inp in
            a.withUnsafeMutableBufferPointer { ab in
                rowScale.withUnsafeMutableBufferPointer { s in
                    let (ib, qb, sb) = (inp.baseAddress!, ab.baseAddress!, s.baseAddress!)
                    Kernels.parallel(rows, threads: Encoder.threads, minimumPerThread: 8) { r in
                        psm_quantize_rows_i16(ib + r.lowerBound * d.k, r.count, d.k, Int32(levels), qb + r.lowerBound * lda, lda, sb + r.lowerBound)
                    }
                }
            }
        }
        let blocks = (d.n + 15) / 16
        a.withUnsafeBufferPointer { ab in
            d.packed.withUnsafeBufferPointer { pb in
                acc.withUnsafeMutableBufferPointer { cb in
                    let (ap, pp, cp) = (ab.baseAddress!, pb.baseAddress!, cb.baseAddress!)
                    Kernels.parallel((blocks + 1) / 2, threads: Encoder.threads) { r in
                        psm_igemm(ap, rows, d.k, lda, pp, d.n, 2 * r.lowerBound, min(blocks, 2 * r.upperBound), cp, d.n)
                    }
                }
            }
        }
    }

    private func dequantize(
        _ d: Dense, _ a: UnsafePointer<Float>, rows: Int, _ s: UnsafePointer<Float>, _ res: UnsafePointer<Float>?, _ o: UnsafeMutablePointer<Float>
    ) {
        d.scale.withUnsafeBufferPointer { cs in
            d.bias.withUnsafeBufferPointer { b in
                let (csb, bb) = (cs.baseAddress!, b.baseAddress!)
                Kernels.parallel(rows, threads: Encoder.threads, minimumPerThread: 8) { r in
                    let off = r.lowerBound * d.n
                    Kernels.dequantize(a + off, rows: r.count, cols: d.n, rowScales: s + r.lowerBound, colScales: csb, bias: bb,
                        residual: res.map { $0 + off }, into: o + off)
                }
            }
        }
    }

    private func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, gamma: [Float], beta: [Float], eps: Float) {
        gamma.withUnsafeBufferPointer { g in
            beta.withUnsafeBufferPointer { b in
                let (gb, bb) = (g.baseAddress!, b.baseAddress!)
                Kernels.parallel(rows, threads: Encoder.threads, minimumPerThread: 8) { r in
                    Kernels.layerNorm(x + r.lowerBound * cols, rows: r.count, cols: cols, gamma: gb, beta: bb, eps: eps)
                }
            }
        }
    }
}

/// A buffer of `count` elements left uninitialized: every encoder buffer is completely written before
/// it is read (BLAS with beta 0, the kernels row by row), so zero-filling would only cost time.
func workspace<T: BinaryFloatingPoint>(_ count: Int) -> [T] {
    [T](unsafeUninitializedCapacity: count) { _, n in n = count }
}
