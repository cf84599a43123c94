import Foundation
import Journal
import Testing
import Workloads
import Projections
import CKernels

@Suite struct AnalyzerTests {
    /// Examples from Porter's paper and its reference vocabulary.
    @Test(arguments: [
        ("caresses", "caress"), ("ponies", "poni"), ("ties", "ti"), ("cats", "cat"), ("feed", "feed"), ("agreed", "agre"),
        ("plastered", "plaster"), ("motoring", "motor"), ("sing", "sing"), ("conflated", "conflat"), ("troubled", "troubl"),
        ("sized", "size"), ("hopping", "hop"), ("tanned", "tan"), ("falling", "fall"), ("hissing", "hiss"), ("fizzed", "fizz"),
        ("failing", "fail"), ("filing", "file"), ("happy", "happi"), ("relational", "relat"), ("conditional", "condit"),
        ("rational", "ration"), ("valenci", "valenc"), ("digitizer", "digit"), ("generalization", "gener"), ("triplicate", "triplic"),
        ("formative", "form"), ("electrical", "electr"), ("hopeful", "hope"), ("goodness", "good"), ("revival", "reviv"),
        ("allowance", "allow"), ("adjustment", "adjust"), ("adoption", "adopt"), ("controll", "control"), ("roll", "roll"),
        ("running", "run"), ("mountains", "mountain"),
    ])
    func porter(_ word: String, _ stem: String) {
        #expect(Analyzer.terms(word) == [stem])
    }

    @Test func splitsLowercasesAndDropsStopWords() {
        #expect(Analyzer.terms("The Cat's 3 dogs, and I") == ["cat", "3", "dog"])
        #expect(Analyzer.terms("Café in Zürich — 東京") == ["café", "zürich", "東京"])
        #expect(Analyzer.terms("") == [])
        #expect(Analyzer.terms("!!! ...") == [])
    }
}

@Suite struct DeterministicMathTests {
    @Test func expAndLogAgreeWithLibm() {
        var rng = SplitMix64(seed: 1)
        for _ in 0..<20_000 {
            let x = -700 * Double(rng.next() >> 11) / Double(1 << 53)
            let e = DeterministicMath.exp(x), r = Foundation.exp(x)
            #expect(abs(e - r) <= 4 * r.ulp, "exp(\(x)) = \(e), libm \(r)")
            let y = Double(rng.next() >> 11) / Double(1 << 53) * 1e6 + 1e-9
            #expect(abs(DeterministicMath.log(y) - Foundation.log(y)) <= 4 * Foundation.log(y).magnitude.ulp + 1e-300, "log(\(y))")
        }
        #expect(DeterministicMath.exp(0) == 1)
        #expect(DeterministicMath.exp(-800) == 0)
        #expect(DeterministicMath.log(1) == 0)
        #expect(DeterministicMath.log(-1).isNaN)
    }
}

@Suite struct EventCodecTests {
    /// Every event the generator makes decodes back to itself.
    @Test func roundTrip() throws {
        var gen = MemoryEventGenerator(seed: 5, users: 3, erasureRate: 0.01)
        var kinds = Set<MemoryEventType>()
        for _ in 0..<3000 {
            let s = gen.next()
            kinds.insert(s.event.type)
            let p = s.event.payload()
            try PayloadReader.validate(p)
            #expect(try MemoryEvent.decode(type: s.event.type.rawValue, payload: p) == s.event)
        }
        #expect(kinds.count >= 15)
        // Contextual gate decisions (context observation, dated index) round-trip too.
        var contextual = MemoryEventGenerator(seed: 6, users: 2, erasureRate: 0)
        contextual.contextual = true
        var withContext = 0
        for _ in 0..<1000 {
            let s = contextual.next()
            if case .gated(let g) = s.event, !g.context.isZero, g.dated { withContext += 1 }
            #expect(try MemoryEvent.decode(type: s.event.type.rawValue, payload: s.event.payload()) == s.event)
        }
        #expect(withContext >= 50)
        let model = MemoryEvent.modelActivation(.init(model: [UInt8](repeating: 7, count: 32), name: "psm-1"))
        #expect(try MemoryEvent.decode(type: model.type.rawValue, payload: model.payload()) == model)
        let obs = MemoryEvent.observation(.init(text: "hi", session: "s", speaker: "A", role: "user", sourceID: "x", metadata: ["b": "2", "a": "1"]))
        #expect(try MemoryEvent.decode(type: obs.type.rawValue, payload: obs.payload()) == obs)
    }

    @Test func unknownTypesAreNotMemoryEvents() throws {
        #expect(try MemoryEvent.decode(type: 0xFF02, payload: []) == nil)
    }

