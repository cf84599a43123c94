import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The encoder's hand-written kernels. Each works on one token (one row) or one sequence at a time and
/// reduces in a fixed order, so its result never depends on the batch, the thread count or OpenBLAS.
/// `ReferenceKernels` has a plain scalar version of each that the tests compare against.
public enum Kernels {
    /// The longest reduction over products of an int8 weight and an activation in ±`levels` whose
    /// partial sums all stay exact integers in fp32 (below 2^24), so that any summation order (any BLAS
    /// kernel, blocking or thread split) gives the same bits: 1040 for ±127, 258 for ±511, 129 for ±1023.
    public static func exactChunk(levels: Int) -> Int { (1 << 24) / (127 * levels) }

    /// Quantizes each row of `x` (rows × cols) to integers in [-levels, levels] held as floats, with one
    /// scale per row: `q = round(x / s)`, `s = max|x| / levels` (1 for an all-zero row).
    public static func quantizeRows(
        _ x: UnsafePointer<Float>, rows: Int, cols: Int, levels: Int = 127, into q: UnsafeMutablePointer<Float>, scales: UnsafeMutablePointer<Float>
    ) {
        let l = Float(levels)
        for r in 0..<rows {
            let row = x + r * cols
            var m: Float = 0
            for c in 0..<cols { m = max(m, abs(row[c])) }
            let s: Float = m > 0 ? m / l : 1
            let inv: Float = m > 0 ? l / m : 1
            scales[r] = s
            let out = q + r * cols
            // Round to nearest even by adding and removing 1.5 · 2^23 (exact for |t| < 2^22), then clamp
            // so that |q| ≤ levels holds even when t overshoots by an ulp: the exactness bound needs it.
            for c in 0..<cols {
                let t = row[c] * inv
                out[c] = min(l, max(-l, (t + 12_582_912) - 12_582_912))
            }
        }
    }

    /// Runs `body` over `count` items split into `threads` contiguous ranges in parallel. Callers only
    /// use it for work whose items are independent, so the split never changes a result.
    public static func parallel(_ count: Int, threads: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        let t = max(1, min(threads, count / max(1, minimumPerThread)))
        if t <= 1 { body(0..<count); return }
        withoutActuallyEscaping(body) { f in
            let box = UncheckedBody(f: f)
            DispatchQueue.concurrentPerform(iterations: t) { i in
                box.f((count * i / t)..<(count * (i + 1) / t))
            }
        }
    }

    /// The work handed to concurrentPerform touches disjoint rows through raw pointers.
    struct UncheckedBody: @unchecked Sendable { let f: (Range<Int>) -> Void }

    /// y[r, n] = acc[r, n] · rowScale[r] · colScale[n] + bias[n]  (+ residual[r, n] when given).
    public static func dequantize(
        _ acc: UnsafePointer<Float>, rows: Int, cols: Int, rowScales: UnsafePointer<Float>, colScales: UnsafePointer<Float>,
        bias: UnsafePointer<Float>, residual: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            let s = rowScales[r]
            let a = acc + r * cols, o = y + r * cols
            if let residual {
                let res = residual + r * cols
                for n in 0..<cols { o[n] = a[n] * (s * colScales[n]) + bias[n] + res[n] }
            } else {
                for n in 0..<cols { o[n] = a[n] * (s * colScales[n]) + bias[n] }
            }
        }
    }

    /// LayerNorm of each row in place: (x − mean) / sqrt(var + eps) · gamma + beta, sums in row order.
    public static func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float) {
        for r in 0..<rows {
            let row = x + r * cols
            var sum: Float = 0
            for c in 0..<cols { sum += row[c] }
            let mean = sum / Float(cols)
            var sq: Float = 0
            for c in 0..<cols { let d = row[c] - mean; sq += d * d }
            let inv = 1 / (sq / Float(cols) + eps).squareRoot()
            for c in 0..<cols { row[c] = (row[c] - mean) * inv * gamma[c] + beta[c] }
        }
    }

    /// GELU, erf form: x · (1 + erf(x / √2)) / 2, in place. erf is a rational approximation on
    /// [-4, 4] (the form Eigen uses; clamped outside, where erf is ±1 to fp32 precision), max absolute
    /// error 4.2e-7, with no library call, so the loop vectorizes and gives the same bits everywhere.
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = x[i]
            let z = min(4, max(-4, v * 0.70710678118654752))
            let z2 = z * z
            var p: Float = -2.72614225801306e-10
            p = p * z2 + 2.77068142495902e-08
            p = p * z2 - 2.10102402082508e-06
            p = p * z2 - 5.69250639462346e-05
            p = p * z2 - 7.34990630326855e-04
            p = p * z2 - 2.95459980854025e-03
            p = p * z2 - 1.60960333262415e-02
            var q: Float = -1.45660718464996e-05
            q = q * z2 - 2.13374055278905e-04
            q = q * z2 - 1.68282697438203e-03
            q = q * z2 - 7.37332916720468e-03
            q = q * z2 - 1.42647390514189e-02
            x[i] = 0.5 * v * (1 + z * p / q)
        }
    }

    /// Fixed-order dot product: 8 lanes, each summed in index order, then lanes 0…7 added in order.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= n {
            let va = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
            let vb = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
            acc = acc + va * vb
            i += 8
        }
        var s: Float = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// Self-attention of one sequence of `length` tokens. `qkv` holds rows of [q | k | v] (3·hidden wide);
    /// writes the context (length × hidden) to `out`. `scratch` needs `length` floats.
    public static func attention(
        qkv: UnsafePointer<Float>, length: Int, hidden: Int, heads: Int, out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
        headRange: Range<Int>? = nil
    ) {
        let d = hidden / heads
        let stride = 3 * hidden
        let scale = 1 / Float(d).squareRoot()
        for h in headRange ?? 0..<heads {
            for i in 0..<length {
                let q = qkv + i * stride + h * d
                var m = -Float.infinity
                for j in 0..<length {
                    let s = dot(q, qkv + j * stride + hidden + h * d, d) * scale
                    scratch[j] = s
                    m = max(m, s)
                }
                var sum: Float = 0
                for j in 0..<length {
                    let e = expf(scratch[j] - m)
                    scratch[j] = e
                    sum += e
                }
                let inv = 1 / sum
                let o = out + i * hidden + h * d
                for c in 0..<d { o[c] = 0 }
                for j in 0..<length {
                    let p = scratch[j] * inv
                    let v = qkv + j * stride + 2 * hidden + h * d
                    for c in 0..<d { o[c] += p * v[c] }
                }
            }
        }
    }
}
