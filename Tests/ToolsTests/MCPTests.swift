import Foundation
import MCP
import SystemPackage
import Testing

/// `psm mcp` as an agent host runs it: a child process on a pipe, driven by the SDK's own client.
@Suite struct MCPTests {
    let cli = CLITests()

    @Test func rememberRecallFeedbackProvenanceOverStdio() async throws {
        let store = NSTemporaryDirectory() + "psm-mcp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: store) }
        let env = HTTPTests().environment(store)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.psm)
        p.arguments = ["mcp", "--store", store, "--tenant", "acme", "--user", "ana"]
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
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

        let (tools, _) = try await client.listTools()
        #expect(Set(tools.map(\.name)) == ["remember", "recall", "feedback", "provenance"])
        #expect(tools.allSatisfy { ($0.description ?? "").count > 40 }, "every tool says what it is for")

        func call(_ name: String, _ args: [String: Value]) async throws -> (text: String, isError: Bool) {
            let (content, isError) = try await client.callTool(name: name, arguments: args)
            var text = ""
            for c in content { if case .text(let t, _, _) = c { text += t } }
            return (text, isError ?? false)
        }
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

        await client.disconnect()
        try toServer.fileHandleForWriting.close()
        p.waitUntilExit()

        // Everything went into the store's journal: the same store answers through the CLI.
        let tiers = try cli.run(["tiers", "--store", store, "--tenant", "acme", "--user", "ana", "--json"], env: env)
        #expect(tiers.status == 0 && tiers.out.contains("passport"), "\(tiers.err)")
    }
}
