import Journal

public enum ProjectionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An event payload or stored record that does not decode.
    case malformed(String)
    /// A read or write named something that does not exist.
    case notFound(String)
    case invalidArgument(String)
    /// The user's data was erased; nothing about it can be read.
    case erased(String)
    /// The projection store is unusable (format mismatch, broken invariant).
    case corrupt(String)
    case storage(String)
    /// A stream's event arrived before the ones it follows (a cluster node's fold, SPEC.md §15.5):
    /// the stream must be read from `expected` first.
    case gap(stream: ID128, expected: UInt64, found: UInt64)

    public var description: String {
        switch self {
        case .malformed(let m): "malformed: \(m)"
        case .notFound(let m): "not found: \(m)"
        case .invalidArgument(let m): "invalid argument: \(m)"
        case .erased(let m): "erased: \(m)"
        case .corrupt(let m): "projection store corrupt: \(m)"
        case .storage(let m): "storage error: \(m)"
        case .gap(let s, let e, let f): "stream \(s): revision \(f) arrived before revision \(e)"
        }
    }
}

/// A strict cursor over a canonical payload. Accessors are called in ascending field order (the order
/// fields are encoded in) and each consumes its field if it is next; a required field that is missing,
/// a field of the wrong wire type, a non-repeated field that repeats, a default written explicitly,
/// non-canonical bytes, or a field the caller never asked for (found by ``finish()``) is an error.
/// Nothing is materialized but the values asked for.
struct Fields {
    private let bytes: [UInt8]
    private var i = 0
    /// The next field's number and wire type, and where its value starts (nil at the end).
    private var next: (field: UInt32, wire: UInt8, value: Int)?
    private var lastField: UInt32 = 0
    let what: String

    init(_ payload: [UInt8], _ what: String) throws(ProjectionError) {
        bytes = payload
        self.what = what
        try advance()
    }

    private func fail(_ f: UInt32, _ m: String) -> ProjectionError { .malformed("\(what) field \(f): \(m)") }

    private mutating func varint() throws(ProjectionError) -> UInt64 {
        let start = i
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard i < bytes.count else { throw .malformed("\(what): non-canonical payload, varint at byte \(start) runs past the end") }
            let b = bytes[i]
            i += 1
            guard shift < 64, !(shift == 63 && b > 1) else { throw .malformed("\(what): non-canonical payload, varint at byte \(start) overflows 64 bits") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 {
                if b == 0 && i - start > 1 { throw .malformed("\(what): non-canonical payload, varint at byte \(start) not in shortest form") }
                return result
            }
            shift += 7
        }
    }

    /// Reads the next key (after the previous value was consumed or skipped).
    private mutating func advance() throws(ProjectionError) {
        guard i < bytes.count else {
            next = nil
            return
        }
        let at = i
        let key = try varint()
        let field = key >> 3, wire = UInt8(key & 7)
        guard field >= 1, field < (1 << 29) else { throw .malformed("\(what): field number \(field) at byte \(at)") }
        guard UInt32(field) >= lastField else { throw .malformed("\(what): field \(field) after field \(lastField) (must ascend)") }
        guard wire <= 2 else { throw .malformed("\(what): unknown wire type \(wire) at byte \(at)") }
        if let n = next, n.field == UInt32(field), n.wire != wire { throw fail(UInt32(field), "repeated with another wire type") }
        lastField = UInt32(field)
        next = (UInt32(field), wire, i)
    }

    private enum Raw { case varint(UInt64), fixed64(UInt64), bytes(Range<Int>) }

    /// Consumes the next value (whatever its field).
    private mutating func take() throws(ProjectionError) -> Raw {
        let n = next!
        let raw: Raw
        switch n.wire {
        case 0: raw = .varint(try varint())
        case 1:
            guard bytes.count - i >= 8 else { throw fail(n.field, "fixed64 runs past the end") }
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
            i += 8
            raw = .fixed64(v)
        default:
            let len = try varint()
            guard len <= UInt64(bytes.count - i) else { throw fail(n.field, "length \(len) runs past the end") }
            raw = .bytes(i..<(i + Int(len)))
            i += Int(len)
        }
        try advance()
        return raw
    }

