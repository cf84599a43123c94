import Engine
import Foundation
import Journal
import Projections

/// The audit report (`psm report`): one self-contained HTML file (inline CSS and SVG, no script, no
/// network) with each tracked memory's strength over time and the decisions that changed it, the tier
/// timeline, the provenance tree of one memory and the decision log with model ids.
public enum AuditReport {
    public struct Options: Sendable {
        /// Memories plotted: the chosen one plus the strongest and most-touched ones, up to this many.
        public var memories = 8
        public var decisionRows = 500
        public var focus: ID128?
        public init() {}
    }

    /// One change of a memory's state, as folded after an event.
    struct Snapshot { var time: Int64; var position: Position; var record: MemoryRecord }
    struct Mark { var time: Int64; var position: Position; var kind: String; var strength: Double }
    struct Track {
        var id: ID128
        var snapshots: [Snapshot] = []
        var marks: [Mark] = []
        var touches = 0
    }
    struct Row { var position: Position; var time: Int64; var type: String; var memory: String; var model: String; var digest: String; var summary: String }

    /// The memory ids a decision event is about.
    static func memories(of e: MemoryEvent) -> [ID128] {
        switch e {
        case .gated(let x): x.kept ? [x.memory] : []
        case .encoded(let x): [x.memory]
        case .reinforced(let x): [x.memory]
        case .weakened(let x): [x.memory]
        case .superseded(let x): [x.old, x.new]
        case .flagged(let x): [x.memory] + (x.related.isZero ? [] : [x.related])
        case .consolidated(let x): [x.memory] + x.sources
        case .archived(let x): [x.memory]
        case .pruned(let x): [x.memory]
        case .recalled(let x): x.items.map(\.memory)
        default: []
        }
    }

    static func markKind(_ e: MemoryEvent, _ id: ID128) -> String? {
        switch e {
        case .gated: "created"
        case .reinforced: "reinforced"
        case .weakened: "weakened"
        case .superseded(let x): x.old == id ? "superseded" : "supersedes"
        case .consolidated(let x): x.memory == id ? "created" : "consolidated"
        case .archived, .pruned: "archived"
        case .recalled: "recalled"
        case .encoded: "moved"
        case .flagged: "flagged"
        default: nil
        }
    }

    /// Builds the report for `user` from its journal stream: the store's, or on an engine over a
    /// cluster's journal of record (SPEC.md §15.5) the stream read from there first.
    public static func render(engine: Engine, user: UserRef, options: Options = Options()) async throws -> String {
        guard let record = engine.record else { return try render(engine: engine, user: user, options: options, stream: nil) }
        try await engine.refresh(user)
        return try render(engine: engine, user: user, options: options, stream: try await record.stream(user.key))
    }

    static func render(engine: Engine, user: UserRef, options: Options, stream: FetchedEvents?) throws -> String {
        _ = try engine.userRecord(user)
        var tracks: [ID128: Track] = [:]
        var rows: [Row] = []
        var decisionsTotal = 0
        var models: [String: Int] = [:]
        var first: Int64 = .max, last: Int64 = .min
        var events = 0
        // First pass: every memory's snapshots and marks, and the decision log.
        func walk(_ body: (StoredEvent, MemoryEvent?, UserReader<MemoryKV>) throws -> Void) throws {
            if let stream { try UserStreamWalk.walk(user, stream: stream, body) } else { try UserStreamWalk.walk(user, journal: engine.journal, body) }
        }
        try walk { stored, event, reader in
            events += 1
            let t = stored.header.eventTime
            first = min(first, t)
            last = max(last, t)
            guard let event else { return }
            if let d = EventSummary.decision(event) {
                decisionsTotal += 1
                let model = hexBytes(d.model)
                models[model, default: 0] += 1
                if rows.count < options.decisionRows {
                    rows.append(Row(
                        position: stored.position, time: t, type: event.type.description, memory: memories(of: event).first?.description ?? "",
                        model: model, digest: hexBytes(d.inputDigest), summary: EventSummary.text(event)))
                }
            }
            for id in memories(of: event) {
                guard let record = try reader.memoryRecord(id) else { continue }
                var track = tracks[id] ?? Track(id: id)
                track.touches += 1
                if track.snapshots.last.map({ $0.record != record }) ?? true { track.snapshots.append(Snapshot(time: t, position: stored.position, record: record)) }
                if let kind = markKind(event, id) { track.marks.append(Mark(time: t, position: stored.position, kind: kind, strength: record.strength(at: t))) }
                tracks[id] = track
            }
        }
        // Which memories to plot: the focus, then by strength now and by how often decisions touched them.
        let now = last
        let ranked = tracks.values.sorted { a, b in
            let sa = a.snapshots.last!.record.strength(at: now), sb = b.snapshots.last!.record.strength(at: now)
            if a.touches != b.touches { return a.touches > b.touches }
            if sa != sb { return sa > sb }
            return a.id.description < b.id.description
        }
        var chosen: [Track] = []
        if let f = options.focus {
            guard let t = tracks[f] else { throw APIError.notFound("memory \(f) of user \(user.user)") }
            chosen.append(t)
        }
        for t in ranked where chosen.count < options.memories && !chosen.contains(where: { $0.id == t.id }) { chosen.append(t) }
        let focus = chosen.first?.id
        let provenance = try focus.map { try engine.provenance(user, $0) }
        let listing = try engine.tiers(user)
        return html(
            user: user, events: events, first: first, last: last, tracks: chosen, rows: rows, decisionsTotal: decisionsTotal, models: models,
            provenance: provenance, listing: listing, stateHash: stream == nil ? try engine.stateHash() : try engine.projections.userStateHash(user.key))
    }