    /// Malformed payloads are refused with the field named.
    @Test func rejectsMalformed() throws {
        func payload(_ build: (inout PayloadWriter) -> Void) -> [UInt8] {
            var w = PayloadWriter()
            build(&w)
            return w.bytes
        }
        let cases: [(UInt16, [UInt8], String)] = [
            (0x0101, payload { $0.string(1, "x"); $0.string(7, "extra") }, "unknown field 7"),
            (0x0101, payload { $0.string(2, "session only") }, "field 1: required"),
            (0x0101, payload { $0.bytes(1, []) }, "empty string"),
            (0x0102, payload { $0.string(1, "q"); $0.uint(2, 0) }, "k 0"),
            (0x0201, payload { $0.bytes(1, [1, 2]); $0.bytes(2, [UInt8](repeating: 0, count: 32)) }, "32-byte digest"),
            (0x0203, payload { $0.bytes(1, .init(repeating: 0, count: 32)); $0.bytes(2, .init(repeating: 0, count: 32)); $0.id(3, ID128(high: 1, low: 1)); $0.int(4, 20_000); $0.uint(5, 10) }, "outside"),
            (0x0203, payload { $0.bytes(1, .init(repeating: 0, count: 32)); $0.bytes(2, .init(repeating: 0, count: 32)); $0.id(3, ID128(high: 1, low: 1)); $0.int(4, 1); $0.uint(5, 0) }, "stability 0"),
            (0x0101, [0xFF], "non-canonical"),
            (0x0201, payload { $0.bytes(1, .init(repeating: 0, count: 32)); $0.bytes(2, .init(repeating: 0, count: 32)); $0.id(3, ID128(high: 1, low: 1)); $0.bool(4, true); $0.id(5, ID128(high: 2, low: 2)); $0.uint(6, 1); $0.uint(7, 1); $0.int(8, 0); $0.int(9, 0); $0.int(10, 0); $0.uint(11, 60); $0.uint(15, 0) }, "a flag must be 1 or omitted"),
        ]
        for (type, bytes, needle) in cases {
            do {
                _ = try MemoryEvent.decode(type: type, payload: bytes)
                Issue.record("type \(type) payload \(bytes) decoded, expected an error mentioning \(needle)")
            } catch {
                #expect("\(error)".contains(needle), "\(error)")
            }
        }
    }
}

@Suite struct DateTextTests {
    /// The index's date text equals Foundation's UTC calendar for times across four centuries,
    /// including negative times and the last microsecond of a day.
    @Test func matchesTheGregorianCalendar() {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "d MMMM yyyy"
        var rng = SplitMix64(seed: 4)
        var times: [Int64] = [0, -1, 86_400_000_000 - 1, 86_400_000_000, 951_782_400_000_000, 4_107_542_400_000_000 - 1]
        for _ in 0..<5000 { times.append(Int64(rng.next() % 12_600_000_000_000_000) - 6_300_000_000_000_000) }
        for t in times {
            let micro = t % 1_000_000 < 0 ? t / 1_000_000 - 1 : t / 1_000_000
            #expect(Fold.dateText(t) == f.string(from: Date(timeIntervalSince1970: Double(micro))), "time \(t)")
        }
    }
}

@Suite struct DenseSearchTests {
    /// Sign-bit codes against the definition (bit i of a vector's code is whether value i > 0), for
    /// dimensions that fill whole words and ones that leave a partial last word.
    @Test(arguments: [1, 8, 63, 64, 65, 384, 400]) func codesMatchTheDefinition(dimension d: Int) {
        var rng = SplitMix64(seed: UInt64(d))
        let n = 37
        let vectors = (0..<(n * d)).map { _ in Int8(truncatingIfNeeded: rng.next()) }
        let w = DenseSearch.words(d)
        var expected = [UInt64](repeating: 0, count: n * w)
        for slot in 0..<n {
            for i in 0..<d where vectors[slot * d + i] > 0 { expected[slot * w + i / 64] |= 1 << UInt64(i % 64) }
        }
        #expect(DenseSearch.codes(vectors, dimension: d) == expected)
    }

    /// The C kernel (POPCNT or portable, chosen at run time) counts exactly what Swift counts.
    @Test func hammingKernelMatchesReference() {
        var rng = SplitMix64(seed: 9)
        let w = 6, n = 2000
        let codes = (0..<(n * w)).map { _ in rng.next() }
        let q = (0..<w).map { _ in rng.next() }
        let skip = (0..<n).map { UInt8($0 % 17 == 0 ? 1 : 0) }
        var out = [UInt16](repeating: 0, count: n)
        let scales = skip.map { $0 != 0 ? Float(0) : 0.01 }
        psm_hamming(codes, q, w, n, scales, &out)
        for i in 0..<n {
            let expected = skip[i] != 0 ? UInt16.max : UInt16((0..<w).map { (codes[i * w + $0] ^ q[$0]).nonzeroBitCount }.reduce(0, +))
            #expect(out[i] == expected, "code \(i)")
        }
    }

