import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Graceful shutdown and the in-flight limit of `psm serve`.
@Suite struct HTTPShutdownTests {
    func store() throws -> (String, [String: String]) {
        let s = NSTemporaryDirectory() + "psm-http-shutdown-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: s, withIntermediateDirectories: true)
        return (s, ["PSM_STORE": s, "PSM_HOME": s + "/home", "PSM_MODEL": "", "PSM_MINILM_DIR": ""])
    }

    static func batch(_ n: Int, _ tag: String) throws -> Data {
        try JSONSerialization.data(withJSONObject: ["observations": (0..<n).map { ["text": "\(tag) turn \($0): the garden, the boat and the lake house"] }])
    }

    /// Synchronous on purpose: it holds its thread, so its clock measures the server, not how long the
    /// cooperative pool took to get back to it (on two cores, with every other suite running, that
    /// was once over 20 seconds).
    @Test func sigtermFinishesTheRequestsInFlight() throws {
        let (s, env) = try store()
        defer { try? FileManager.default.removeItem(atPath: s) }
        let app = try HTTPTests().key(env, tenant: "acme", scopes: "memory:read,memory:write")
        let auditor = try HTTPTests().key(env, tenant: "acme", scopes: "journal:read")
        let server = try LiveServer(store: s, env: env, extra: ["--max-body", "1048576"])
        let body = try Self.batch(300, "inflight")
        nonisolated(unsafe) var reply: Result<LiveServer.Reply, any Error> = .failure(LiveServer.CLIError("no reply"))
        let replied = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            reply = Result { try server.callBlocking("POST", "/v1/users/ana/observations/batch", key: app, raw: body) }
            replied.signal()
        }
        // Wait until the batch is being recorded (its stream exists), then ask the server to stop.
        let deadline = Date().addingTimeInterval(60)
        var polls: [String] = []
        var started = false
        while Date() < deadline && !started {
            usleep(5_000)
            do {
                let r = try server.callBlocking("GET", "/v1/users/ana/journal?limit=1", key: auditor)
                started = r.status == 200
                polls.append("\(r.status)")
            } catch { polls.append("\(error)") }
        }
        try #require(started, "the batch's stream appears (polls: \(polls.count), last: \(polls.suffix(2)), log: \(server.log.suffix(2000)))")
        kill(server.process.processIdentifier, SIGTERM)
        replied.wait()
        let r = try reply.get()
        #expect(r.status == 201 && (r.json["results"] as? [Any])?.count == 300, "the batch in flight completes: \(r.status) \(r.text.prefix(200))")
        #expect(server.stop() == 0)
        // Everything acknowledged is in the journal, once.
        let restarted = try LiveServer(store: s, env: env)
        defer { _ = restarted.stop() }
        let page = try restarted.callBlocking("GET", "/v1/users/ana/journal?limit=1000", key: auditor)
        let observations = (page.json["events"] as? [[String: Any]] ?? []).filter { $0["type"] as? String == "observation" }
        #expect(observations.count == 300)
    }

    @Test func requestsBeyondTheInFlightLimitGet503() async throws {
        let (s, env) = try store()
        defer { try? FileManager.default.removeItem(atPath: s) }
        let app = try HTTPTests().key(env, tenant: "acme", scopes: "memory:read,memory:write")
        let server = try LiveServer(store: s, env: env, extra: ["--max-body", "1048576", "--max-concurrent", "1"])
        defer { _ = server.stop() }
        let statuses = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for i in 0..<4 {
                let body = try Self.batch(150, "user\(i)")
                group.addTask {
                    let r = try await server.call("POST", "/v1/users/u\(i)/observations/batch", key: app, raw: body)
                    return (r.status, r.errorCode ?? "")
                }
            }
            var all: [(Int, String)] = []
            for try await s in group { all.append(s) }
            return all
        }
        #expect(statuses.contains { $0.0 == 201 }, "\(statuses)")
        #expect(statuses.contains { $0.0 == 503 && $0.1 == "busy" }, "with one request allowed in flight, concurrent ones are refused: \(statuses)")
        #expect(statuses.allSatisfy { $0.0 == 201 || $0.0 == 503 })
    }
}
