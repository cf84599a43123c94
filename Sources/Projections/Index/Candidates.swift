import CKernels
import Dispatch
import Journal

/// One recall candidate and the features the recall weighting sees (SPEC.md §11.4).
public struct Candidate: Sendable, Equatable {
    public var memory: ID128
    public var slot: UInt32
    /// BM25 score (0 when no query term matches) and 1-based rank among lexical hits (0 = not a hit).
    public var lexical: Double
    public var lexicalRank: Int
    /// Cosine similarity of the quantized vectors and 1-based rank among dense hits (0 = not a hit).
    public var dense: Double
    public var denseRank: Int
    /// Reciprocal-rank fusion of the two ranks: the order candidates are returned in.
    public var fused: Double
    public var view: MemoryView
    /// Token matching of the query against the memory's text (SPEC.md §12.7), filled by the engine for
    /// models that weigh it; 0 until then. Candidate generation never sets it.
    public var tokenMatch: Double = 0

    public init(memory: ID128, slot: UInt32, lexical: Double, lexicalRank: Int, dense: Double, denseRank: Int, fused: Double, view: MemoryView) {
        self.memory = memory; self.slot = slot; self.lexical = lexical; self.lexicalRank = lexicalRank
        self.dense = dense; self.denseRank = denseRank; self.fused = fused; self.view = view
    }
}

/// Parameters of candidate generation. Part of the recall semantics (SPEC.md §11.4).
public struct CandidateQuery: Sendable {
    public var text: String
    public var vector: QuantizedVector?
    /// Event time the strengths are computed for.
    public var at: Int64
    /// Hits kept from each of the lexical and dense lists before fusion.
    public var perList: Int
    /// The reciprocal-rank fusion constant k: a hit at rank r adds 1 / (k + r).
    public var fusion: Double

    public init(text: String, vector: QuantizedVector?, at: Int64, perList: Int = 50, fusion: Double = CandidateQuery.defaultFusionConstant) {
        self.text = text; self.vector = vector; self.at = at; self.perList = perList; self.fusion = fusion
    }

    static let k1 = 1.2, b = 0.75
    /// The fusion constant of the rule baseline and of models that do not set one.
    public static let defaultFusionConstant = 60.0
}

/// A bounded selection of the best (score, slot) pairs: higher score first, then lower slot.
struct TopK {
    let k: Int
    private(set) var items: [(score: Double, slot: UInt32)] = []

    init(_ k: Int) { self.k = k; items.reserveCapacity(k + 1) }

    static func better(_ a: (score: Double, slot: UInt32), _ b: (score: Double, slot: UInt32)) -> Bool {
        a.score != b.score ? a.score > b.score : a.slot < b.slot
    }

    var worst: (score: Double, slot: UInt32)? { items.count == k ? items.last : nil }

    mutating func offer(_ score: Double, _ slot: UInt32) {
        let item = (score: score, slot: slot)
        if let w = worst, !TopK.better(item, w) { return }
        var i = items.count
        while i > 0 && TopK.better(item, items[i - 1]) { i -= 1 }
        items.insert(item, at: i)
        if items.count > k { items.removeLast() }
    }

    mutating func merge(_ other: TopK) { for x in other.items { offer(x.score, x.slot) } }
    var sorted: [(score: Double, slot: UInt32)] { items }
}

enum Scoring {
    static func idf(documents n: UInt64, frequency df: Int) -> Double {
        DeterministicMath.log(1 + (Double(n) - Double(df) + 0.5) / (Double(df) + 0.5))
    }

    static func bm25(tf: UInt16, length: UInt16, averageLength: Double, idf: Double) -> Double {
        let t = Double(tf)
        let norm = CandidateQuery.k1 * (1 - CandidateQuery.b + CandidateQuery.b * Double(length) / averageLength)
        return idf * t * (CandidateQuery.k1 + 1) / (t + norm)
    }