    /// With more vectors than the shortlist, a stored vector queried with a little noise is still found first.
    @Test func shortlistKeepsNearNeighbours() {
        var rng = SplitMix64(seed: 4)
        func unit() -> Float { Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) }
        let d = 384, n = 6000
        var raw: [[Float]] = []
        var vectors: [Int8] = [], scales: [Float] = []
        for _ in 0..<n {
            let v = (0..<d).map { _ in unit() }
            raw.append(v)
            let q = QuantizedVector(normalizing: v)
            vectors += q.values
            scales.append(q.scale)
        }
        let codes = DenseSearch.codes(vectors, dimension: d)
        #expect(DenseSearch.shortlist(50, n) < n)
        for target in stride(from: 0, to: n, by: 301) {
            let query = QuantizedVector(normalizing: raw[target].map { $0 + 0.3 * unit() })
            let top = DenseSearch.top(query, vectors: vectors, scales: scales, codes: codes, perList: 10)
            #expect(top.first?.slot == UInt32(target), "vector \(target) not found first")
            #expect(top.count == 10)
            let again = DenseSearch.top(query, vectors: vectors, scales: scales, codes: codes, perList: 10)
            #expect(top.map(\.slot) == again.map(\.slot) && top.map(\.score) == again.map(\.score))
        }
    }
}

/// The byte-level analyzer against the scalar-by-scalar reference it replaced: equal term for term
/// on seeded random texts mixing ASCII words, stop words, suffixes Porter rewrites, digits, accents
/// (precomposed and combining), scripts with case, CJK, multi-scalar lower-case mappings, emoji and
/// over-long words.
@Suite struct AnalyzerEquivalenceTests {
    static let pieces: [String] = [
        "The", "cat", "running", "Relational", "generalization", "hopping", "ponies", "agreed", "happy", "sized",
        "I", "a", "was", "this", "THIS", "their", "Which", "about", "thi", "doe", "has", "does", "ll", "re", "ve", "yes", "oh", "ing", "bled", "eed",
        "2023", "7th", "x1", "café", "Zürich", "naïve", "e\u{301}te\u{301}", "\u{301}", "ΣΟΦΙΑ", "Ελληνικά", "東京",
        "日本語", "İstanbul", "STRASSE", "Straße", "ẞ", "ǅemal", "ﬁne", "٣٤", "Ⅻ", "😀", "👩‍💻", "—", "…", "-", "'",
        "’s", ",", ".", "!!", " ", "\n", "\t", "a1b2", "Ǆ", "ὈΔΥΣΣΕΎΣ", "Ꭰ", "ꭰ", "ŉ", "ǰ", "ΐ",
        String(repeating: "long", count: 16), String(repeating: "z", count: 65), String(repeating: "é", count: 32),
        String(repeating: "ab", count: 32) + "ing",
    ]

    @Test func equalsTheReferenceOnRandomTexts() {
        var rng = SplitMix64(seed: 2026)
        for _ in 0..<20_000 {
            var text = ""
            for _ in 0..<Int(rng.next() % 24) {
                text += Self.pieces[Int(rng.next() % UInt64(Self.pieces.count))]
                if rng.next() % 3 != 0 { text += " " }
            }
            let expected = ReferenceAnalyzer.terms(text)
            #expect(Analyzer.terms(text) == expected, "\(text.debugDescription)")
            // termCounts: distinct terms sorted by bytes with their counts, and the number of terms.
            var counts: [String: Int] = [:]
            for t in expected { counts[t, default: 0] += 1 }
            let reference = counts.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            let got = Fold.termCounts(text)
            #expect(got.length == UInt16(expected.count))
            #expect(got.terms.map(\.term) == reference.map(\.key) && got.terms.map { Int($0.tf) } == reference.map(\.value), "\(text.debugDescription)")
        }
    }

    @Test func equalsTheReferenceOnConversationText() {
        var text = SampleConversation(seed: 9)
        for _ in 0..<5_000 {
            let t = text.speaker() + ": " + text.observation(targetBytes: 160)
            #expect(Analyzer.terms(t) == ReferenceAnalyzer.terms(t), "\(t.debugDescription)")
        }
    }
}
