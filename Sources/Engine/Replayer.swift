import Foundation
import Journal
import Projections

/// Re-runs the decisions of a journal (SPEC.md §11.7): from an empty state, every command is decided
/// again by a ``Decider`` on the state folded up to just before it, and each recomputed decision is
/// compared byte for byte with the one the journal holds. The journaled events are what gets folded,
/// so one divergence never cascades into others.
public enum Replayer {
    public struct Divergence: Sendable, Codable {
        public var position: Position
        public var command: String
        public var stream: String
        public var reason: String
    }

    public struct Report: Sendable {
        public var commands = 0
        /// Decisions compared (each recomputed decision, or journaled decision without a recomputed twin).
        public var checked = 0
        public var divergent = 0
        /// Events skipped because their user was erased (payload key destroyed).
        public var shredded = 0
        public var first: Divergence?
        public var stateHash: [UInt8] = []
        public var checkpoint: Position = 0

        public init() {}
    }

    struct StreamKey: Hashable { var stream: ID128; var keyID: UInt32 }

    static let commands: Set<UInt16> = [
        MemoryEventType.observation.rawValue, MemoryEventType.recallRequest.rawValue, MemoryEventType.feedback.rawValue,
        MemoryEventType.sleepRequest.rawValue,
    ]

    /// Replays `journal` with `decider`, folding into a new projection store in `scratch` (created; removed after).
    /// With `only`, the decisions of those streams alone are recomputed and compared (a user's decisions
    /// depend on that user's state only, SPEC.md §11.7); every event is still folded.
    public static func verify(
        journal: Journal, decider: Decider, scratch: String, only: Set<ID128>? = nil, progress: ((Position, Position) -> Void)? = nil
    ) throws -> Report {
        try? FileManager.default.removeItem(atPath: scratch)
        let state = try ProjectionStore(directory: scratch)
        defer {
            state.close()
            try? FileManager.default.removeItem(atPath: scratch)
        }
        var pass = Pass(decider: decider, state: state)
        let names = StreamNames(journal)
        // Whether a stream's key is destroyed, looked up once per stream and key (not per event).
        var destroyed: [StreamKey: Bool] = [:]
        func shredded(_ stream: ID128, _ keyID: UInt32) throws -> Bool {
            let k = StreamKey(stream: stream, keyID: keyID)
            if let d = destroyed[k] { return d }
            let d = try journal.dataKeys.key(stream, keyID) == nil
            destroyed[k] = d
            return d
        }
        let end = try journal.stats().lastPosition
        var from: Position = 1
        while from <= end {
            let page = try journal.read(from: from, limit: 1024)
            guard let lastOfPage = page.last else { break }
            for e in page {
                let sid = e.header.streamID
                if let only, !only.contains(sid) { continue }
                if e.header.keyID != 0, try shredded(sid, e.header.keyID) {
                    // Crypto-shredded by an erasure: nothing of the user's history is left to re-decide.
                    pass.report.shredded += 1
                    continue
                }
                try pass.visit(
                    e, payload: { try journal.payload(of: e) }, stream: try names.name(sid).map(\.description) ?? sid.description,
                    user: try names.user(sid), foldBefore: { _ = try state.catchUp(journal, through: e.position - 1) })
            }
            from = lastOfPage.position + 1
            progress?(lastOfPage.position, end)
        }
        pass.finish()
        try state.catchUp(journal)
        pass.report.stateHash = try state.stateHash()
        pass.report.checkpoint = try state.checkpoint()
        return pass.report
    }

    /// Replays one user's whole stream read from a journal of record elsewhere (a cluster node's
    /// PostgreSQL journal, SPEC.md §15.5): the same comparison as ``verify(journal:decider:scratch:only:progress:)``
    /// with `only` set to the user, since a user's decisions depend on that user's state alone. The
    /// events are folded per stream (as a node folds them); `stateHash` is the user's state hash
    /// (``ProjectionStore/userStateHash(_:)``) and `checkpoint` the position of the stream's last event.
    public static func verify(stream fetched: FetchedEvents, user: UserRef, decider: Decider, scratch: String) throws -> Report {
        try? FileManager.default.removeItem(atPath: scratch)
        let state = try ProjectionStore(directory: scratch)
        defer {
            state.close()
            try? FileManager.default.removeItem(atPath: scratch)
        }
        return try verify(stream: fetched, user: user, decider: decider, into: state)
    }

    /// ``verify(stream:user:decider:scratch:)`` folding into `state`, which may hold other users already
    /// (a replay of many users' streams in one scratch store) but none of this user's events.
    public static func verify(stream fetched: FetchedEvents, user: UserRef, decider: Decider, into state: ProjectionStore) throws -> Report {
        guard try state.foldedRevision(user.key) == 0 else {
            throw ProjectionError.invalidArgument("the replay's scratch state already holds events of \(user)")
        }
        var pass = Pass(decider: decider, state: state)
        let events = fetched.events
        var folded = 0
        let name = try fetched.streamName(user.key)?.description ?? user.key.description
        for (i, e) in events.enumerated() {
            guard e.header.streamID == user.key else {
                throw ProjectionError.corrupt("the stream of \(user) holds an event of stream \(e.header.streamID) at revision \(e.header.revision)")
            }
            guard let payload = fetched.payloads[e.header.eventID] else {
                pass.report.shredded += 1
                continue
            }
            try pass.visit(
                e, payload: { payload }, stream: name, user: user,
                foldBefore: {
                    if folded < i { try state.applyStreamEvents(Array(events[folded..<i]), source: fetched) }
                    folded = i
                })
        }
        pass.finish()
        if folded < events.count { try state.applyStreamEvents(Array(events[folded...]), source: fetched) }
        pass.report.stateHash = try state.userStateHash(user.key)
        pass.report.checkpoint = events.last?.position ?? 0
        return pass.report
    }