    /// Exact int8 dot product.
    @inline(__always)
    static func dot(_ q: UnsafePointer<Int8>, _ v: UnsafePointer<Int8>, _ n: Int) -> Int32 {
        var acc: Int32 = 0
        for i in 0..<n { acc &+= Int32(q[i]) &* Int32(v[i]) }
        return acc
    }

    /// Fuses the two ranked lists and reads the candidates' records. Shared by both paths, so they
    /// agree exactly once their lists agree.
    static func fuse(
        lexical: [(score: Double, slot: UInt32)], dense: [(score: Double, slot: UInt32)], at: Int64, fusion: Double,
        memory: (UInt32) throws -> MemoryView
    ) throws -> [Candidate] {
        var bySlot: [UInt32: Candidate] = [:]
        func entry(_ slot: UInt32) throws -> Candidate {
            if let c = bySlot[slot] { return c }
            let v = try memory(slot)
            return Candidate(memory: v.record.id, slot: slot, lexical: 0, lexicalRank: 0, dense: 0, denseRank: 0, fused: 0, view: v)
        }
        for (i, x) in lexical.enumerated() {
            var c = try entry(x.slot)
            c.lexical = x.score
            c.lexicalRank = i + 1
            bySlot[x.slot] = c
        }
        for (i, x) in dense.enumerated() {
            var c = try entry(x.slot)
            c.dense = x.score
            c.denseRank = i + 1
            bySlot[x.slot] = c
        }
        var out = Array(bySlot.values)
        for i in out.indices {
            var f = 0.0
            if out[i].lexicalRank > 0 { f += 1 / (fusion + Double(out[i].lexicalRank)) }
            if out[i].denseRank > 0 { f += 1 / (fusion + Double(out[i].denseRank)) }
            out[i].fused = f
        }
        out.sort { $0.fused != $1.fused ? $0.fused > $1.fused : $0.memory < $1.memory }
        return out
    }
}

extension UserReader {
    /// Candidate generation straight from the store: the reference path, used for as-of reads. It
    /// loads the user's index from the stored entries and asks it; the live store's ``UserIndex`` is
    /// the same structure kept current by the fold, so both give the same answer.
    public func candidates(_ q: CandidateQuery, name: String) throws -> [Candidate] {
        _ = try liveUser(name)
        let index = try UserIndex.load(kv, user: user)
        let (lexical, dense) = index.lists(q)
        return try Scoring.fuse(lexical: lexical, dense: dense, at: q.at, fusion: q.fusion) { slot in
            guard Int(slot) < index.memories.count, let m = try memoryRecord(index.memories[Int(slot)]) else {
                throw ProjectionError.corrupt("slot \(slot) of user \(name) names no memory")
            }
            return view(m, at: q.at)
        }
    }
}

/// The in-memory candidate index of one user (current state only): memory ids by slot, the int8
/// vectors in one contiguous array, and posting lists. Built from the store, then kept current by
/// the fold's ``IndexChange``s.
final class UserIndex: @unchecked Sendable {
    var memories: [ID128] = []
    var dimension = 0
    var vectors: [Int8] = []
    var scales: [Float] = []
    /// Sign bits of each vector, ``DenseSearch/words(_:)`` words per slot.
    var codes: [UInt64] = []
    var postings: [String: [(slot: UInt32, tf: UInt16, length: UInt16)]] = [:]
    var documents: UInt64 = 0
    var totalLength: UInt64 = 0

    init() {}