    // MARK: - HTML

    static let tierOrder: [Tier] = [.working, .episodic, .semantic, .archival]
    static let tierColour: [Tier: String] = [.working: "#9ecae1", .episodic: "#4292c6", .semantic: "#08519c", .archival: "#bdbdbd", .sensory: "#eeeeee"]
    static let palette = ["#1f77b4", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f", "#bcbd22", "#393b79", "#637939", "#843c39"]
    /// Mark colours: the test looks for these in a screenshot.
    static let markColour = ["reinforced": "#2ca02c", "weakened": "#ff7f0e", "superseded": "#d62728", "supersedes": "#d62728", "recalled": "#555555",
                             "created": "#000000", "consolidated": "#6a3d9a", "archived": "#969696", "moved": "#4292c6", "flagged": "#e6ab02"]

    static func esc(_ s: String) -> String {
        var o = ""
        o.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            case "'": o += "&#39;"
            default: o.append(c)
            }
        }
        return o
    }

    static func day(_ t: Int64) -> String { String(WireTime.format(t).prefix(10)) }

    static func html(
        user: UserRef, events: Int, first: Int64, last: Int64, tracks: [Track], rows: [Row], decisionsTotal: Int, models: [String: Int],
        provenance: Provenance?, listing: TierListing, stateHash: [UInt8]
    ) -> String {
        let span = max(last - first, 1)
        let w = 960.0, h = 320.0, left = 56.0, right = 16.0, top = 16.0, bottom = 40.0
        let pw = w - left - right, ph = h - top - bottom
        func x(_ t: Int64) -> Double { left + pw * Double(t - first) / Double(span) }
        func y(_ s: Double) -> Double { top + ph * (1 - min(max(s, 0), 1)) }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }

        var svg = "<svg id=\"strength\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" role=\"img\" aria-label=\"strength over time\">"
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"#fafafa\" stroke=\"#ccc\"/>"
        for s in stride(from: 0.0, through: 1.0, by: 0.25) {
            svg += "<line x1=\"\(f(left))\" x2=\"\(f(left + pw))\" y1=\"\(f(y(s)))\" y2=\"\(f(y(s)))\" stroke=\"#e5e5e5\"/><text x=\"\(f(left - 6))\" y=\"\(f(y(s) + 4))\" text-anchor=\"end\" class=\"axis\">\(String(format: "%.2f", s))</text>"
        }
        for i in 0...4 {
            let t = first + span * Int64(i) / 4
            svg += "<text x=\"\(f(x(t)))\" y=\"\(f(h - 14))\" text-anchor=\"\(i == 0 ? "start" : i == 4 ? "end" : "middle")\" class=\"axis\">\(day(t))</text>"
        }
        // Curves: each snapshot holds until the next; sampled so the decay shows.
        for (i, tr) in tracks.enumerated() {
            let colour = palette[i % palette.count]
            var points: [String] = []
            for (k, snap) in tr.snapshots.enumerated() {
                let end = k + 1 < tr.snapshots.count ? tr.snapshots[k + 1].time : last
                let steps = 24
                for j in 0...steps {
                    let t = snap.time + (end - snap.time) * Int64(j) / Int64(steps)
                    points.append("\(f(x(t))),\(f(y(snap.record.strength(at: t))))")
                }
            }
            svg += "<polyline class=\"curve\" data-memory=\"\(tr.id)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>"
        }
        for tr in tracks {
            for m in tr.marks where m.kind != "moved" {
                let c = markColour[m.kind] ?? "#000"
                let cx = f(x(m.time)), cy = f(y(m.strength))
                let title = "<title>\(m.kind) at #\(m.position), \(esc(WireTime.format(m.time))), strength \(String(format: "%.3f", m.strength))</title>"
                switch m.kind {
                case "reinforced", "created", "consolidated":
                    svg += "<circle class=\"mark \(m.kind)\" cx=\"\(cx)\" cy=\"\(cy)\" r=\"6\" fill=\"\(c)\" stroke=\"#fff\" stroke-width=\"1\">\(title)</circle>"
                case "superseded", "supersedes":
                    let a = x(m.time), b = y(m.strength)
                    svg += "<path class=\"mark \(m.kind)\" d=\"M\(f(a - 6)) \(f(b - 6))L\(f(a + 6)) \(f(b + 6))M\(f(a + 6)) \(f(b - 6))L\(f(a - 6)) \(f(b + 6))\" stroke=\"\(c)\" stroke-width=\"3\">\(title)</path>"
                case "weakened":
                    let a = x(m.time), b = y(m.strength)
                    svg += "<path class=\"mark weakened\" d=\"M\(f(a - 6)) \(f(b - 5))L\(f(a + 6)) \(f(b - 5))L\(f(a)) \(f(b + 6))Z\" fill=\"\(c)\">\(title)</path>"
                default:
                    svg += "<rect class=\"mark \(m.kind)\" x=\"\(f(x(m.time) - 3))\" y=\"\(f(y(m.strength) - 3))\" width=\"6\" height=\"6\" fill=\"\(c)\">\(title)</rect>"
                }
            }
        }
        svg += "</svg>"

        // Tier timeline: one band per tracked memory, a segment per tier held.
        let bandH = 18.0, tw = w
        var timeline = "<svg id=\"tiers\" width=\"\(Int(tw))\" height=\"\(Int(Double(tracks.count) * (bandH + 6) + 30))\">"
        for (i, tr) in tracks.enumerated() {
            let yy = Double(i) * (bandH + 6) + 4
            var k = 0
            while k < tr.snapshots.count {
                let tier = tr.snapshots[k].record.tier
                var j = k + 1
                while j < tr.snapshots.count && tr.snapshots[j].record.tier == tier { j += 1 }
                let start = tr.snapshots[k].time, end = j < tr.snapshots.count ? tr.snapshots[j].time : last
                let x0 = x(start), x1 = max(x(end), x0 + 2)
                timeline += "<rect class=\"tier-seg\" x=\"\(f(x0))\" y=\"\(f(yy))\" width=\"\(f(x1 - x0))\" height=\"\(f(bandH))\" fill=\"\(tierColour[tier] ?? "#ccc")\"><title>\(tier) from \(esc(WireTime.format(start)))</title></rect>"
                k = j
            }
            timeline += "<rect x=\"2\" y=\"\(f(yy + 4))\" width=\"10\" height=\"10\" fill=\"\(palette[i % palette.count])\"/>"
        }
        let axisY = Double(tracks.count) * (bandH + 6) + 22
        for i in 0...4 {
            let t = first + span * Int64(i) / 4
            timeline += "<text x=\"\(f(x(t)))\" y=\"\(f(axisY))\" text-anchor=\"\(i == 0 ? "start" : i == 4 ? "end" : "middle")\" class=\"axis\">\(day(t))</text>"
        }
        timeline += "</svg>"

        var legend = "<ul class=\"legend\">"
        for (i, tr) in tracks.enumerated() {
            let rec = tr.snapshots.last!.record
            legend += "<li><span class=\"sw\" style=\"background:\(palette[i % palette.count])\"></span><code>\(tr.id.description.prefix(8))</code> [\(rec.tier)\(rec.isValid ? "" : ", superseded")] \(esc(String(rec.text.prefix(90))))</li>"
        }
        legend += "</ul><ul class=\"legend marks\">"
        for k in ["created", "reinforced", "weakened", "superseded", "recalled", "consolidated", "archived"] {
            legend += "<li><span class=\"sw\" style=\"background:\(markColour[k]!)\"></span>\(k)</li>"
        }
        legend += "</ul><ul class=\"legend\">"
        for t in tierOrder { legend += "<li><span class=\"sw\" style=\"background:\(tierColour[t]!)\"></span>\(t)</li>" }
        legend += "</ul>"

        func tree(_ n: ProvenanceNode) -> String {
            var s = "<li><span class=\"pk \(n.kind.rawValue)\">\(n.kind.rawValue)</span> <code>\(n.id)</code>"
            if let t = n.tier { s += " [\(t)]" }
            let meta = [n.sourceID.isEmpty ? nil : "source " + n.sourceID, n.session.isEmpty ? nil : "session " + n.session, n.speaker.isEmpty ? nil : n.speaker, WireTime.format(n.time)]
                .compactMap { $0 }.map(esc).joined(separator: " · ")
            s += " <span class=\"meta\">\(meta)</span><div class=\"quote\">“\(esc(n.text))”</div>"
            if !n.children.isEmpty { s += "<ul>" + n.children.map(tree).joined() + "</ul>" }
            return s + "</li>"
        }

        var counts = "<table class=\"counts\"><tr><th>sensory</th>" + tierOrder.map { "<th>\($0)</th>" }.joined() + "</tr><tr><td>\(listing.sensory.count)</td>"
        counts += tierOrder.map { "<td>\(listing.memories[$0]?.count ?? 0)</td>" }.joined() + "</tr></table>"

        var log = "<table class=\"log\"><thead><tr><th>#</th><th>event time</th><th>decision</th><th>memory</th><th>model</th><th>inputs</th><th>what</th></tr></thead><tbody>"
        for r in rows {
            let model = r.model.allSatisfy { $0 == "0" } ? "rule-baseline" : String(r.model.prefix(12)) + "…"
            log += "<tr><td>\(r.position)</td><td>\(esc(WireTime.format(r.time)))</td><td>\(r.type)</td><td><code>\(r.memory.prefix(8))</code></td><td><code title=\"\(r.model)\">\(model)</code></td><td><code title=\"\(r.digest)\">\(r.digest.prefix(8))</code></td><td>\(esc(r.summary))</td></tr>"
        }
        log += "</tbody></table>"
        if decisionsTotal > rows.count { log += "<p class=\"meta\">showing the first \(rows.count) of \(decisionsTotal) decisions (psm report --decisions N)</p>" }
        let modelList = models.sorted { $0.value > $1.value }.map { "<li><code>\($0.key.allSatisfy { $0 == "0" } ? "rule-baseline" : $0.key)</code>: \($0.value) decisions</li>" }.joined()

        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>PSM audit report: \(esc(user.description))</title>
            <style>
            body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:24px auto;max-width:1000px;padding:0 16px;background:#fff}
            h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
            .meta{color:#666;font-size:12px}code{font:12px ui-monospace,Menlo,Consolas,monospace}
            .axis{font:11px sans-serif;fill:#666}.legend{list-style:none;padding:0;margin:6px 0;display:flex;flex-wrap:wrap;gap:4px 16px}
            .legend li{font-size:12px}.sw{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px;vertical-align:middle}
            table{border-collapse:collapse;font-size:12px}th,td{border-bottom:1px solid #eee;padding:3px 8px;text-align:left;vertical-align:top}
            .counts td,.counts th{text-align:center}.log td:nth-child(2),.log td:nth-child(5){white-space:nowrap}.tree ul{list-style:none;padding-left:18px;border-left:2px solid #e5e5e5}.tree{list-style:none;padding-left:0}
            .quote{margin:2px 0 8px 0;color:#333}.pk{font-size:11px;padding:1px 5px;border-radius:3px;background:#eef}.pk.observation{background:#efe}
            </style></head><body>
            <h1>Audit report: \(esc(user.description))</h1>
            <p class="meta">\(events) journal events from \(esc(WireTime.format(first))) to \(esc(WireTime.format(last))) · \(decisionsTotal) decisions · projection state hash <code>\(hexBytes(stateHash).prefix(16))…</code></p>
            \(counts)
            <h2>Strength over time</h2>
            <p class="meta">Strength as the journal implies it at each moment (SPEC.md §11.2), for the \(tracks.count) memories most touched by decisions; marks are the decisions that changed them.</p>
            \(svg)
            \(legend)
            <h2>Tier timeline</h2>
            \(timeline)
            <h2>Provenance of \(provenance.map { "<code>\($0.root.id)</code>" } ?? "—")</h2>
            \(provenance.map { "<ul class=\"tree\">" + tree($0.root) + "</ul><p class=\"meta\">app source ids: " + esc($0.sourceIDs.joined(separator: ", ")) + "</p>" } ?? "<p>no memories</p>")
            <h2>Models</h2><ul>\(modelList)</ul>
            <h2>Decision log</h2>
            \(log)
            </body></html>
            """
    }
}