    /// The single value of field `f`, or nil when absent.
    private mutating func one(_ f: UInt32) throws(ProjectionError) -> Raw? {
        guard let n = next, n.field <= f else { return nil }
        guard n.field == f else { throw .malformed("\(what): unknown field \(n.field)") }
        let raw = try take()
        if let m = next, m.field == f { throw fail(f, "repeated") }
        return raw
    }

    mutating func bytes(_ f: UInt32) throws(ProjectionError) -> [UInt8]? {
        guard let v = try one(f) else { return nil }
        guard case .bytes(let r) = v else { throw fail(f, "expected bytes") }
        return Array(bytes[r])
    }
    mutating func string(_ f: UInt32, maxBytes: Int = 1 << 20) throws(ProjectionError) -> String {
        guard let v = try one(f) else { return "" }
        guard case .bytes(let r) = v else { throw fail(f, "expected bytes") }
        guard !r.isEmpty else { throw fail(f, "an empty string must be omitted") }
        guard r.count <= maxBytes else { throw fail(f, "\(r.count) bytes exceeds \(maxBytes)") }
        guard let s = String(validating: bytes[r], as: UTF8.self) else { throw fail(f, "not UTF-8") }
        return s
    }
    mutating func requiredString(_ f: UInt32, maxBytes: Int = 1 << 20) throws(ProjectionError) -> String {
        let s = try string(f, maxBytes: maxBytes)
        guard !s.isEmpty else { throw fail(f, "required") }
        return s
    }
    private func id(_ r: Range<Int>, _ f: UInt32) throws(ProjectionError) -> ID128 {
        guard r.count == 16 else { throw fail(f, "an id is 16 bytes, got \(r.count)") }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for k in 0..<8 {
            hi = hi << 8 | UInt64(bytes[r.lowerBound + k])
            lo = lo << 8 | UInt64(bytes[r.lowerBound + 8 + k])
        }
        return ID128(high: hi, low: lo)
    }
    mutating func id(_ f: UInt32) throws(ProjectionError) -> ID128 {
        guard let v = try one(f) else { return .zero }
        guard case .bytes(let r) = v else { throw fail(f, "expected bytes") }
        let id = try id(r, f)
        guard !id.isZero else { throw fail(f, "a zero id must be omitted") }
        return id
    }
    mutating func requiredID(_ f: UInt32) throws(ProjectionError) -> ID128 {
        let id = try id(f)
        guard !id.isZero else { throw fail(f, "required") }
        return id
    }
    mutating func digest(_ f: UInt32) throws(ProjectionError) -> [UInt8] {
        guard let b = try bytes(f), b.count == 32 else { throw fail(f, "a 32-byte digest is required") }
        return b
    }
    mutating func uint(_ f: UInt32) throws(ProjectionError) -> UInt64 {
        guard let v = try one(f) else { throw fail(f, "required") }
        guard case .varint(let x) = v else { throw fail(f, "expected a varint") }
        return x
    }
    mutating func int(_ f: UInt32) throws(ProjectionError) -> Int64 {
        let v = try uint(f)
        return Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
    }
    mutating func fixed(_ f: UInt32, in range: ClosedRange<Int64> = 0...Fixed.scale) throws(ProjectionError) -> Fixed {
        let x = try int(f)
        guard range.contains(x) else { throw fail(f, "fixed-point \(x) outside \(range)") }
        return Fixed(raw: x)
    }
    mutating func bool(_ f: UInt32) throws(ProjectionError) -> Bool {
        let x = try uint(f)
        guard x <= 1 else { throw fail(f, "bool \(x)") }
        return x == 1
    }
    /// An optional flag: absent is false, present must be 1 (a false flag is omitted).
    mutating func flag(_ f: UInt32) throws(ProjectionError) -> Bool {
        guard let v = try one(f) else { return false }
        guard case .varint(let x) = v, x == 1 else { throw fail(f, "a flag must be 1 or omitted") }
        return true
    }
    /// Every value of a repeated field, in order.
    mutating func repeated(_ f: UInt32) throws(ProjectionError) -> [PayloadValue] {
        var out: [PayloadValue] = []
        while let n = next, n.field <= f {
            guard n.field == f else { throw .malformed("\(what): unknown field \(n.field)") }
            switch try take() {
            case .varint(let v): out.append(.varint(v))
            case .fixed64(let v): out.append(.fixed64(v))
            case .bytes(let r): out.append(.bytes(Array(bytes[r])))
            }
        }
        return out
    }
    mutating func ids(_ f: UInt32) throws(ProjectionError) -> [ID128] {
        var out: [ID128] = []
        while let n = next, n.field <= f {
            guard n.field == f else { throw .malformed("\(what): unknown field \(n.field)") }
            guard case .bytes(let r) = try take() else { throw fail(f, "not an id") }
            out.append(try id(r, f))
        }
        return out
    }
    mutating func strings(_ f: UInt32) throws(ProjectionError) -> [String] {
        var out: [String] = []
        while let n = next, n.field <= f {
            guard n.field == f else { throw .malformed("\(what): unknown field \(n.field)") }
            guard case .bytes(let r) = try take(), let s = String(validating: bytes[r], as: UTF8.self) else { throw fail(f, "not a UTF-8 string") }
            out.append(s)
        }
        return out
    }
    func finish() throws(ProjectionError) {
        if let n = next { throw .malformed("\(what): unknown field \(n.field)") }
    }
}