    /// The index of `user` from the stored entries (the `slots` table, one ``IndexEntry`` per memory
    /// in slot order).
    static func load(_ kv: some KVReading, user: ID128) throws -> UserIndex {
        let x = UserIndex()
        guard let ub = try kv.get(.users, Keys.user(user)) else { return x }
        let u = try UserRecord(decoding: ub)
        let d = Int(u.dimension)
        x.dimension = d
        x.documents = u.indexedDocuments
        x.totalLength = u.indexedLength
        x.memories.reserveCapacity(Int(u.nextSlot))
        x.scales.reserveCapacity(Int(u.nextSlot))
        x.vectors.reserveCapacity(Int(u.nextSlot) * d)
        try kv.scan(.slots, prefix: Keys.user(user)) { k, v in
            let slot = k.be(16, UInt32.self)
            guard Int(slot) == x.memories.count else { throw ProjectionError.corrupt("slots of user \(user) are not dense at \(slot)") }
            let e = try IndexEntry(decoding: v)
            x.memories.append(e.memory)
            if let q = e.vector {
                guard q.values.count == d else { throw ProjectionError.corrupt("vector of slot \(slot) has dimension \(q.values.count), not \(d)") }
                x.scales.append(q.scale)
                x.vectors.append(contentsOf: q.values)
            } else {
                x.scales.append(0)
                x.vectors.append(contentsOf: repeatElement(0, count: d))
            }
            for t in e.terms { x.postings[t.term, default: []].append((slot, t.tf, e.length)) }
            return true
        }
        x.codes = DenseSearch.codes(x.vectors, dimension: d)
        return x
    }

    func apply(slot: UInt32, memory: ID128, terms: [(term: String, tf: UInt16)], length: UInt16, vector: QuantizedVector?) {
        precondition(Int(slot) == memories.count, "index slots must arrive in order")
        memories.append(memory)
        if let v = vector, dimension == 0 { dimension = v.values.count; vectors = Array(repeating: 0, count: memories.count * dimension - dimension) }
        scales.append(vector?.scale ?? 0)
        if dimension > 0 {
            if vector != nil && codes.isEmpty && memories.count > 1 { codes = DenseSearch.codes(vectors, dimension: dimension) }
            let values = vector?.values ?? Array(repeating: 0, count: dimension)
            vectors.append(contentsOf: values)
            codes.append(contentsOf: DenseSearch.codes(values, dimension: dimension))
        }
        for t in terms { postings[t.term, default: []].append((slot, t.tf, length)) }
        documents += 1
        totalLength += UInt64(length)
    }

    /// The same lists as ``UserReader/candidates(_:name:)`` builds from the store.
    /// The same lists as ``UserReader/candidates(_:name:)`` builds from the store. Above 20k memories
    /// the lexical and dense lists are computed on two threads; each is a pure function of the index
    /// and the query, so the split never changes the answer.
    func lists(_ q: CandidateQuery) -> (lexical: [(score: Double, slot: UInt32)], dense: [(score: Double, slot: UInt32)]) {
        if memories.count < 20_000 { return (lexicalList(q), denseList(q)) }
        let box = ListBox()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            if i == 0 { box.lexical = self.lexicalList(q) } else { box.dense = self.denseList(q) }
        }
        return (box.lexical, box.dense)
    }

    private func denseList(_ q: CandidateQuery) -> [(score: Double, slot: UInt32)] {
        guard let qv = q.vector, qv.values.count == dimension, dimension > 0 else { return [] }
        return DenseSearch.top(qv, vectors: vectors, scales: scales, codes: codes, perList: q.perList)
    }

    private func lexicalList(_ q: CandidateQuery) -> [(score: Double, slot: UInt32)] {
        let (terms, _) = Fold.termCounts(q.text)
        var lexical = TopK(q.perList)
        if documents > 0 && !terms.isEmpty {
            let avg = Double(totalLength) / Double(documents)
            // Scores in a dense array (zero = untouched); the same additions in the same order as the store path.
            var scores = [Double](repeating: 0, count: memories.count)
            var touched: [UInt32] = []
            for t in terms {
                guard let list = postings[t.term] else { continue }
                let idf = Scoring.idf(documents: documents, frequency: list.count)
                for p in list {
                    let i = Int(p.slot)
                    if scores[i] == 0 { touched.append(p.slot) }
                    scores[i] += Scoring.bm25(tf: p.tf, length: p.length, averageLength: avg, idf: idf)
                }
            }
            for slot in touched { lexical.offer(scores[Int(slot)], slot) }
        }
        return lexical.sorted
    }

}

