import Foundation
import Inference
import Journal
import Projections

/// The token states of one text, each row L2-normalized and quantized to int8 with its own scale (as a
/// memory vector is), so the dot product of two rows is an exact integer times two scales.
public struct TokenMatrix: Sendable, Equatable {
    public let dimension: Int
    /// `rows` × `dimension` values, row-major.
    public let values: [Int8]
    public let scales: [Double]
    public var rows: Int { scales.count }

    /// Each row normalized and quantized (rows of another length than `dimension` are a caller's bug).
    public init(dimension: Int, rows: [[Float]]) {
        self.dimension = dimension
        var v: [Int8] = [], s: [Double] = []
        v.reserveCapacity(rows.count * dimension)
        for r in rows {
            let q = QuantizedVector(normalizing: r)
            v += q.values
            s.append(Double(q.scale))
        }
        values = v
        scales = s
    }

    /// Bytes held (for the cache's bound).
    var bytes: Int { values.count + 8 * scales.count }
}

/// Token matching (SPEC.md §12.7), a recall feature: how well each content word of the query is met
/// somewhere in a memory's own words, read from the encoder's last-layer token states — late
/// interaction in the manner of ColBERT, with the sentence encoder as it is (untrained for it). It finds
/// what neither list scores well: BM25 needs the same stem, and one sentence vector blurs a long turn.
///
/// `match(q, m)` = the mean, over the query's content tokens, of the best cosine with any token of the
/// memory (its `speaker: text` without [CLS] and [SEP]). A query token is a content token when its word
/// piece (without "##") gives a term to the ``Analyzer`` (letters or digits, not a stop word) and is not
/// a piece of a pooled candidate's speaker name. Integer dot products, then Double in a fixed order: the
/// value depends only on the two texts and the encoder.
///
/// Memories' matrices are cached by memory id (a memory's text never changes) up to a byte bound, oldest
/// out first, filled when the engine makes a memory (``remember(_:_:)``) or at its first recall; the
/// last few queries' states are kept from the pass that embedded them (``note(query:states:)``). The
/// caches only save encoder time and never change a value. ``forget()`` empties them (erasure: derived
/// content must not outlive its memory).
public final class TokenMatcher: @unchecked Sendable {
    public let encoder: Encoder
    public let capacityBytes: Int
    private let lock = NSLock()
    private var cache: [ID128: TokenMatrix] = [:]
    private var order: [ID128] = []
    private var head = 0
    private var held = 0
    /// Bumped by ``forget()``: matrices encoded before it are not cached after it (a recall that was
    /// encoding while a user was erased must not put that user's states back).
    private var generation = 0
    private var recentQueries: [(text: String, states: Encoder.TokenStates)] = []
    /// Whether each vocabulary entry is a content piece (see above).
    private let content: [Bool]

    public static let defaultCapacityBytes = 64 << 20

    public init(encoder: Encoder, capacityBytes: Int = TokenMatcher.defaultCapacityBytes) {
        self.encoder = encoder
        self.capacityBytes = capacityBytes
        let t = encoder.tokenizer
        let specials: Set<Int32> = [t.clsID, t.sepID, t.padID, t.unkID]
        content = encoder.model.vocabulary.enumerated().map { (i, piece) in
            guard !specials.contains(Int32(i)) else { return false }
            let word = piece.hasPrefix("##") ? String(piece.dropFirst(2)) : piece
            return !Analyzer.terms(word).isEmpty
        }
    }

    /// The query's content tokens, less the word pieces of `names` (the speakers of the candidates: who
    /// is asked about is the `speaker_named` feature's to weigh, and a name would otherwise be much of
    /// a short question's match).
    public func query(_ text: String, names: Set<String> = []) -> TokenMatrix {
        let drop = Set(names.flatMap { encoder.tokenizer.tokenize($0) })
        let noted = lock.withLock { recentQueries.first { $0.text == text }?.states }
        return matrix(noted ?? encoder.tokenStates([text])[0]) { self.content.indices.contains(Int($0)) && self.content[Int($0)] && !drop.contains($0) }
    }

    /// Keeps a query's token states from the pass that embedded it for candidate generation, so
    /// ``fill(_:query:)`` does not encode the query again (the last few queries; the states are the
    /// same as a pass of their own).
    public func note(query text: String, states: Encoder.TokenStates) {
        lock.withLock {
            recentQueries.removeAll { $0.text == text }
            recentQueries.append((text, states))
            if recentQueries.count > 8 { recentQueries.removeFirst() }
        }
    }

