import Foundation
import Journal
import Projections
import Testing

/// `psm report`: the HTML an auditor opens, rendered by headless Chromium and looked at.
@Suite struct ReportTests {
    let cli = CLITests()

    static func id(_ s: String) -> ID128 { ID128.derived(domain: "psm.report-test", Array(s.utf8)) }

    /// A user whose memories are superseded, reinforced, weakened and recalled over three months.
    func makeStore() throws -> String {
        let store = NSTemporaryDirectory() + "psm-report-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let j = try Journal(directory: store + "/journal")
        defer { j.close() }
        let user = try UserRef(tenant: "acme", user: "alice")
        let d = MemoryEvent.Decision.baseline
        let t0: Int64 = 1_767_261_600_000_000, day: Int64 = 86_400_000_000  // 2026-01-01T10:00Z
        var n = 0
        func add(_ e: MemoryEvent, at t: Int64, cause: String? = nil, name: String? = nil) throws {
            n += 1
            let data = EventData(id: Self.id(name ?? "e\(n)"), type: e.type.rawValue, time: t, causation: cause.map(Self.id) ?? .zero, payload: e.payload())
            _ = try j.appendBlocking([AppendRequest(stream: user.stream, events: [data])])
        }
        func remember(_ key: String, _ text: String, at t: Int64, strength: Double, days: Double) throws {
            try add(.observation(.init(text: text, session: "s1", speaker: "Alice", role: "user", sourceID: "msg-" + key)), at: t, name: "o" + key)
            try add(.gated(.init(decision: d, observation: Self.id("o" + key), kept: true, memory: Self.id("m" + key), tier: .working, type: .fact,
                                 emotionalWeight: Fixed(0.1), confidence: Fixed(0.9), strength: Fixed(strength), stability: UInt64(days * 86_400), vector: nil)), at: t, cause: "o" + key)
        }
        try remember("1", "I live in Boston near the harbor.", at: t0, strength: 0.9, days: 60)
        try remember("2", "My sister Marta is a nurse in Porto.", at: t0 + 3600_000_000, strength: 0.7, days: 30)
        try add(.encoded(.init(decision: d, memory: Self.id("m1"), tier: .episodic)), at: t0 + day)
        try add(.encoded(.init(decision: d, memory: Self.id("m2"), tier: .episodic)), at: t0 + day)
        for k in 1...3 {
            try add(.reinforced(.init(decision: d, memory: Self.id("m2"), boost: Fixed(0.2), stability: UInt64(30 * k * 86_400))), at: t0 + Int64(k * 12) * day)
        }
        try add(.weakened(.init(decision: d, memory: Self.id("m1"), factor: Fixed(0.6), stability: 20 * 86_400)), at: t0 + 40 * day)
        try remember("3", "I moved to Denver last month, loving the mountains.", at: t0 + 59 * day, strength: 0.9, days: 60)
        try add(.superseded(.init(decision: d, old: Self.id("m1"), new: Self.id("m3"))), at: t0 + 59 * day, cause: "g3")
        try add(.recallRequest(.init(query: "Where does Alice live?", k: 2)), at: t0 + 80 * day, name: "r1")
        try add(.recalled(.init(decision: d, request: Self.id("r1"), items: [.init(memory: Self.id("m3"), weight: Fixed(0.9)), .init(memory: Self.id("m1"), weight: Fixed(0.3))])), at: t0 + 80 * day, cause: "r1")
        return store
    }

    static var chromium: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    func screenshot(_ html: String, _ png: String, size: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(Self.chromium, "headless Chromium is needed (apt-get install chromium; scripts/setup.sh installs it)"))
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--window-size=\(size)", "--screenshot=\(png)", "file://" + html]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0 && FileManager.default.fileExists(atPath: png), "chromium failed on \(html)")
    }

    func pixels(_ png: String, _ colours: [String]) throws -> [String: Any] {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Scripts/png_colours.py").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, png] + colours
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test func reportShowsStrengthMarksTiersProvenanceAndDecisions() throws {
        let store = try makeStore()
        // PSM_KEEP_REPORT=1 keeps the store, report and screenshots for a look.
        defer { if ProcessInfo.processInfo.environment["PSM_KEEP_REPORT"] == nil { try? FileManager.default.removeItem(atPath: store) } }
        let out = store + "/report.html"
        let r = try cli.run(["report", "--store", store, "--tenant", "acme", "--user", "alice", "--memory", Self.id("m2").description, "--out", out])
        #expect(r.status == 0, "\(r.err)")
        let html = try String(contentsOfFile: out, encoding: .utf8)
        // Self-contained: nothing fetched from anywhere.
        #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("<script") && !html.contains("src="))
        func count(_ s: String) -> Int { html.components(separatedBy: s).count - 1 }
        #expect(count("class=\"mark reinforced\"") == 3)
        #expect(count("class=\"mark weakened\"") == 1)
        #expect(count("class=\"mark superseded\"") == 1 && count("class=\"mark supersedes\"") == 1)
        #expect(count("class=\"mark recalled\"") == 2)
        #expect(count("class=\"curve\"") == 3)
        #expect(count("class=\"tier-seg\"") >= 5, "working then episodic for each memory")
        #expect(html.contains("Provenance of <code>\(Self.id("m2"))</code>") && html.contains("msg-2") && html.contains("My sister Marta is a nurse in Porto."))
        #expect(count("<tr><td>") == 12, "every decision is in the log")
        #expect(html.contains("rule-baseline"))
        let bad = try cli.run(["report", "--store", store, "--tenant", "acme", "--user", "alice", "--memory", String(repeating: "ab", count: 16), "--out", out])
        #expect(bad.status == 64 && bad.err.contains("abab"))

        // What an auditor sees: the page is not blank, and the plot alone shows its marks in their colours.
        try screenshot(out, store + "/report.png", size: "1100,1600")
        let page = try pixels(store + "/report.png", [])
        #expect((page["non_white"] as? Int ?? 0) > 1100 * 1600 / 20 && (page["distinct"] as? Int ?? 0) > 30, "\(page)")
        let start = try #require(html.range(of: "<svg id=\"strength\"")), end = try #require(html.range(of: "</svg>", range: start.upperBound..<html.endIndex))
        let plot = store + "/plot.html"
        try ("<!DOCTYPE html><html><body style=\"margin:0;background:#fff\">" + html[start.lowerBound..<end.upperBound] + "</body></html>").write(toFile: plot, atomically: true, encoding: .utf8)
        try screenshot(plot, store + "/plot.png", size: "980,340")
        let marks = try #require(try pixels(store + "/plot.png", ["#2ca02c", "#ff7f0e", "#d62728", "#1f77b4"])["colours"] as? [String: Int])
        #expect(marks["#2ca02c", default: 0] >= 3 * 60, "reinforcement marks: \(marks)")
        #expect(marks["#ff7f0e", default: 0] >= 40, "weakening mark: \(marks)")
        #expect(marks["#d62728", default: 0] >= 2 * 30, "supersession marks: \(marks)")
        #expect(marks["#1f77b4", default: 0] >= 200, "the first curve: \(marks)")
    }
}