/// Dense candidates in two exact, deterministic stages (SPEC.md §11.4): the Hamming distance between
/// the sign bits of the query and of every vector picks a shortlist (the `shortlist(perList, n)`
/// nearest, ties by lower slot), then the exact int8 dot product ranks the shortlist. The first stage
/// reads 48 bytes per 384-dimension vector instead of 384, which is what keeps 100k memories under the
/// latency budget; the second makes the scores exact. Both the in-memory index and the store path call
/// this one function, so they agree.
public enum DenseSearch {
    public static func words(_ dimension: Int) -> Int { (dimension + 63) / 64 }

    /// How many vectors the first stage keeps.
    public static func shortlist(_ perList: Int, _ n: Int) -> Int { min(n, max(1000, perList * 20)) }

    /// Sign bits (value > 0) of consecutive vectors of `dimension` values.
    public static func codes(_ vectors: [Int8], dimension d: Int) -> [UInt64] {
        guard d > 0 else { return [] }
        let n = vectors.count / d, w = words(d)
        var out = [UInt64](repeating: 0, count: n * w)
        vectors.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer { o in
                for slot in 0..<n {
                    let row = v.baseAddress! + slot * d
                    for word in 0..<w {
                        // Branch-free: bit b of the word is whether value 64·word + b is positive.
                        var bits: UInt64 = 0
                        for b in 0..<min(64, d - word * 64) { bits |= UInt64(row[word * 64 + b] > 0 ? 1 : 0) << UInt64(b) }
                        o[slot * w + word] = bits
                    }
                }
            }
        }
        return out
    }

    public static func top(_ qv: QuantizedVector, vectors: [Int8], scales: [Float], codes: [UInt64], perList: Int) -> [(score: Double, slot: UInt32)] {
        let d = qv.values.count, w = words(d), n = scales.count
        guard n > 0, d > 0 else { return [] }
        let qcode = Self.codes(qv.values, dimension: d)
        // Stage 1: Hamming distances, then the distance threshold that admits the shortlist.
        var distance = [UInt16](repeating: UInt16.max, count: n)
        codes.withUnsafeBufferPointer { c in
            qcode.withUnsafeBufferPointer { q in
                psm_hamming(c.baseAddress!, q.baseAddress!, w, n, scales, &distance)
            }
        }
        var histogram = [Int](repeating: 0, count: d + 2)
        for h in distance where h != UInt16.max { histogram[Int(h)] += 1 }
        let want = shortlist(perList, n)
        var threshold = 0, admitted = 0
        while threshold <= d && admitted + histogram[threshold] < want {
            admitted += histogram[threshold]
            threshold += 1
        }
        var atThreshold = want - admitted  // slots at exactly `threshold` still admitted, lowest first
        // Stage 2: exact scores for the shortlist.
        var top = TopK(perList)
        let qs = Double(qv.scale)
        qv.values.withUnsafeBufferPointer { q in
            vectors.withUnsafeBufferPointer { v in
                for slot in 0..<n {
                    let h = Int(distance[slot])
                    if h > threshold { continue }
                    if h == threshold {
                        guard atThreshold > 0 else { continue }
                        atThreshold -= 1
                    }
                    let dot = Scoring.dot(q.baseAddress!, v.baseAddress! + slot * d, d)
                    top.offer(Double(dot) * qs * Double(scales[slot]), UInt32(slot))
                }
            }
        }
        return top.sorted
    }
}

/// The two lists of one query, each written by its own thread.
private final class ListBox: @unchecked Sendable {
    var lexical: [(score: Double, slot: UInt32)] = []
    var dense: [(score: Double, slot: UInt32)] = []
}
