import CKernels
import Foundation
import Inference
import Testing

/// The integer product kernel (`psm_igemm`, AVX-512 VNNI where the CPU has it) against a plain Swift
/// triple loop, at awkward sizes: rows 1…19 (the 8-row tile and every remainder), odd and even k,
/// column counts around the 16-column blocks, block ranges as threads split them, and extreme values
/// (±1023 activations, ±127 weights) where an int32 sum near its largest must stay exact.
@Suite struct IntegerProductTests {
    /// The C quantizer that feeds the integer kernel writes exactly the integers and scales of the Swift
    /// one that feeds sgemm: rows of random values, a row of zeros, ties at .5 after scaling, tiny and
    /// huge magnitudes, at ±1023 and ±511, with an odd column count (the int16 row padded with a zero).
    @Test func quantizerMatchesTheSwiftOne() {
        var x: UInt64 = 0x1234_5678_9ABC_DEF1
        func unit() -> Float { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return Float(x % 2_000_001) / 1_000_000 - 1 }
        for cols in [1, 7, 383, 384, 1536] {
            var rows: [[Float]] = [[Float](repeating: 0, count: cols)]
            rows.append((0..<cols).map { _ in unit() * 7 })
            rows.append((0..<cols).map { _ in unit() * 1e-30 })
            rows.append((0..<cols).map { _ in unit() * 3e30 })
            // Values that land exactly on .5 after scaling by 1023 / 1023.
            rows.append((0..<cols).map { c in c == 0 ? 1023 : Float(c % 40) + 0.5 })
            let flat = rows.flatMap { $0 }
            for levels in [1023, 511] {
                let lda = (cols + 1) & ~1
                var swiftQ = [Float](repeating: .nan, count: flat.count), swiftS = [Float](repeating: .nan, count: rows.count)
                var cQ = [Int16](repeating: 77, count: rows.count * lda), cS = [Float](repeating: .nan, count: rows.count)
                flat.withUnsafeBufferPointer { f in
                    swiftQ.withUnsafeMutableBufferPointer { q in swiftS.withUnsafeMutableBufferPointer { s in
                        Kernels.quantizeRows(f.baseAddress!, rows: rows.count, cols: cols, levels: levels, into: q.baseAddress!, scales: s.baseAddress!)
                    } }
                    psm_quantize_rows_i16(f.baseAddress, rows.count, cols, Int32(levels), &cQ, lda, &cS)
                }
                var pQ = [Int16](repeating: 77, count: rows.count * lda), pS = [Float](repeating: .nan, count: rows.count)
                flat.withUnsafeBufferPointer { f in psm_quantize_rows_i16_portable(f.baseAddress, rows.count, cols, Int32(levels), &pQ, lda, &pS) }
                #expect(pQ == cQ && pS.map(\.bitPattern) == cS.map(\.bitPattern), "portable C path, cols \(cols) levels \(levels)")
                #expect(cS.map(\.bitPattern) == swiftS.map(\.bitPattern), "cols \(cols) levels \(levels)")
                for r in 0..<rows.count {
                    #expect((0..<cols).map { Float(cQ[r * lda + $0]) } == Array(swiftQ[(r * cols)..<((r + 1) * cols)]), "cols \(cols) levels \(levels) row \(r)")
                    if lda > cols { #expect(cQ[r * lda + cols] == 0) }
                }
            }
        }
    }

    @Test func matchesTheTripleLoopAtAwkwardSizes() {
        var x: UInt64 = 0xDEAD_BEEF_CAFE_F00D
        func next() -> UInt64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
        var cases = 0
        for (m, k, n) in [(1, 1, 1), (1, 2, 16), (3, 3, 17), (8, 64, 32), (9, 383, 33), (16, 384, 1152), (19, 17, 100), (7, 1536, 48), (2, 5, 15)] {
            for extreme in [false, true] {
                let w = (0..<(k * n)).map { _ in extreme ? Int8(next() % 2 == 0 ? 127 : -127) : Int8(truncatingIfNeeded: next()) }
                let lda = (k + 1) & ~1
                var a = [Int16](repeating: 0, count: m * lda)
                for r in 0..<m { for c in 0..<k { a[r * lda + c] = extreme ? (next() % 2 == 0 ? 1023 : -1023) : Int16(Int(next() % 2047) - 1023) } }
                var packed = [Int16](repeating: 0, count: psm_igemm_packed_count(k, n))
                psm_igemm_pack(w, k, n, &packed)
                var expected = [Float](repeating: 0, count: m * n)
                for r in 0..<m {
                    for c in 0..<n {
                        var sum = 0
                        for i in 0..<k { sum += Int(a[r * lda + i]) * Int(w[i * n + c]) }
                        expected[r * n + c] = Float(sum)
                    }
                }
                let blocks = (n + 15) / 16
                // Whole, and split into ranges of blocks as the encoder's threads do.
                for split in [1, 2, 3] where split <= blocks {
                    var fast = [Float](repeating: .nan, count: m * n), scalar = [Float](repeating: .nan, count: m * n)
                    var avx2 = [Float](repeating: .nan, count: m * n)
                    for s in 0..<split {
                        let (b0, b1) = (blocks * s / split, blocks * (s + 1) / split)
                        psm_igemm(a, m, k, lda, packed, n, b0, b1, &fast, n)
                        psm_igemm_reference(a, m, k, lda, packed, n, b0, b1, &scalar, n)
                        psm_igemm_avx2(a, m, k, lda, packed, n, b0, b1, &avx2, n)
                    }
                    #expect(avx2 == expected, "AVX2: m \(m) k \(k) n \(n) extreme \(extreme) split \(split)")
                    #expect(fast == expected, "m \(m) k \(k) n \(n) extreme \(extreme) split \(split)")
                    #expect(scalar == expected, "m \(m) k \(k) n \(n) extreme \(extreme) split \(split)")
                    cases += 1
                }
            }
        }
        #expect(cases > 20)
        print("integer product kernel: AVX-512 VNNI \(psm_igemm_available() != 0 ? "used" : "not available (scalar path)")")
    }
}

/// Plain scalar reference kernels (Double accumulation) and the comparisons at awkward sizes.
enum Reference {
    static func layerNorm(_ x: [Float], cols: Int, gamma: [Float], beta: [Float], eps: Double) -> [Float] {
        var out = x
        for r in 0..<(x.count / cols) {
            let row = (0..<cols).map { Double(x[r * cols + $0]) }
            let mean = row.reduce(0, +) / Double(cols)
            let v = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(cols)
            for c in 0..<cols { out[r * cols + c] = Float((row[c] - mean) / (v + eps).squareRoot() * Double(gamma[c]) + Double(beta[c])) }
        }
        return out
    }
    static func gelu(_ x: Float) -> Float { Float(0.5 * Double(x) * (1 + erf(Double(x) / 2.0.squareRoot()))) }
    static func attention(_ qkv: [Float], length: Int, hidden: Int, heads: Int) -> [Float] {
        let d = hidden / heads
        var out = [Float](repeating: 0, count: length * hidden)
        for h in 0..<heads {
            for i in 0..<length {
                var s = [Double](repeating: 0, count: length)
                for j in 0..<length {
                    var dot = 0.0
                    for c in 0..<d { dot += Double(qkv[i * 3 * hidden + h * d + c]) * Double(qkv[j * 3 * hidden + hidden + h * d + c]) }
                    s[j] = dot / Double(d).squareRoot()
                }
                let m = s.max()!
                let e = s.map { exp($0 - m) }
                let sum = e.reduce(0, +)
                for c in 0..<d {
                    var o = 0.0
                    for j in 0..<length { o += e[j] / sum * Double(qkv[j * 3 * hidden + 2 * hidden + h * d + c]) }
                    out[i * hidden + h * d + c] = Float(o)
                }
            }
        }
        return out
    }
}

@Suite struct KernelTests {
    var rng = TinyModel.RNG(s: 99)
    mutating func values(_ n: Int, _ scale: Float = 1) -> [Float] { (0..<n).map { _ in rng.next() * scale } }

