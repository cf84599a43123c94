import COpenBLAS

/// The encoder's large matrix products go through OpenBLAS. This is the only file of the package that
/// imports COpenBLAS (ARCHITECTURE.md); the transformer kernels of the inference issue build on it.
public enum BLAS {
    /// C = alpha * A(m×k) · B(k×n) + beta * C, row-major fp32.
    /// - Precondition: `a.count == m*k`, `b.count == k*n`, `c.count == m*n`.
    public static func sgemm(
        m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafeBufferPointer<Float>, b: UnsafeBufferPointer<Float>,
        beta: Float = 0, c: UnsafeMutableBufferPointer<Float>, transposeB: Bool = false
    ) {
        precondition(a.count == m * k && b.count == k * n && c.count == m * n, "sgemm: buffer sizes do not match \(m)x\(k)·\(k)x\(n)")
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha,
            a.baseAddress, Int32(k), b.baseAddress, Int32(transposeB ? k : n), beta, c.baseAddress, Int32(n))
    }

    /// Pins OpenBLAS to `threads` threads. Results of sgemm may depend on the thread count; the PSM's
    /// decision path fixes it (SPEC.md, determinism contract).
    public static func setThreads(_ threads: Int) { openblas_set_num_threads(Int32(threads)) }

    /// The kernel family OpenBLAS chose for this CPU at run time (e.g. "Cooperlake").
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }
}
