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

    public init(text: String, vector: QuantizedVector?, at: Int64, perList: Int = 50) {
        self.text = text; self.vector = vector; self.at = at; self.perList = perList
    }

    static let k1 = 1.2, b = 0.75, rrf = 60.0
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
        lexical: [(score: Double, slot: UInt32)], dense: [(score: Double, slot: UInt32)], at: Int64,
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
            if out[i].lexicalRank > 0 { f += 1 / (CandidateQuery.rrf + Double(out[i].lexicalRank)) }
            if out[i].denseRank > 0 { f += 1 / (CandidateQuery.rrf + Double(out[i].denseRank)) }
            out[i].fused = f
        }
        out.sort { $0.fused != $1.fused ? $0.fused > $1.fused : $0.memory < $1.memory }
        return out
    }
}

extension UserReader {
    /// Candidate generation straight from the store: the reference path, used for as-of reads.
    /// ``UserIndex`` gives the same answer from memory for the current state.
    public func candidates(_ q: CandidateQuery, name: String) throws -> [Candidate] {
        let u = try liveUser(name)
        let (terms, _) = Fold.termCounts(q.text)
        var lexical = TopK(q.perList)
        if u.indexedDocuments > 0 && !terms.isEmpty {
            let avg = Double(u.indexedLength) / Double(u.indexedDocuments)
            var scores: [UInt32: Double] = [:]
            for t in terms {
                var postings: [(UInt32, UInt16, UInt16)] = []
                try kv.scan(.postings, prefix: Keys.termPrefix(user, t.term)) { k, v in
                    guard v.count == 4 else { throw ProjectionError.corrupt("posting value of \(v.count) bytes") }
                    postings.append((k.be(k.count - 4, UInt32.self), UInt16(v[0]) | UInt16(v[1]) << 8, UInt16(v[2]) | UInt16(v[3]) << 8))
                    return true
                }
                let idf = Scoring.idf(documents: u.indexedDocuments, frequency: postings.count)
                for (slot, tf, dl) in postings {
                    scores[slot, default: 0] += Scoring.bm25(tf: tf, length: dl, averageLength: avg, idf: idf)
                }
            }
            for (slot, s) in scores { lexical.offer(s, slot) }
        }
        var dense = TopK(q.perList)
        if let qv = q.vector, Int(u.dimension) == qv.values.count {
            try kv.scan(.vectors, prefix: Keys.user(user)) { k, v in
                let mv = try QuantizedVector(encoded: v)
                let d = qv.values.withUnsafeBufferPointer { a in
                    mv.values.withUnsafeBufferPointer { b in Scoring.dot(a.baseAddress!, b.baseAddress!, a.count) }
                }
                dense.offer(Double(d) * Double(qv.scale) * Double(mv.scale), k.be(16, UInt32.self))
                return true
            }
        }
        return try Scoring.fuse(lexical: lexical.sorted, dense: dense.sorted, at: q.at) { slot in
            guard let idb = try kv.get(.slots, Keys.slot(user, slot)), let m = try memoryRecord(ID128(bytes: idb)) else {
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
    var postings: [String: [(slot: UInt32, tf: UInt16, length: UInt16)]] = [:]
    var documents: UInt64 = 0
    var totalLength: UInt64 = 0

    init() {}

    static func load(_ kv: some KVReading, user: ID128) throws -> UserIndex {
        let x = UserIndex()
        guard let ub = try kv.get(.users, Keys.user(user)) else { return x }
        let u = try UserRecord(decoding: ub)
        x.dimension = Int(u.dimension)
        x.documents = u.indexedDocuments
        x.totalLength = u.indexedLength
        try kv.scan(.slots, prefix: Keys.user(user)) { k, v in
            let slot = k.be(16, UInt32.self)
            guard Int(slot) == x.memories.count else { throw ProjectionError.corrupt("slots of user \(user) are not dense at \(slot)") }
            x.memories.append(ID128(bytes: v))
            return true
        }
        x.scales = Array(repeating: 0, count: x.memories.count)
        x.vectors = Array(repeating: 0, count: x.memories.count * x.dimension)
        try kv.scan(.vectors, prefix: Keys.user(user)) { k, v in
            let slot = Int(k.be(16, UInt32.self))
            let q = try QuantizedVector(encoded: v)
            guard slot < x.memories.count, q.values.count == x.dimension else { throw ProjectionError.corrupt("vector of slot \(slot)") }
            x.scales[slot] = q.scale
            x.vectors.replaceSubrange((slot * x.dimension)..<((slot + 1) * x.dimension), with: q.values)
            return true
        }
        try kv.scan(.postings, prefix: Keys.user(user)) { k, v in
            let term = String(decoding: k[16..<(k.count - 5)], as: UTF8.self)
            x.postings[term, default: []].append((k.be(k.count - 4, UInt32.self), UInt16(v[0]) | UInt16(v[1]) << 8, UInt16(v[2]) | UInt16(v[3]) << 8))
            return true
        }
        return x
    }

    func apply(slot: UInt32, memory: ID128, terms: [(term: String, tf: UInt16)], length: UInt16, vector: QuantizedVector?) {
        precondition(Int(slot) == memories.count, "index slots must arrive in order")
        memories.append(memory)
        if let v = vector, dimension == 0 { dimension = v.values.count; vectors = Array(repeating: 0, count: memories.count * dimension - dimension) }
        scales.append(vector?.scale ?? 0)
        if dimension > 0 { vectors.append(contentsOf: vector?.values ?? Array(repeating: 0, count: dimension)) }
        for t in terms { postings[t.term, default: []].append((slot, t.tf, length)) }
        documents += 1
        totalLength += UInt64(length)
    }

    /// The same lists as ``UserReader/candidates(_:name:)`` builds from the store.
    func lists(_ q: CandidateQuery) -> (lexical: [(score: Double, slot: UInt32)], dense: [(score: Double, slot: UInt32)]) {
        let (terms, _) = Fold.termCounts(q.text)
        var lexical = TopK(q.perList)
        if documents > 0 && !terms.isEmpty {
            let avg = Double(totalLength) / Double(documents)
            var scores: [UInt32: Double] = [:]
            for t in terms {
                guard let list = postings[t.term] else { continue }
                let idf = Scoring.idf(documents: documents, frequency: list.count)
                for p in list { scores[p.slot, default: 0] += Scoring.bm25(tf: p.tf, length: p.length, averageLength: avg, idf: idf) }
            }
            for (slot, s) in scores { lexical.offer(s, slot) }
        }
        var dense = TopK(q.perList)
        if let qv = q.vector, qv.values.count == dimension, dimension > 0 {
            dense = denseTop(qv, q.perList)
        }
        return (lexical.sorted, dense.sorted)
    }

    /// Brute force over all vectors; split over two threads above 16k memories. Each score is exact
    /// integer arithmetic and the selection order is total, so the split never changes the answer.
    private func denseTop(_ qv: QuantizedVector, _ k: Int) -> TopK {
        let n = memories.count, d = dimension
        let parts = n >= 16_384 ? 2 : 1
        var results = [TopK](repeating: TopK(k), count: parts)
        qv.values.withUnsafeBufferPointer { qp in
            vectors.withUnsafeBufferPointer { vp in
                scales.withUnsafeBufferPointer { sp in
                    results.withUnsafeMutableBufferPointer { rp in
                        let shared = SharedPointers(q: qp.baseAddress!, v: vp.baseAddress!, s: sp.baseAddress!, r: rp.baseAddress!)
                        let qs = Double(qv.scale)
                        DispatchQueue.concurrentPerform(iterations: parts) { part in
                            var top = TopK(k)
                            let lo = n * part / parts, hi = n * (part + 1) / parts
                            for slot in lo..<hi where shared.s[slot] != 0 {
                                let dot = Scoring.dot(shared.q, shared.v + slot * d, d)
                                top.offer(Double(dot) * qs * Double(shared.s[slot]), UInt32(slot))
                            }
                            shared.r[part] = top
                        }
                    }
                }
            }
        }
        var top = results[0]
        for i in 1..<parts { top.merge(results[i]) }
        return top
    }
}

/// Pointers handed to the threads of one dense scan; each thread writes only its own result slot.
private struct SharedPointers: @unchecked Sendable {
    let q: UnsafePointer<Int8>
    let v: UnsafePointer<Int8>
    let s: UnsafePointer<Float>
    let r: UnsafeMutablePointer<TopK>
}
