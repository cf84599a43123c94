/// `exp` and `log` from IEEE-754 additions, multiplications and divisions only, so every machine and
/// every libm computes the same bits (SPEC.md §10). Accurate to a few ulps, which is all decay and
/// BM25 need; what matters is that the answer never depends on the platform.
public enum DeterministicMath {
    private static let ln2Hi = 6.93147180369123816490e-01
    private static let ln2Lo = 1.90821492927058770002e-10
    private static let invLn2 = 1.44269504088896338700e+00

    /// e^x. Returns 0 below -745 and +inf above 709.
    public static func exp(_ x: Double) -> Double {
        if x.isNaN { return x }
        if x < -745 { return 0 }
        if x > 709 { return .infinity }
        // x = k·ln2 + r with |r| <= ln2/2, ln2 split in two so k·ln2Hi is exact.
        let k = (x * invLn2).rounded()
        let r = (x - k * ln2Hi) - k * ln2Lo
        // Taylor series to r^13: the remainder is below 2^-53 for |r| <= 0.3466.
        var term = 1.0, sum = 1.0
        for i in 1...13 {
            term = term * r / Double(i)
            sum += term
        }
        return scale(sum, Int(k))
    }

    /// sum · 2^k, in two steps when k is outside the normal exponent range.
    private static func scale(_ sum: Double, _ k: Int) -> Double {
        if k > 1000 { return scale(sum * Double(sign: .plus, exponent: 1000, significand: 1), k - 1000) }
        if k < -1000 { return scale(sum * Double(sign: .plus, exponent: -1000, significand: 1), k + 1000) }
        return sum * Double(sign: .plus, exponent: k, significand: 1)
    }

    /// ln x for x > 0; -inf for 0 and NaN for negative numbers.
    public static func log(_ x: Double) -> Double {
        if x.isNaN || x < 0 { return .nan }
        if x == 0 { return -.infinity }
        if x.isInfinite { return x }
        // x = m·2^e with m in [√½, √2).
        var e = Int(x.exponent)
        var m = x.significand  // in [1, 2)
        if m > 1.4142135623730951 {
            m /= 2
            e += 1
        }
        // ln m = 2·atanh(s), s = (m-1)/(m+1), |s| <= 0.1716.
        let s = (m - 1) / (m + 1)
        let s2 = s * s
        var power = s, sum = 0.0
        var n = 1.0
        for _ in 0..<12 {
            sum += power / n
            power *= s2
            n += 2
        }
        return 2 * sum + Double(e) * ln2Hi + Double(e) * ln2Lo
    }
}