    /// Every token of a memory's text but [CLS] and [SEP].
    public func memory(_ text: String) -> TokenMatrix { memories([text])[0] }

    func memories(_ texts: [String]) -> [TokenMatrix] { encoder.tokenStates(texts).map(memory(states:)) }

    /// A memory's matrix from its text's token states (every token but [CLS] and [SEP]).
    public func memory(states: Encoder.TokenStates) -> TokenMatrix {
        let t = encoder.tokenizer
        return matrix(states) { $0 != t.clsID && $0 != t.sepID }
    }

    /// Caches the matrix of a memory just made (the engine has its text's states from the pass that
    /// embedded it), so its first recall does not encode it again.
    public func remember(_ memory: ID128, _ m: TokenMatrix) {
        lock.withLock { insert(memory, m) }
    }

    private func matrix(_ s: Encoder.TokenStates, keep: (Int32) -> Bool) -> TokenMatrix {
        let h = encoder.config.hidden
        let rows = s.ids.indices.filter { keep(s.ids[$0]) }.map { Array(s.states[($0 * h)..<(($0 + 1) * h)]) }
        return TokenMatrix(dimension: h, rows: rows)
    }

    /// The match of a query's content tokens against a memory's tokens; 0 when either has none.
    public static func match(_ q: TokenMatrix, _ m: TokenMatrix) -> Double {
        guard q.rows > 0, m.rows > 0, q.dimension == m.dimension else { return 0 }
        let d = q.dimension
        var sum = 0.0
        q.values.withUnsafeBufferPointer { qv in
            m.values.withUnsafeBufferPointer { mv in
                for i in 0..<q.rows {
                    var best = -Double.infinity
                    let a = qv.baseAddress! + i * d
                    for j in 0..<m.rows {
                        let b = mv.baseAddress! + j * d
                        var dot: Int32 = 0
                        for k in 0..<d { dot &+= Int32(a[k]) &* Int32(b[k]) }
                        best = max(best, Double(dot) * q.scales[i] * m.scales[j])
                    }
                    sum += best
                }
            }
        }
        return sum / Double(q.rows)
    }

    /// Sets `tokenMatch` of every pooled candidate (``RecallFeatures/inPool(_:)``; the others keep 0, so
    /// the features do not depend on how many candidates a recall asked for). Memories not cached are
    /// encoded in one batch.
    public func fill(_ candidates: inout [Candidate], query text: String) {
        let pooled = candidates.indices.filter { RecallFeatures.inPool(candidates[$0]) }
        guard !pooled.isEmpty else { return }
        let q = query(text, names: Set(pooled.map { candidates[$0].view.record.speaker }.filter { !$0.isEmpty }))
        var found: [ID128: TokenMatrix] = [:]
        var missing: [(ID128, String)] = []
        var started = 0
        lock.withLock {
            started = generation
            for i in pooled {
                let c = candidates[i]
                if let m = cache[c.memory] { found[c.memory] = m } else if !missing.contains(where: { $0.0 == c.memory }) {
                    missing.append((c.memory, Fold.indexedText(speaker: c.view.record.speaker, text: c.view.record.text)))
                }
            }
        }
        if !missing.isEmpty {
            let made = memories(missing.map(\.1))
            lock.withLock {
                for ((id, _), m) in zip(missing, made) {
                    found[id] = m
                    if generation == started { insert(id, m) }
                }
            }
        }
        for i in pooled { candidates[i].tokenMatch = found[candidates[i].memory].map { TokenMatcher.match(q, $0) } ?? 0 }
    }

    /// Caller holds the lock.
    private func insert(_ id: ID128, _ m: TokenMatrix) {
        guard cache[id] == nil, m.bytes <= capacityBytes else { return }
        while held + m.bytes > capacityBytes, head < order.count {
            if let old = cache.removeValue(forKey: order[head]) { held -= old.bytes }
            head += 1
        }
        if head > 4096, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
        cache[id] = m
        order.append(id)
        held += m.bytes
    }

    /// Empties the cache.
    public func forget() {
        lock.withLock {
            cache.removeAll()
            order.removeAll()
            head = 0
            held = 0
            recentQueries.removeAll()
            generation += 1
        }
    }

    /// Memories cached and bytes held.
    public var cached: (memories: Int, bytes: Int) { lock.withLock { (cache.count, held) } }
}