    @Test(arguments: [(1, 1), (3, 7), (5, 33), (2, 384), (1, 1536)])
    mutating func quantizeAndDequantize(rows: Int, cols: Int) {
        var x = values(rows * cols, 3)
        if rows > 1 { for c in 0..<cols { x[cols + c] = 0 } }  // an all-zero row
        var q = [Float](repeating: 0, count: rows * cols), s = [Float](repeating: 0, count: rows)
        Kernels.quantizeRows(x, rows: rows, cols: cols, levels: 1023, into: &q, scales: &s)
        for r in 0..<rows {
            let m = (0..<cols).map { abs(x[r * cols + $0]) }.max()!
            #expect(s[r] == (m > 0 ? m / 1023 : 1))
            for c in 0..<cols {
                let v = q[r * cols + c]
                #expect(v == v.rounded() && abs(v) <= 1023)
                // Within half a step of the scale.
                #expect(abs(Double(s[r]) * Double(v) - Double(x[r * cols + c])) <= Double(s[r]) * 0.5 * 1.0001 + 1e-7)
            }
        }
        // Dequantize against the scalar formula.
        let acc = values(rows * cols, 1000).map { $0.rounded() }, colScale = values(cols, 0.01).map { abs($0) + 0.001 }, bias = values(cols), res = values(rows * cols)
        var y = [Float](repeating: 0, count: rows * cols)
        Kernels.dequantize(acc, rows: rows, cols: cols, rowScales: s, colScales: colScale, bias: bias, residual: res, into: &y)
        for r in 0..<rows { for c in 0..<cols {
            let want = Double(acc[r * cols + c]) * Double(s[r]) * Double(colScale[c]) + Double(bias[c]) + Double(res[r * cols + c])
            #expect(abs(Double(y[r * cols + c]) - want) <= 1e-4 * max(1, abs(want)))
        } }
    }

