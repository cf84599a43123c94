/// The lexical analyzer of the BM25 index (SPEC.md §11.4): Unicode word splitting, lower-casing,
/// English stop words removed, Porter stemming of ASCII words. The same function analyzes memories
/// and queries, and its output is stored, so changing it is a projection format change.
public enum Analyzer {
    public static let maxTermBytes = 64

    /// The terms of a text back to back in `bytes`; term `i` is `bytes[starts[i]..<starts[i + 1]]`
    /// (`starts` ends with `bytes.count`). One buffer for all terms: the fold analyzes every memory.
    struct Terms {
        var bytes: [UInt8] = []
        var starts: [Int] = [0]
        var count: Int { starts.count - 1 }
        func term(_ i: Int) -> String { String(decoding: bytes[starts[i]..<starts[i + 1]], as: UTF8.self) }

        /// The distinct terms (byte ranges into `bytes`) sorted by their bytes, each with its count.
        func counted() -> [(range: Range<Int>, tf: UInt16)] {
            bytes.withUnsafeBufferPointer { b in
                func term(_ i: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: b[starts[i]..<starts[i + 1]]) }
                let order = (0..<count).sorted { term($0).lexicographicallyPrecedes(term($1)) }
                var out: [(range: Range<Int>, tf: UInt16)] = []
                out.reserveCapacity(order.count)
                var i = 0
                while i < order.count {
                    var j = i + 1
                    while j < order.count && term(order[j]).elementsEqual(term(order[i])) { j += 1 }
                    out.append((starts[order[i]]..<starts[order[i] + 1], UInt16(min(j - i, Int(UInt16.max)))))
                    i = j
                }
                return out
            }
        }
    }

    /// The terms of `text` in order (with repeats).
    public static func terms(_ text: String) -> [String] {
        let t = analyze(text)
        return (0..<t.count).map(t.term)
    }

    /// Splits, lower-cases, drops stop words and stems, reading the text's UTF-8 directly: ASCII
    /// bytes take a table-free fast path, other scalars are decoded and judged by their Unicode
    /// properties. Equal term for term to the scalar-by-scalar definition (tested against it).
    static func analyze(_ text: String) -> Terms {
        var text = text
        return text.withUTF8 { utf8 in
            // The word being read, with room for the one byte Porter's step 1b may add.
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maxTermBytes + 2) { word in
                var r = WordReader(word: word.baseAddress!)
                r.out.bytes.reserveCapacity(utf8.count)
                var i = 0
                let end = utf8.count
                while i < end {
                    let lead = utf8[i]
                    if lead < 0x80 {
                        var v = lead
                        if v >= 0x41 && v <= 0x5A { v += 32 }
                        if (v >= 0x61 && v <= 0x7A) || (v >= 0x30 && v <= 0x39) { r.push(v) } else { r.flush() }
                        i += 1
                        continue
                    }
                    // A multi-byte scalar (the text is valid UTF-8).
                    let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2
                    var value = UInt32(lead) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
                    for k in 1..<length { value = value << 6 | UInt32(utf8[i + k] & 0x3F) }
                    i += length
                    let p = Unicode.Scalar(value)!.properties
                    if p.isAlphabetic || p.numericType != nil {
                        r.ascii = false
                        for l in p.lowercaseMapping.utf8 { r.push(l) }
                    } else if p.generalCategory == .nonspacingMark && r.n > 0 {
                        continue  // combining accents stay with their word
                    } else {
                        r.flush()
                    }
                }
                r.flush()
                return r.out
            }
        }
    }

    /// The word being read and the terms so far.
    private struct WordReader {
        let w: UnsafeMutablePointer<UInt8>
        /// Bytes in the word: counted past `maxTermBytes`, stored only up to one past it.
        var n = 0
        var ascii = true
        var out = Terms()

        init(word: UnsafeMutablePointer<UInt8>) { w = word }

        @inline(__always)
        mutating func push(_ byte: UInt8) {
            if n <= maxTermBytes { w[n] = byte }
            n += 1
        }

        mutating func flush() {
            defer { n = 0; ascii = true }
            guard n > 0, n <= maxTermBytes else { return }
            if n <= 5 && isStopWord(w, n) { return }
            var len = n
            if ascii && len > 2 && isLowercaseLetters(w, len) {
                len = Porter.stem(w, count: len)
                if len <= 5 && isStopWord(w, len) { return }
            }
            out.bytes.append(contentsOf: UnsafeBufferPointer(start: w, count: len))
            out.starts.append(out.bytes.count)
        }
    }

    @inline(__always)
    static func isLowercaseLetters(_ w: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        for i in 0..<count where w[i] < 0x61 || w[i] > 0x7A { return false }
        return true
    }

    /// Whether the `count` (≤ 5) bytes at `w` are a stop word.
    @inline(__always)
    static func isStopWord(_ w: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        var key: UInt64 = 0
        for i in 0..<count { key |= UInt64(w[i]) << (8 * UInt64(i)) }
        return stopWordTable.withUnsafeBufferPointer { t in
            var i = stopWordSlot(key)
            while true {
                if t[i] == key { return true }
                if t[i] == 0 { return false }
                i = (i + 1) & (t.count - 1)
            }
        }
    }

    /// The stop words packed little-endian into a UInt64 each (words never contain a 0 byte), in an
    /// open-addressing table of 512 slots (0 = empty), probed linearly from ``stopWordSlot(_:)``.
    static let stopWordTable: [UInt64] = {
        var t = [UInt64](repeating: 0, count: 512)
        for w in stopWords {
            var key: UInt64 = 0
            for (i, b) in w.utf8.enumerated() { key |= UInt64(b) << (8 * UInt64(i)) }
            var i = stopWordSlot(key)
            while t[i] != 0 && t[i] != key { i = (i + 1) & 511 }
            t[i] = key
        }
        return t
    }()

    @inline(__always)
    static func stopWordSlot(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 55) }

    /// Stop words (at most 5 bytes): a word is dropped when it or its stem is one.
    static let stopWords: Set<String> = [
        "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "for", "from", "had", "ha",
        "has", "have", "he", "her",
        "hi", "him", "his", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or",
        "our", "s", "she", "so",
        "t", "than", "that", "the", "their", "them", "then", "there", "these", "they", "thi", "this",
        "to", "wa", "was", "we",
        "were", "what", "when", "which", "who", "whom", "why", "will", "with", "would", "you", "your",
        "do", "did", "doe",
        "does", "am", "about", "just", "can", "could", "should", "how", "where", "all", "any", "some",
        "up", "out", "not",
        "no", "yes", "oh", "ll", "ve", "re", "d", "m",
    ]
}

