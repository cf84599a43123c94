import Foundation
import Journal
import Projections

/// Re-runs a store's commands through another model into a new store (the original is only read) and
/// compares the two (SPEC.md §11.9): an operator rehearses a model upgrade before adopting it.
public enum Reconsolidation {
    public struct Diff: Sendable, Codable {
        public var users = 0
        public var commands = 0
        /// Feedback that could not be re-applied (the new model did not surface that memory for that recall).
        public var feedback_skipped = 0
        public var memories_before = 0
        public var memories_after = 0
        public var gained = 0
        public var lost = 0
        /// The same by tier (the tier a lost memory had, a gained one has): a semantic memory lost is a
        /// grouping the new model's sleep did not make again, its sources still present.
        public var gained_by_tier: [String: Int] = [:]
        public var lost_by_tier: [String: Int] = [:]
        public var retiered = 0
        /// Memories kept by both whose type the gate set differently, and how often each change ("fact →
        /// event"): an upgrade of the type head changes nothing else.
        public var retyped = 0
        public var retyped_by_type: [String: Int] = [:]
        public var superseded_differently = 0
        /// Memories kept by both whose reinforcement count or flags (a `refines` relation) differ.
        public var reinforced_differently = 0
        public var flagged_differently = 0
        public var mean_abs_strength_shift = 0.0
        public var recalls_compared = 0
        /// Recalls whose surfaced set changed, and the mean Jaccard similarity of old and new sets.
        public var recalls_changed = 0
        public var recall_jaccard = 1.0
        public var examples: [String] = []
    }

    /// Replays every command of `source` into `target` (a fresh engine with the new model).
    public static func run(source: Journal, target: Engine, progress: ((Position, Position) -> Void)? = nil) async throws -> Diff {
        var diff = Diff()
        var users = Set<UserRef>()
        let names = StreamNames(source)
        var recalls: [(UserRef, EventID)] = []
        let end = try source.stats().lastPosition
        var from: Position = 1
        if let first = try source.read(from: 1, limit: 1).first {
            try await target.ensureActiveModel(name: "reconsolidation", at: first.header.eventTime)
        }
        while from <= end {
            let page = try source.read(from: from, limit: 1024)
            guard let last = page.last else { break }
            for e in page {
                guard let user = try names.user(e.header.streamID), let payload = try source.readablePayload(of: e),
                    let event = try MemoryEvent.decode(type: e.header.eventType, payload: payload)
                else { continue }
                let t = e.header.eventTime
                switch event {
                case .observation(let o):
                    _ = try await target.observe(user, o, at: t, id: e.header.eventID)
                case .recallRequest(let r):
                    _ = try await target.recall(user, query: r.query, k: Int(r.k), at: t, session: r.session, id: e.header.eventID)
                    recalls.append((user, e.header.eventID))
                case .feedback(let f):
                    do {
                        _ = try await target.feedback(user, recall: f.recall, memory: f.memory, kind: f.kind, note: f.note, at: t)
                    } catch EngineError.invalidArgument {
                        diff.feedback_skipped += 1
                    }
                case .sleepRequest(let s):
                    _ = try await target.sleep(user, at: t, reason: s.reason)
                case .erasureRequest(let r):
                    do { try await target.erase(user, reason: r.reason, at: t) } catch EngineError.notFound { continue }
                default:
                    continue
                }
                diff.commands += 1
                users.insert(user)
            }
            from = last.position + 1
            progress?(last.position, end)
        }

        // Compare the final states, user by user (memory ids derive from observation ids, so they match).
        let before = InMemoryFold()
        try ProjectionStore.foldJournal(source, into: before)
        var shift = 0.0, shifted = 0
        for user in users.sorted(by: { $0.description < $1.description }) {
            diff.users += 1
            let old = UserReader(kv: before.kv, user: user.key)
            guard let ou = try old.userRecord(), !ou.erased else { continue }
            let at = ou.lastEventTime
            let oldTiers = try old.tiers(at: at, name: user.description)
            let newTiers = try target.projections.read { kv in try UserReader(kv: kv, user: user.key).tiers(at: at, name: user.description) }
            let oldMemories = Dictionary(uniqueKeysWithValues: oldTiers.memories.values.flatMap { $0 }.map { ($0.record.id, $0) })
            let newMemories = Dictionary(uniqueKeysWithValues: newTiers.memories.values.flatMap { $0 }.map { ($0.record.id, $0) })
            diff.memories_before += oldMemories.count
            diff.memories_after += newMemories.count
            for (id, o) in oldMemories.sorted(by: { $0.key < $1.key }) {
                guard let n = newMemories[id] else {
                    diff.lost += 1
                    diff.lost_by_tier[o.record.tier.description, default: 0] += 1
                    if diff.examples.count < 10 { diff.examples.append("\(user): lost \(o.record.tier) “\(o.record.text.prefix(60))”") }
                    continue
                }
                if n.record.tier != o.record.tier {
                    diff.retiered += 1
                    if diff.examples.count < 10 { diff.examples.append("\(user): “\(o.record.text.prefix(50))” \(o.record.tier) → \(n.record.tier)") }
                }
                if n.record.type != o.record.type {
                    diff.retyped += 1
                    diff.retyped_by_type["\(o.record.type) → \(n.record.type)", default: 0] += 1
                    if diff.examples.count < 10 { diff.examples.append("\(user): “\(o.record.text.prefix(50))” \(o.record.type) → \(n.record.type)") }
                }
                if n.record.supersededBy != o.record.supersededBy { diff.superseded_differently += 1 }
                if n.record.reinforcements != o.record.reinforcements { diff.reinforced_differently += 1 }
                if n.record.flags != o.record.flags { diff.flagged_differently += 1 }
                shift += abs(n.strength - o.strength)
                shifted += 1
            }
            for (id, n) in newMemories.sorted(by: { $0.key < $1.key }) where oldMemories[id] == nil {
                diff.gained += 1
                diff.gained_by_tier[n.record.tier.description, default: 0] += 1
                if diff.examples.count < 10 { diff.examples.append("\(user): gained \(n.record.tier) “\(n.record.text.prefix(60))”") }
            }
        }
        diff.mean_abs_strength_shift = shifted > 0 ? (shift / Double(shifted) * 1e4).rounded() / 1e4 : 0
        var jaccard = 0.0
        for (user, id) in recalls {
            let o = try UserReader(kv: before.kv, user: user.key).recall(id)
            let n = try target.projections.read { kv in try UserReader(kv: kv, user: user.key).recall(id) }
            guard let o, let n else { continue }
            let a = Set(o.items.map(\.memory)), b = Set(n.items.map(\.memory))
            diff.recalls_compared += 1
            if a != b { diff.recalls_changed += 1 }
            jaccard += a.union(b).isEmpty ? 1 : Double(a.intersection(b).count) / Double(a.union(b).count)
        }
        diff.recall_jaccard = diff.recalls_compared > 0 ? (jaccard / Double(diff.recalls_compared) * 1e4).rounded() / 1e4 : 1
        return diff
    }
}