    @Test(arguments: [(1, 1), (4, 5), (3, 384)])
    mutating func layerNormMatchesReference(rows: Int, cols: Int) {
        let x = values(rows * cols, 4), g = values(cols), b = values(cols)
        var y = x
        Kernels.layerNorm(&y, rows: rows, cols: cols, gamma: g, beta: b, eps: 1e-12)
        let ref = Reference.layerNorm(x, cols: cols, gamma: g, beta: b, eps: 1e-12)
        for i in 0..<y.count { #expect(abs(y[i] - ref[i]) <= 1e-4 * max(1, abs(ref[i])), "\(i)") }
    }

    @Test mutating func geluMatchesReference() {
        var x = values(1001, 6) + [0, -0.0, 20, -20]
        let original = x
        Kernels.gelu(&x, count: x.count)
        for i in 0..<x.count { #expect(abs(x[i] - Reference.gelu(original[i])) <= 2e-6 * max(1, abs(original[i]))) }
    }

    @Test(arguments: [(1, 24, 3), (7, 24, 3), (13, 36, 4), (33, 64, 2)])
    mutating func attentionMatchesReference(length: Int, hidden: Int, heads: Int) {
        let qkv = values(length * 3 * hidden, 2)
        var out = [Float](repeating: 0, count: length * hidden), scratch = [Float](repeating: 0, count: length)
        Kernels.attention(qkv: qkv, length: length, hidden: hidden, heads: heads, out: &out, scratch: &scratch)
        let ref = Reference.attention(qkv, length: length, hidden: hidden, heads: heads)
        for i in 0..<out.count { #expect(abs(out[i] - ref[i]) <= 1e-5 * max(1, abs(ref[i])), "\(i)") }
    }

    /// The property the encoder's determinism rests on: integer-valued sgemm within the exact chunk is exact.
    @Test(arguments: [(1, 1, 1, 127), (5, 7, 1040, 127), (33, 65, 258, 511), (128, 96, 129, 1023), (17, 40, 129, 1023)])
    mutating func integerSgemmIsExact(m: Int, n: Int, k: Int, levels: Int) {
        #expect(k <= Kernels.exactChunk(levels: levels))
        let a = (0..<(m * k)).map { _ in (rng.next() * Float(levels)).rounded() }
        let b = (0..<(k * n)).map { _ in ((rng.next() > 0 ? 1 : -1) * 127) as Float }  // worst case magnitudes
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            BLAS.sgemm(m: m, n: n, k: k, a: pa, b: pb, c: pc)
        } } }
        for i in 0..<m { for j in 0..<n {
            var exact: Int64 = 0
            for p in 0..<k { exact += Int64(a[i * k + p]) * Int64(b[p * n + j]) }
            #expect(Int64(c[i * n + j]) == exact && c[i * n + j] == Float(exact))
        } }
        #expect(Kernels.exactChunk(levels: levels) * 127 * levels < 1 << 24)
    }
}