    /// One replay: commands decided again on the state folded just before them, journaled decisions
    /// matched against the recomputed ones by causation.
    struct Pass {
        let decider: Decider
        let state: ProjectionStore
        var report = Report()
        var pending: [EventID: (position: Position, stream: String, expected: [EventData])] = [:]

        init(decider: Decider, state: ProjectionStore) {
            self.decider = decider
            self.state = state
        }

        mutating func diverge(_ p: Position, _ command: EventID, _ stream: String, _ reason: String) {
            report.divergent += 1
            if report.first == nil { report.first = Divergence(position: p, command: command.description, stream: stream, reason: reason) }
        }

        /// Visits a readable event; `foldBefore` folds everything before it into `state`.
        mutating func visit(
            _ e: StoredEvent, payload: () throws -> [UInt8], stream: String, user: UserRef?, foldBefore: () throws -> Void
        ) throws {
            let type = e.header.eventType
            if commands.contains(type), let user {
                report.commands += 1
                try foldBefore()
                let expected: [EventData]
                do {
                    expected = try decide(e, user, try payload(), decider, state)
                } catch {
                    diverge(e.position, e.header.eventID, stream, "cannot decide the command again: \(error)")
                    return
                }
                if !expected.isEmpty { pending[e.header.eventID] = (e.position, stream, expected) }
            } else if type >> 8 == 0x02 {
                report.checked += 1
                let cause = e.header.causationID
                guard var p = pending[cause], !p.expected.isEmpty else {
                    diverge(e.position, cause, stream, "journaled \(MemoryEventType(rawValue: type)?.description ?? "\(type)") decision that no replayed command produced")
                    return
                }
                let want = p.expected.removeFirst()
                pending[cause] = p.expected.isEmpty ? nil : p
                if let why = difference(want, e, try payload()) { diverge(e.position, cause, stream, why) }
            }
        }

        /// Recomputed decisions the journal does not hold.
        mutating func finish() {
            for (cause, p) in pending.sorted(by: { $0.value.position < $1.value.position }) {
                report.checked += p.expected.count
                for d in p.expected {
                    diverge(p.position, cause, p.stream, "replay decides \(MemoryEventType(rawValue: d.type)?.description ?? "\(d.type)") \(d.id), which the journal does not hold")
                }
            }
            pending = [:]
        }
    }

    static func decide(_ e: StoredEvent, _ user: UserRef, _ payload: [UInt8], _ decider: Decider, _ state: ProjectionStore) throws -> [EventData] {
        guard let event = try MemoryEvent.decode(type: e.header.eventType, payload: payload) else { return [] }
        let id = e.header.eventID, time = e.header.eventTime
        switch event {
        case .observation(let o):
            return try decider.observe(user, o, id: id, at: time, state: state).events
        case .recallRequest(let r):
            return try decider.recall(user, r, id: id, at: time, state: state).events
        case .feedback(let f):
            return try decider.feedback(user, f, id: id, at: time, state: state)
        case .sleepRequest:
            return try decider.sleep(user, id: id, at: time, state: state)
        default:
            return []
        }
    }

    /// Why the journaled decision `e` differs from the recomputed `want`, or nil.
    static func difference(_ want: EventData, _ e: StoredEvent, _ payload: [UInt8]) -> String? {
        let name = MemoryEventType(rawValue: want.type)?.description ?? "\(want.type)"
        if e.header.eventType != want.type { return "replay decides \(name), the journal holds \(MemoryEventType(rawValue: e.header.eventType)?.description ?? "?")" }
        if e.header.eventID != want.id { return "\(name): event id \(e.header.eventID), replay derives \(want.id)" }
        if e.header.eventTime != want.time { return "\(name): event time \(e.header.eventTime), replay \(want.time)" }
        if payload == want.payload { return nil }
        guard let got = try? MemoryEvent.decode(type: want.type, payload: payload), let mine = try? MemoryEvent.decode(type: want.type, payload: want.payload) else {
            return "\(name): payloads differ (\(payload.count) vs \(want.payload.count) bytes)"
        }
        if case .gated(let a) = got, case .gated(let b) = mine {
            if a.decision.model != b.decision.model { return "gated: made by model \(hexBytes(a.decision.model).prefix(16))…, replaying with \(hexBytes(b.decision.model).prefix(16))…" }
            if a.vector != b.vector { return "gated: the observation's vector differs (encoder output is not the same)" }
            if a.decision.inputDigest != b.decision.inputDigest { return "gated: the inputs differ (neighbours or vector)" }
            return "gated: kept \(a.kept) vs \(b.kept), strength \(a.strength) vs \(b.strength)"
        }
        if case .recalled(let a) = got, case .recalled(let b) = mine {
            if a.decision.inputDigest != b.decision.inputDigest { return "recalled: the candidates differ" }
            return "recalled: surfaced \(a.items.map(\.memory)) vs \(b.items.map(\.memory))"
        }
        return "\(name): payloads differ"
    }

}