extension MemoryEvent {
    /// The canonical payload (SPEC.md §11.1).
    public func payload() -> [UInt8] {
        var w = PayloadWriter()
        func s(_ f: UInt32, _ v: String) { if !v.isEmpty { w.string(f, v) } }
        func id(_ f: UInt32, _ v: ID128) { if !v.isZero { w.id(f, v) } }
        func fx(_ f: UInt32, _ v: Fixed) { w.int(f, v.raw) }
        func decision(_ d: Decision) { w.bytes(1, d.model); w.bytes(2, d.inputDigest) }
        switch self {
        case .observation(let o):
            s(1, o.text); s(2, o.session); s(3, o.speaker); s(4, o.role); s(5, o.sourceID)
            for (k, v) in o.metadata.sorted(by: { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }) {
                var n = PayloadWriter()
                n.string(1, k)
                if !v.isEmpty { n.string(2, v) }
                w.bytes(6, n.bytes)
            }
        case .recallRequest(let r): s(1, r.query); w.uint(2, UInt64(r.k)); s(3, r.session)
        case .feedback(let f): id(1, f.recall); id(2, f.memory); w.uint(3, UInt64(f.kind.rawValue)); s(4, f.note)
        case .sleepRequest(let r): s(1, r.reason)
        case .modelActivation(let m): w.bytes(1, m.model); s(2, m.name)
        case .erasureRequest(let r): s(1, r.reason)
        case .gated(let g):
            decision(g.decision)
            id(3, g.observation); w.bool(4, g.kept)
            if g.kept {
                id(5, g.memory); w.uint(6, UInt64(g.tier.rawValue)); w.uint(7, UInt64(g.type.rawValue))
                fx(8, g.emotionalWeight); fx(9, g.confidence); fx(10, g.strength); w.uint(11, g.stability)
                if let v = g.vector { w.bytes(12, v.encoded) }
            }
            for x in g.scores { fx(13, x) }
            if g.kept {
                id(14, g.context)
                if g.dated { w.bool(15, true) }
            }
        case .encoded(let e): decision(e.decision); id(3, e.memory); w.uint(4, UInt64(e.tier.rawValue))
        case .reinforced(let e): decision(e.decision); id(3, e.memory); fx(4, e.boost); w.uint(5, e.stability)
        case .weakened(let e): decision(e.decision); id(3, e.memory); fx(4, e.factor); w.uint(5, e.stability)
        case .superseded(let e): decision(e.decision); id(3, e.old); id(4, e.new); fx(5, e.score)
        case .flagged(let e): decision(e.decision); id(3, e.memory); id(4, e.related); s(5, e.reason); fx(6, e.score)
        case .consolidated(let e):
            decision(e.decision); id(3, e.memory); s(4, e.text); w.uint(5, UInt64(e.type.rawValue))
            fx(6, e.confidence); fx(7, e.strength); w.uint(8, e.stability)
            for src in e.sources { w.id(9, src) }
            if let v = e.vector { w.bytes(10, v.encoded) }
        case .archived(let e): decision(e.decision); id(3, e.memory); id(4, e.into)
        case .pruned(let e): decision(e.decision); id(3, e.memory); fx(4, e.strength)
        case .recalled(let e):
            decision(e.decision); id(3, e.request)
            for item in e.items {
                var n = PayloadWriter()
                n.id(1, item.memory)
                n.int(2, item.weight.raw)
                w.bytes(4, n.bytes)
            }
        }
        return w.bytes
    }

