import Foundation

/// The analyzer as first written (format 1 and 2 stores were built with it), kept as the reference
/// the production analyzer must equal term for term. The lexical analyzer of the BM25 index (SPEC.md §11.4): Unicode word splitting, lower-casing,
/// English stop words removed, Porter stemming of ASCII words. The same function analyzes memories
/// and queries, and its output is stored, so changing it is a projection format change.
enum ReferenceAnalyzer {
    static let maxTermBytes = 64

    /// The terms of `text` in order (with repeats).
    static func terms(_ text: String) -> [String] {
        var out: [String] = []
        var current: [UInt8] = []
        var ascii = true
        func flush() {
            defer {
                current.removeAll(keepingCapacity: true)
                ascii = true
            }
            guard !current.isEmpty, current.count <= maxTermBytes else { return }
            if current.count <= 5 && stopWords.contains(String(decoding: current, as: UTF8.self)) { return }
            var word = current
            if ascii && word.count > 2 && word.allSatisfy({ $0 >= 0x61 && $0 <= 0x7A }) {
                word = ReferencePorter.stem(word)
            }
            let s = String(decoding: word, as: UTF8.self)
            if !stopWords.contains(s) { out.append(s) }
        }
        for scalar in text.unicodeScalars {
            if scalar.isASCII {
                var v = UInt8(scalar.value)
                if v >= 0x41 && v <= 0x5A { v += 32 }
                if (v >= 0x61 && v <= 0x7A) || (v >= 0x30 && v <= 0x39) {
                    current.append(v)
                } else {
                    flush()
                }
                continue
            }
            let p = scalar.properties
            if p.isAlphabetic || p.numericType != nil {
                if scalar.isASCII {
                    var v = UInt8(scalar.value)
                    if v >= 0x41 && v <= 0x5A { v += 32 }
                    current.append(v)
                } else {
                    ascii = false
                    for l in p.lowercaseMapping.unicodeScalars {
                        current.append(contentsOf: Array(String(l).utf8))
                    }
                }
            } else if p.generalCategory == .nonspacingMark && !current.isEmpty {
                continue  // combining accents stay with their word
            } else {
                flush()
            }
        }
        flush()
        return out
    }

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
enum ReferencePorter {
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
    static let step4Suffixes: [StaticString] = [
        "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou",
        "ism", "ate", "iti",
        "ous", "ive", "ize",
    ]
    static func stem(_ word: [UInt8]) -> [UInt8] {
        var s = State(b: word)
        s.step1ab()
        s.step1c()
        s.step2()
        s.step3()
        s.step4()
        s.step5()
        return Array(s.b[0...s.k])
    }

    struct State {
        var b: [UInt8]
        var k: Int
        var j = 0
        init(b: [UInt8]) {
            self.b = b
            k = b.count - 1
        }

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
            guard n <= k + 1 else { return false }
            let u = s.utf8Start
            let start = k - n + 1
            for i in 0..<n where b[start + i] != u[i] { return false }
            j = k - n
            return true
        }
        mutating func setto(_ s: StaticString) {
            let n = s.utf8CodeUnitCount
            b.replaceSubrange((j + 1)..<(k + 1), with: UnsafeBufferPointer(start: s.utf8Start, count: n))
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
        mutating func step2() {
            guard k >= 1 else { return }
            let rules = ReferencePorter.step2Rules
            for (suffix, replacement) in rules where ends(suffix) {
                r(replacement)
                return
            }
        }
        mutating func step3() {
            let rules = ReferencePorter.step3Rules
            for (suffix, replacement) in rules where ends(suffix) {
                r(replacement)
                return
            }
        }
        mutating func step4() {
            guard k >= 1 else { return }
            let suffixes = ReferencePorter.step4Suffixes
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
