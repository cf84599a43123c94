/// Architecture and tokenizer settings of a BERT-family sentence encoder (SPEC.md §12.2).
public struct ModelConfig: Sendable, Equatable, Codable {
    public enum Pooling: UInt8, Sendable, Codable { case mean = 1, cls = 2 }

    public var vocabSize: Int
    public var hidden: Int
    public var layers: Int
    public var heads: Int
    public var intermediate: Int
    public var maxPositions: Int
    public var typeVocabSize: Int
    /// Longest token sequence (special tokens included) the encoder accepts; longer input is truncated.
    public var maxSequenceLength: Int
    public var layerNormEps: Double
    public var pooling: Pooling
    public var normalize: Bool
    public var lowerCase: Bool
    public var stripAccents: Bool
    public var tokenizeChineseChars: Bool
    /// Where the weights came from (the importer's source name), for `psm model info`.
    public var source: String

    public init(
        vocabSize: Int, hidden: Int, layers: Int, heads: Int, intermediate: Int, maxPositions: Int, typeVocabSize: Int,
        maxSequenceLength: Int, layerNormEps: Double, pooling: Pooling = .mean, normalize: Bool = true, lowerCase: Bool = true,
        stripAccents: Bool = true, tokenizeChineseChars: Bool = true, source: String = ""
    ) {
        self.vocabSize = vocabSize
        self.hidden = hidden
        self.layers = layers
        self.heads = heads
        self.intermediate = intermediate
        self.maxPositions = maxPositions
        self.typeVocabSize = typeVocabSize
        self.maxSequenceLength = maxSequenceLength
        self.layerNormEps = layerNormEps
        self.pooling = pooling
        self.normalize = normalize
        self.lowerCase = lowerCase
        self.stripAccents = stripAccents
        self.tokenizeChineseChars = tokenizeChineseChars
        self.source = source
    }

    public var headSize: Int { hidden / heads }

    /// Checks the numbers against the bounds of SPEC.md §12.5.
    public func validate() throws(InferenceError) {
        func check(_ name: String, _ v: Int, _ range: ClosedRange<Int>) throws(InferenceError) {
            guard range.contains(v) else { throw InferenceError("model config: \(name) = \(v), expected \(range.lowerBound)...\(range.upperBound)") }
        }
        try check("vocabulary size", vocabSize, 5...1_000_000)
        try check("hidden size", hidden, 1...8192)
        try check("layers", layers, 1...128)
        try check("attention heads", heads, 1...256)
        try check("intermediate size", intermediate, 1...65536)
        try check("max positions", maxPositions, 2...65536)
        try check("token type vocabulary", typeVocabSize, 1...16)
        try check("max sequence length", maxSequenceLength, 2...maxPositions)
        guard hidden % heads == 0 else { throw InferenceError("model config: hidden size \(hidden) is not a multiple of \(heads) heads") }
        guard layerNormEps > 0, layerNormEps < 1, layerNormEps.isFinite else { throw InferenceError("model config: layer norm epsilon \(layerNormEps), expected 0 < eps < 1") }
        guard source.utf8.count <= 1024 else { throw InferenceError("model config: source name of \(source.utf8.count) bytes, expected ≤ 1024") }
    }

    /// Fixed binary layout (SPEC.md §12.2).
    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        for v in [vocabSize, hidden, layers, heads, intermediate, maxPositions, typeVocabSize, maxSequenceLength] { out.appendLE(UInt32(v)) }
        out.appendLE(layerNormEps.bitPattern)
        out += [pooling.rawValue, normalize ? 1 : 0, lowerCase ? 1 : 0, stripAccents ? 1 : 0, tokenizeChineseChars ? 1 : 0, 1, 1, 0]
        let s = Array(source.utf8)
        out.appendLE(UInt16(s.count))
        out += s
        return out
    }

    static let fixedSize = 8 * 4 + 8 + 8 + 2

    static func decode(_ b: UnsafeRawBufferPointer) throws(InferenceError) -> ModelConfig {
        guard b.count >= fixedSize else { throw InferenceError("model config: \(b.count) bytes, expected at least \(fixedSize)") }
        func u(_ i: Int) -> Int { Int(b.le(i * 4, UInt32.self)) }
        let eps = Double(bitPattern: b.le(32, UInt64.self))
        guard let pooling = Pooling(rawValue: b[40]) else { throw InferenceError("model config: pooling \(b[40]), expected 1 (mean) or 2 (cls)") }
        for (i, name) in [(41, "normalize"), (42, "lower case"), (43, "strip accents"), (44, "chinese chars")] where b[i] > 1 {
            throw InferenceError("model config: \(name) flag \(b[i]), expected 0 or 1")
        }
        guard b[45] == 1 else { throw InferenceError("model config: activation \(b[45]), expected 1 (GELU, erf form)") }
        guard b[46] == 1 else { throw InferenceError("model config: quantization scheme \(b[46]), expected 1 (int8, one scale per output channel)") }
        guard b[47] == 0 else { throw InferenceError("model config: reserved byte 47 is \(b[47]), expected 0") }
        let n = Int(b.le(48, UInt16.self))
        guard b.count == fixedSize + n else { throw InferenceError("model config: \(b.count) bytes, expected \(fixedSize + n)") }
        guard let source = String(validating: b[fixedSize...], as: UTF8.self) else { throw InferenceError("model config: source name is not UTF-8") }
        let c = ModelConfig(
            vocabSize: u(0), hidden: u(1), layers: u(2), heads: u(3), intermediate: u(4), maxPositions: u(5), typeVocabSize: u(6),
            maxSequenceLength: u(7), layerNormEps: eps, pooling: pooling, normalize: b[41] == 1, lowerCase: b[42] == 1,
            stripAccents: b[43] == 1, tokenizeChineseChars: b[44] == 1, source: source)
        try c.validate()
        return c
    }
}

extension Array where Element == UInt8 {
    @inlinable mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
}

extension UnsafeRawBufferPointer {
    @inlinable func le<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
