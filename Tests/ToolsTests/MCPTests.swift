import Foundation
import MCP
import SystemPackage
import Testing

/// `psm mcp` as an agent host runs it: a child process on a pipe, driven by the SDK's own client.
@Suite struct MCPTests {
    let cli = CLITests()

    typealias Call = (String, [String: Value]) async throws -> (text: String, isError: Bool)

    /// Runs `body` with an SDK client connected to `psm mcp --store STORE --tenant acme --user ana`
    /// plus `extra`, then closes the host's side and waits for the server to exit.
    func withMCP(store: String, extra: [String] = [], _ body: (Client, @escaping Call) async throws -> Void) async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.psm)
        p.arguments = ["mcp", "--store", store, "--tenant", "acme", "--user", "ana"] + extra
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in HTTPTests().environment(store) { environment[k] = v }
        environment["PSM_JOURNAL"] = nil
        p.environment = environment
        let toServer = Pipe(), fromServer = Pipe()
        p.standardInput = toServer
        p.standardOutput = fromServer
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        let transport = StdioTransport(
            input: FileDescriptor(rawValue: fromServer.fileHandleForReading.fileDescriptor),
            output: FileDescriptor(rawValue: toServer.fileHandleForWriting.fileDescriptor))
        let client = Client(name: "psm-test", version: "1")
        _ = try await client.connect(transport: transport)
        try await body(client) { name, args in
            let (content, isError) = try await client.callTool(name: name, arguments: args)
            var text = ""
            for c in content { if case .text(let t, _, _) = c { text += t } }
            return (text, isError ?? false)
        }
        await client.disconnect()
        try toServer.fileHandleForWriting.close()
        p.waitUntilExit()
    }

    @Test func rememberRecallFeedbackProvenanceOverStdio() async throws {
        let store = NSTemporaryDirectory() + "psm-mcp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: store) }
        let env = HTTPTests().environment(store)
        try await withMCP(store: store) { client, call in
            let (tools, _) = try await client.listTools()
            #expect(Set(tools.map(\.name)) == ["remember", "recall", "feedback", "provenance"])
            #expect(tools.allSatisfy { ($0.description ?? "").count > 40 }, "every tool says what it is for")
            func object(_ s: String) throws -> [String: Any] { try #require(try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any]) }

            let r1 = try await call("remember", ["text": "I keep my passport in the blue folder", "speaker": "Ana", "source_id": "turn-1", "at": "2026-02-01T10:00:00Z"])
            #expect(!r1.isError, "\(r1.text)")
            let memory = try #require(try object(r1.text)["memory"] as? String)
            _ = try await call("remember", ["text": "We booked flights to Reykjavik for June", "source_id": "turn-2", "at": "2026-02-01T10:01:00Z"])

            let recall = try await call("recall", ["query": "where is the passport?", "k": 1])
            #expect(!recall.isError, "\(recall.text)")
            let r = try object(recall.text)
            let top = try #require((r["memories"] as? [[String: Any]])?.first)
            #expect(top["memory"] as? String == memory && top["source_ids"] as? [String] == ["turn-1"])
            let recallID = try #require(r["recall"] as? String)

            let fb = try await call("feedback", ["recall": .string(recallID), "memory": .string(memory), "kind": "helped"])
            #expect(!fb.isError, "\(fb.text)")
            let prov = try await call("provenance", ["memory": .string(memory)])
            #expect(try object(prov.text)["source_ids"] as? [String] == ["turn-1"])

            // Bad arguments are tool errors that name the problem, and the server keeps serving.
            let bad = try await call("feedback", ["recall": .string(recallID), "memory": .string(memory), "kind": "great"])
            #expect(bad.isError && bad.text.contains("great"), "\(bad.text)")
            let missing = try await call("recall", ["k": 3])
            #expect(missing.isError && missing.text.contains("query"))
            let wrongType = try await call("recall", ["query": "passport", "k": "many"])
            #expect(wrongType.isError && wrongType.text.contains("k"))
            let unknown = try await call("forget_everything", [:])
            #expect(unknown.isError && unknown.text.contains("forget_everything"))
            let again = try await call("recall", ["query": "flights", "k": 1])
            #expect(!again.isError && again.text.contains("Reykjavik"))
        }

        // Everything went into the store's journal: the same store answers through the CLI.
        let tiers = try cli.run(["tiers", "--store", store, "--tenant", "acme", "--user", "ana", "--json"], env: env)
        #expect(tiers.status == 0 && tiers.out.contains("passport"), "\(tiers.err)")
    }

    /// `psm mcp --journal`: two agent hosts on two machines (two stores) share one user's memory in
    /// the cluster's PostgreSQL journal: what one remembers, the other recalls and traces to its source.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PSM_TEST_POSTGRES"].map { !$0.isEmpty } ?? false, "needs PSM_TEST_POSTGRES"))
    func twoHostsShareAUserThroughTheClusterJournal() async throws {
        var u = try #require(URLComponents(string: ProcessInfo.processInfo.environment["PSM_TEST_POSTGRES"] ?? ""))
        u.path = "/psm_mcp_\(UInt64.random(in: 0...UInt64.max))"
        let url = try #require(u.string)
        #expect(try cli.run(["cluster", "init", "--journal", url, "--partitions", "4"]).status == 0)
        let root = NSTemporaryDirectory() + "psm-mcp-cluster-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }

        /// Runs `body` against `psm mcp --journal URL --store root/name`.
        func host(_ name: String, _ body: (@escaping Call) async throws -> Void) async throws {
            let store = root + "/" + name
            try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
            try await withMCP(store: store, extra: ["--journal", url]) { _, call in try await body(call) }
        }
        func object(_ s: String) throws -> [String: Any] { try #require(try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], "\(s)") }

        var memory = ""
        try await host("laptop") { call in
            let r = try await call("remember", ["text": "I keep my passport in the blue folder", "source_id": "turn-1", "at": "2026-02-01T10:00:00Z"])
            #expect(!r.isError, "\(r.text)")
            memory = try #require(try object(r.text)["memory"] as? String)
        }
        try await host("phone") { call in
            let p = try await call("provenance", ["memory": .string(memory)])
            let sources = try object(p.text)["source_ids"] as? [String]
            #expect(!p.isError && sources == ["turn-1"], "the other host reads it: \(p.text)")
            _ = try await call("remember", ["text": "We booked flights to Reykjavik for June", "source_id": "turn-2", "at": "2026-02-01T10:01:00Z"])
            let recall = try await call("recall", ["query": "where is the passport?", "k": 1])
            let top = (try object(recall.text)["memories"] as? [[String: Any]])?.first
            #expect(top?["memory"] as? String == memory, "\(recall.text)")
        }
        // Both hosts' events are one stream in the journal of record, and they replay exactly.
        let replay = try cli.run(["replay", "--verify", "--journal", url, "--json"], env: HTTPTests().environment(root))
        let rj = try object(replay.out)
        #expect(replay.status == 0 && rj["divergent"] as? Int == 0 && rj["users"] as? Int == 1 && rj["commands"] as? Int ?? 0 >= 3, "\(replay.out) \(replay.err)")
    }
}
