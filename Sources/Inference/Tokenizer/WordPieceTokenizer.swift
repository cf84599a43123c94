import Foundation

/// BERT's tokenizer: the basic tokenizer (text cleanup, CJK splitting, accent stripping, lower-casing,
/// whitespace and punctuation splitting) followed by greedy longest-match WordPiece, with the special
/// tokens matched verbatim in the raw text first. Produces exactly the ids of the reference
/// `tokenizers` implementation (BertNormalizer + BertPreTokenizer + WordPiece + [CLS]/[SEP] template);
/// `Fixtures/tokenizer/wordpiece-cases.jsonl` holds 2,400 cases the tests compare against.
///
/// Works on Unicode scalars, never on grapheme clusters, and looks tokens up by their UTF-8 bytes
/// (Swift's `String` equality is canonical equivalence, which the reference does not use).
public struct WordPieceTokenizer: Sendable {
    public let lowerCase: Bool
    public let stripAccents: Bool
    public let tokenizeChineseChars: Bool
    public let maxInputCharsPerWord = 100
    public let clsID: Int32, sepID: Int32, padID: Int32, unkID: Int32
    private let vocab: [[UInt8]: Int32]
    /// Special tokens matched in the raw text, longest first.
    private let specials: [(text: [Unicode.Scalar], id: Int32)]