/// M. F. Porter's 1980 suffix-stripping algorithm over lower-case ASCII letters.
enum Porter {
    static let step2Rules: [(StaticString, StaticString)] = [
        ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"),
        ("bli", "ble"),
        ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"),
        ("ation", "ate"),
        ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"),
        ("aliti", "al"),
        ("iviti", "ive"), ("biliti", "ble"), ("logi", "log"),
    ]
    static let step3Rules: [(StaticString, StaticString)] = [
        ("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""),
        ("ness", ""),
    ]
    /// Each step's rules by the last letter of their suffix (a - z), in list order: a suffix can only
    /// match a word ending in its last letter, and the first matching rule in list order still wins.
    static let step2Buckets = buckets(step2Rules) { $0.0 }
    static let step3Buckets = buckets(step3Rules) { $0.0 }
    static let step4Buckets = buckets(step4Suffixes) { $0 }

    static func buckets<T>(_ rules: [T], _ suffix: (T) -> StaticString) -> [[T]] {
        var out = Array(repeating: [T](), count: 26)
        for r in rules {
            let s = suffix(r)
            out[Int(s.utf8Start[s.utf8CodeUnitCount - 1] - 0x61)].append(r)
        }
        return out
    }

    static let step4Suffixes: [StaticString] = [
        "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou",
        "ism", "ate", "iti",
        "ous", "ive", "ize",
    ]
    static func stem(_ word: [UInt8]) -> [UInt8] {
        var b = word + [0]
        let n = b.withUnsafeMutableBufferPointer { stem($0.baseAddress!, count: word.count) }
        return Array(b[0..<n])
    }

    /// Stems the `count` bytes at `b` in place and returns the stem's length. The buffer must hold
    /// `count + 1` bytes: step 1b may lengthen a word by one ("-ing" removed, then "-e" added).
    static func stem(_ b: UnsafeMutablePointer<UInt8>, count: Int) -> Int {
        var s = State(b: b, k: count - 1)
        s.step1ab()
        s.step1c()
        s.step2()
        s.step3()
        s.step4()
        s.step5()
        return s.k + 1
    }

    struct State {
        let b: UnsafeMutablePointer<UInt8>
        var k: Int
        var j = 0

        func cons(_ i: Int) -> Bool {
            switch b[i] {
            case 0x61, 0x65, 0x69, 0x6F, 0x75: return false
            case 0x79: return i == 0 ? true : !cons(i - 1)
            default: return true
            }
        }
        /// The number of consonant sequences between 0 and j (the "m" of the paper).
        func m() -> Int {
            var n = 0
            var i = 0
            while true {
                if i > j { return n }
                if !cons(i) { break }
                i += 1
            }
            i += 1
            while true {
                while true {
                    if i > j { return n }
                    if cons(i) { break }
                    i += 1
                }
                i += 1
                n += 1
                while true {
                    if i > j { return n }
                    if !cons(i) { break }
                    i += 1
                }
                i += 1
            }
        }
        func vowelInStem() -> Bool { (0...max(0, j)).contains { $0 <= j && !cons($0) } }
        func doublec(_ i: Int) -> Bool { i >= 1 && b[i] == b[i - 1] && cons(i) }
        func cvc(_ i: Int) -> Bool {
            guard i >= 2, cons(i), !cons(i - 1), cons(i - 2) else { return false }
            let c = b[i]
            return c != 0x77 && c != 0x78 && c != 0x79
        }
        mutating func ends(_ s: StaticString) -> Bool {
            let n = s.utf8CodeUnitCount
            let u = s.utf8Start
            guard n <= k + 1, u[n - 1] == b[k] else { return false }
            let start = k - n + 1
            for i in 0..<n where b[start + i] != u[i] { return false }
            j = k - n
            return true
        }
        mutating func setto(_ s: StaticString) {
            let n = s.utf8CodeUnitCount
            let u = s.utf8Start
            for i in 0..<n { b[j + 1 + i] = u[i] }
            k = j + n
        }
        mutating func r(_ s: StaticString) { if m() > 0 { setto(s) } }

        mutating func step1ab() {
            if b[k] == 0x73 {
                if ends("sses") {
                    k -= 2
                } else if ends("ies") {
                    setto("i")
                } else if k >= 1 && b[k - 1] != 0x73 {
                    k -= 1
                }
            }
            if ends("eed") {
                if m() > 0 { k -= 1 }
            } else if (ends("ed") || ends("ing")) && vowelInStem() {
                k = j
                if ends("at") {
                    setto("ate")
                } else if ends("bl") {
                    setto("ble")
                } else if ends("iz") {
                    setto("ize")
                } else if doublec(k) {
                    k -= 1
                    let c = b[k]
                    if c == 0x6C || c == 0x73 || c == 0x7A { k += 1 }
                } else if m() == 1 && cvc(k) {
                    j = k
                    setto("e")
                }
            }
        }
        mutating func step1c() {
            if ends("y") && vowelInStem() { b[k] = 0x69 }
        }
        /// The bucket of rules whose suffix ends in the word's last letter.
        func bucket<T>(_ buckets: [[T]]) -> [T] {
            let c = b[k]
            return c >= 0x61 && c <= 0x7A ? buckets[Int(c - 0x61)] : []
        }
        mutating func step2() {
            guard k >= 1 else { return }
            let rules = bucket(Porter.step2Buckets)
            for (suffix, replacement) in rules where ends(suffix) {
                r(replacement)
                return
            }
        }
        mutating func step3() {
            let rules = bucket(Porter.step3Buckets)
            for (suffix, replacement) in rules where ends(suffix) {
                r(replacement)
                return
            }
        }
        mutating func step4() {
            guard k >= 1 else { return }
            let suffixes = bucket(Porter.step4Buckets)
            for suffix in suffixes where ends(suffix) {
                if suffix.utf8CodeUnitCount == 3 && b[k] == 0x6E
                    && !(j >= 0 && (b[j] == 0x73 || b[j] == 0x74))
                {
                    return
                }
                if m() > 1 { k = j }
                return
            }
        }
        mutating func step5() {
            j = k
            if b[k] == 0x65 {
                let a = m()
                if a > 1 || (a == 1 && !cvc(k - 1)) { k -= 1 }
            }
            if b[k] == 0x6C && doublec(k) && m() > 1 { k -= 1 }
        }
    }
}
