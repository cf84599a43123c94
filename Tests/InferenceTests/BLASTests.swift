import Inference
import Testing

/// The OpenBLAS binding against a plain scalar product at awkward sizes.
@Suite struct BLASTests {
    @Test(arguments: [(1, 1, 1), (3, 5, 7), (17, 1, 33), (64, 65, 63)])
    func sgemmMatchesScalarReference(m: Int, n: Int, k: Int) {
        var seed: UInt32 = 12345
        func next() -> Float { seed = seed &* 1_103_515_245 &+ 12345; return Float(Int(seed >> 16) % 2001 - 1000) / 1000 }
        let a = (0..<(m * k)).map { _ in next() }
        let b = (0..<(k * n)).map { _ in next() }
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in BLAS.sgemm(m: m, n: n, k: k, a: pa, b: pb, c: pc) }
            }
        }
        for i in 0..<m {
            for j in 0..<n {
                var ref = 0.0
                for p in 0..<k { ref += Double(a[i * k + p]) * Double(b[p * n + j]) }
                #expect(abs(Double(c[i * n + j]) - ref) <= 1e-4 * Double(k), "(\(i),\(j))")
            }
        }
        #expect(!BLAS.coreName.isEmpty)
    }
}