    public init(vocabulary: [String], lowerCase: Bool = true, stripAccents: Bool? = nil, tokenizeChineseChars: Bool = true) throws(InferenceError) {
        var map: [[UInt8]: Int32] = [:]
        map.reserveCapacity(vocabulary.count)
        for (i, t) in vocabulary.enumerated() where map[Array(t.utf8)] == nil { map[Array(t.utf8)] = Int32(i) }
        vocab = map
        func id(_ t: String) throws(InferenceError) -> Int32 {
            guard let v = map[Array(t.utf8)] else { throw InferenceError("tokenizer vocabulary has no \(t) token") }
            return v
        }
        clsID = try id("[CLS]")
        sepID = try id("[SEP]")
        padID = try id("[PAD]")
        unkID = try id("[UNK]")
        var sp: [(text: [Unicode.Scalar], id: Int32)] = []
        for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] { if let v = map[Array(t.utf8)] { sp.append((Array(t.unicodeScalars), v)) } }
        specials = sp.sorted { $0.text.count > $1.text.count }
        self.lowerCase = lowerCase
        self.stripAccents = stripAccents ?? lowerCase
        self.tokenizeChineseChars = tokenizeChineseChars
    }

    public init(model: ModelFile) throws(InferenceError) {
        try self.init(
            vocabulary: model.vocabulary, lowerCase: model.config.lowerCase, stripAccents: model.config.stripAccents,
            tokenizeChineseChars: model.config.tokenizeChineseChars)
    }

    /// The result of encoding one text.
    public struct Encoding: Sendable, Equatable {
        /// [CLS] tokens… [SEP], at most the requested maximum length.
        public var ids: [Int32]
        /// Tokens dropped by truncation (0 when the text fit).
        public var truncatedTokens: Int
        public init(ids: [Int32], truncatedTokens: Int) {
            self.ids = ids
            self.truncatedTokens = truncatedTokens
        }
    }

    /// Encodes `text` as [CLS] tokens [SEP]; keeps the first `maxLength - 2` tokens when longer.
    public func encode(_ text: String, maxLength: Int = Int.max) -> Encoding {
        let tokens = tokenize(text)
        let room = max(0, maxLength - 2)
        let kept = tokens.count > room ? Array(tokens.prefix(room)) : tokens
        return Encoding(ids: [clsID] + kept + [sepID], truncatedTokens: tokens.count - kept.count)
    }

    /// Token ids without special tokens around them.
    public func tokenize(_ text: String) -> [Int32] {
        var out: [Int32] = []
        // Special tokens are split off the raw text before any normalization.
        let scalars = Array(text.unicodeScalars)
        var start = 0, i = 0
        while i < scalars.count {
            if scalars[i] == "[", let match = specials.first(where: { matches($0.text, scalars, at: i) }) {
                basic(scalars[start..<i], into: &out)
                out.append(match.id)
                i += match.text.count
                start = i
            } else {
                i += 1
            }
        }
        basic(scalars[start..<scalars.count], into: &out)
        return out
    }

    private func matches(_ needle: [Unicode.Scalar], _ hay: [Unicode.Scalar], at i: Int) -> Bool {
        guard i + needle.count <= hay.count else { return false }
        for k in 0..<needle.count where hay[i + k] != needle[k] { return false }
        return true
    }

    /// Normalizes a span of raw text and appends the WordPiece ids of its words.
    private func basic(_ raw: ArraySlice<Unicode.Scalar>, into out: inout [Int32]) {
        if raw.isEmpty { return }
        // 1. clean text: drop NUL, U+FFFD and control characters; whitespace becomes a space.
        // 2. CJK ideographs get spaces around them.
        var s = String.UnicodeScalarView()
        for c in raw {
            if c.value == 0 || c.value == 0xFFFD || isControl(c) { continue }
            if isWhitespace(c) { s.append(" "); continue }
            if tokenizeChineseChars && isCJK(c) { s.append(" "); s.append(c); s.append(" "); continue }
            s.append(c)
        }
        var text = String(s)
        // 3. accents: canonical decomposition, then drop nonspacing marks. 4. lower case (full mapping).
        if stripAccents {
            var t = String.UnicodeScalarView()
            for c in text.decomposedStringWithCanonicalMapping.unicodeScalars where category(c) != .nonspacingMark { t.append(c) }
            text = String(t)
        }
        if lowerCase {
            var t = String.UnicodeScalarView()
            for c in text.unicodeScalars { t.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars) }
            text = String(t)
        }
        // 5. split on whitespace, and isolate each punctuation character.
        var word: [Unicode.Scalar] = []
        for c in text.unicodeScalars {
            if isWhitespace(c) {
                wordPiece(word, into: &out)
                word.removeAll(keepingCapacity: true)
            } else if isPunctuation(c) {
                wordPiece(word, into: &out)
                word.removeAll(keepingCapacity: true)
                wordPiece([c], into: &out)
            } else {
                word.append(c)
            }
        }
        wordPiece(word, into: &out)
    }

    /// Greedy longest-match-first WordPiece; a word with any unmatched piece, or longer than 100
    /// characters, becomes [UNK].
    private func wordPiece(_ word: [Unicode.Scalar], into out: inout [Int32]) {
        if word.isEmpty { return }
        if word.count > maxInputCharsPerWord { out.append(unkID); return }
        let utf8 = word.map { Array(String($0).utf8) }
        var pieces: [Int32] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int32?
            while end > start {
                var key: [UInt8] = start > 0 ? [0x23, 0x23] : []
                for k in start..<end { key += utf8[k] }
                if let id = vocab[key] { found = id; break }
                end -= 1
            }
            guard let id = found else { out.append(unkID); return }
            pieces.append(id)
            start = end
        }
        out += pieces
    }

    // Character classes, as the reference defines them.

    func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        c == "\t" || c == "\n" || c == "\r" || c.properties.isWhitespace
    }

    /// The reference classifies characters with Unicode 9.0 tables (the `unicode_categories` crate):
    /// a scalar assigned later is unassigned there — not a control, mark or punctuation character —
    /// so it survives normalization and becomes [UNK]. Swift's tables are newer; `age` tells them apart.
    func category(_ c: Unicode.Scalar) -> Unicode.GeneralCategory {
        guard let age = c.properties.age, age.major < 9 || (age.major == 9 && age.minor == 0) else { return .unassigned }
        return c.properties.generalCategory
    }

    func isControl(_ c: Unicode.Scalar) -> Bool {
        if c == "\t" || c == "\n" || c == "\r" { return false }
        switch category(c) {
        case .control, .format, .surrogate, .privateUse: return true
        default: return false
        }
    }

    func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII, (0x21...0x2F).contains(c.value) || (0x3A...0x40).contains(c.value) || (0x5B...0x60).contains(c.value) || (0x7B...0x7E).contains(c.value) {
            return true
        }
        switch category(c) {
        case .connectorPunctuation, .dashPunctuation, .closePunctuation, .finalPunctuation, .initialPunctuation, .otherPunctuation,
            .openPunctuation:
            return true
        default: return false
        }
    }

    /// The reference's ranges, including its 0x2B920 (not 0x2B820) lower bound for Extension E.
    func isCJK(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        return (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B920...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }
}