    /// Limits on decoded values (SPEC.md §11.1).
    public static let maxTextBytes = 64 << 10
    public static let maxItems = 1024
    public static let maxStability: UInt64 = 100 * 365 * 86_400

    /// Decodes and validates the payload of an event of type `type`. Returns nil for a type that is
    /// not part of the memory model (other streams' events, test events).
    public static func decode(type: UInt16, payload: [UInt8]) throws(ProjectionError) -> MemoryEvent? {
        guard let t = MemoryEventType(rawValue: type) else { return nil }
        var f = try Fields(payload, "\(t) payload")
        func decision() throws(ProjectionError) -> Decision { Decision(model: try f.digest(1), inputDigest: try f.digest(2)) }
        func stability(_ field: UInt32) throws(ProjectionError) -> UInt64 {
            let s = try f.uint(field)
            guard (1...maxStability).contains(s) else { throw .malformed("\(t) field \(field): stability \(s) s outside 1...\(maxStability)") }
            return s
        }
        func tier(_ field: UInt32) throws(ProjectionError) -> Tier {
            let x = try f.uint(field)
            guard x <= 255, let tier = Tier(rawValue: UInt8(x)), tier != .sensory else { throw .malformed("\(t) field \(field): tier \(x)") }
            return tier
        }
        func memoryType(_ field: UInt32) throws(ProjectionError) -> MemoryType {
            let x = try f.uint(field)
            guard x <= 255, let mt = MemoryType(rawValue: UInt8(x)) else { throw .malformed("\(t) field \(field): memory type \(x)") }
            return mt
        }
        func vector(_ field: UInt32) throws(ProjectionError) -> QuantizedVector? {
            guard let b = try f.bytes(field) else { return nil }
            return try QuantizedVector(encoded: b)
        }
        let event: MemoryEvent
        switch t {
        case .observation:
            let text = try f.requiredString(1, maxBytes: maxTextBytes)
            let session = try f.string(2, maxBytes: 255), speaker = try f.string(3, maxBytes: 255)
            let role = try f.string(4, maxBytes: 255), source = try f.string(5, maxBytes: 1024)
            var metadata: [String: String] = [:]
            var lastKey: [UInt8]? = nil
            let entries = try f.repeated(6)
            guard entries.count <= 64 else { throw .malformed("observation has \(entries.count) metadata entries (at most 64)") }
            for entry in entries {
                guard case .bytes(let b) = entry else { throw .malformed("observation metadata entry is not bytes") }
                var n = try Fields(b, "observation metadata entry")
                let k = try n.requiredString(1, maxBytes: 255), v = try n.string(2, maxBytes: 4096)
                try n.finish()
                let kb = Array(k.utf8)
                if let lastKey, !lastKey.lexicographicallyPrecedes(kb) { throw .malformed("observation metadata keys must ascend (\(k))") }
                lastKey = kb
                metadata[k] = v
            }
            event = .observation(Observation(text: text, session: session, speaker: speaker, role: role, sourceID: source, metadata: metadata))
        case .recallRequest:
            let q = try f.requiredString(1, maxBytes: maxTextBytes)
            let k = try f.uint(2)
            guard (1...UInt64(maxItems)).contains(k) else { throw .malformed("recall_request k \(k) outside 1...\(maxItems)") }
            event = .recallRequest(RecallRequest(query: q, k: UInt32(k), session: try f.string(3, maxBytes: 255)))
        case .feedback:
            let recall = try f.requiredID(1), memory = try f.requiredID(2)
            let k = try f.uint(3)
            guard k <= 255, let kind = FeedbackKind(rawValue: UInt8(k)) else { throw .malformed("feedback kind \(k)") }
            event = .feedback(Feedback(recall: recall, memory: memory, kind: kind, note: try f.string(4, maxBytes: maxTextBytes)))
        case .sleepRequest: event = .sleepRequest(SleepRequest(reason: try f.string(1, maxBytes: 1024)))
        case .modelActivation:
            event = .modelActivation(ModelActivation(model: try f.digest(1), name: try f.string(2, maxBytes: 255)))
        case .erasureRequest: event = .erasureRequest(ErasureRequest(reason: try f.string(1, maxBytes: 1024)))
        case .gated:
            let d = try decision()
            let obs = try f.requiredID(3)
            let kept = try f.bool(4)
            var g = Gated(decision: d, observation: obs, kept: kept)
            if kept {
                g.memory = try f.requiredID(5)
                g.tier = try tier(6)
                g.type = try memoryType(7)
                g.emotionalWeight = try f.fixed(8)
                g.confidence = try f.fixed(9)
                g.strength = try f.fixed(10)
                g.stability = try stability(11)
                g.vector = try vector(12)
            }
            g.scores = try f.repeated(13).map { v throws(ProjectionError) in
                guard let x = v.zigzag, abs(x) <= 1 << 40 else { throw .malformed("gated score is not a bounded signed varint") }
                return Fixed(raw: x)
            }
            if kept {
                g.context = try f.id(14)
                g.dated = try f.flag(15)
            }
            event = .gated(g)
        case .encoded: event = .encoded(Encoded(decision: try decision(), memory: try f.requiredID(3), tier: try tier(4)))
        case .reinforced:
            event = .reinforced(Reinforced(decision: try decision(), memory: try f.requiredID(3), boost: try f.fixed(4), stability: try stability(5)))
        case .weakened:
            event = .weakened(Weakened(decision: try decision(), memory: try f.requiredID(3), factor: try f.fixed(4), stability: try stability(5)))
        case .superseded:
            let d = try decision()
            let old = try f.requiredID(3), new = try f.requiredID(4)
            guard old != new else { throw .malformed("superseded: a memory cannot supersede itself (\(old))") }
            event = .superseded(Superseded(decision: d, old: old, new: new, score: try f.fixed(5)))
        case .flagged:
            let d = try decision()
            event = .flagged(
                Flagged(decision: d, memory: try f.requiredID(3), related: try f.id(4), reason: try f.requiredString(5, maxBytes: 255), score: try f.fixed(6)))
        case .consolidated:
            let d = try decision()
            let memory = try f.requiredID(3), text = try f.requiredString(4, maxBytes: maxTextBytes)
            let mt = try memoryType(5)
            let confidence = try f.fixed(6), strength = try f.fixed(7), st = try stability(8)
            let raw = try f.repeated(9)
            guard (1...maxItems).contains(raw.count) else { throw .malformed("consolidated has \(raw.count) sources (1...\(maxItems))") }
            var sources: [ID128] = []
            for v in raw {
                guard case .bytes(let b) = v, b.count == 16 else { throw .malformed("consolidated source is not a 16-byte id") }
                sources.append(ID128(bytes: b))
            }
            guard Set(sources).count == sources.count, !sources.contains(memory) else {
                throw .malformed("consolidated sources repeat or include the new memory")
            }
            event = .consolidated(
                Consolidated(
                    decision: d, memory: memory, text: text, type: mt, confidence: confidence, strength: strength, stability: st,
                    sources: sources, vector: try vector(10)))
        case .archived: event = .archived(Archived(decision: try decision(), memory: try f.requiredID(3), into: try f.id(4)))
        case .pruned: event = .pruned(Pruned(decision: try decision(), memory: try f.requiredID(3), strength: try f.fixed(4)))
        case .recalled:
            let d = try decision()
            let request = try f.requiredID(3)
            let raw = try f.repeated(4)
            guard raw.count <= maxItems else { throw .malformed("recalled has \(raw.count) items (at most \(maxItems))") }
            var items: [Recalled.Item] = []
            for v in raw {
                guard case .bytes(let b) = v else { throw .malformed("recalled item is not bytes") }
                var n = try Fields(b, "recalled item")
                items.append(Recalled.Item(memory: try n.requiredID(1), weight: try n.fixed(2, in: -(1 << 40)...(1 << 40))))
                try n.finish()
            }
            event = .recalled(Recalled(decision: d, request: request, items: items))
        }
        try f.finish()
        return event
    }
}
