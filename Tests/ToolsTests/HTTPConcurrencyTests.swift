import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Many writers and readers over HTTP on loopback, then the history checked: no acknowledged event
/// lost, duplicated or reordered per stream; retries with the same event id are exactly-once.
@Suite struct HTTPConcurrencyTests {
    let cli = CLITests()

    @Test func concurrentWritersRetriesAndReadersKeepEveryStreamExact() async throws {
        let store = NSTemporaryDirectory() + "psm-http-conc-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: store) }
        let env = ["PSM_STORE": store, "PSM_HOME": store + "/home", "PSM_MODEL": "", "PSM_MINILM_DIR": ""]
        let app = try HTTPTests().key(env, tenant: "acme", scopes: "memory:read,memory:write")
        let auditor = try HTTPTests().key(env, tenant: "acme", scopes: "journal:read")
        let server = try LiveServer(store: store, env: env)
        defer { _ = server.stop() }

        let users = 4, writersPerUser = 2, perWriter = 15
        func eventID(_ u: Int, _ w: Int, _ n: Int) -> String { String(format: "%08x%08x%08x%08x", 0xC0FFEE, u, w, n) }
        // Writers: each sends its observations one after another (waiting for each acknowledgement);
        // every third one is also sent a second time at once, as a client retry racing the original.
        let acked = try await withThrowingTaskGroup(of: [(Int, Int, Int, String)].self) { group in
            for u in 0..<users {
                for w in 0..<writersPerUser {
                    group.addTask {
                        var mine: [(Int, Int, Int, String)] = []
                        for n in 0..<perWriter {
                            let id = eventID(u, w, n)
                            let body = try JSONSerialization.data(withJSONObject: ["text": "writer \(w) of user \(u) says thing number \(n) about the garden", "id": id])
                            async let first = server.call("POST", "/v1/users/u\(u)/observations", key: app, raw: body)
                            if n % 3 == 0 {
                                let retry = try await server.call("POST", "/v1/users/u\(u)/observations", key: app, raw: body)
                                #expect(retry.status == 201, "retry \(id): \(retry.text)")
                                #expect(retry.json["observation"] as? String == id)
                            }
                            let r = try await first
                            #expect(r.status == 201, "\(id): \(r.text)")
                            if r.status == 201 { mine.append((u, w, n, id)) }
                        }
                        return mine
                    }
                }
            }
            // Readers at the same time.
            for u in 0..<users {
                group.addTask {
                    for _ in 0..<10 {
                        let r = try await server.call("POST", "/v1/users/u\(u)/recall", key: app, json: ["query": "garden thing", "k": 3, "peek": true])
                        #expect(r.status == 200 || r.status == 404, "\(r.text)")
                    }
                    return []
                }
            }
            var all: [(Int, Int, Int, String)] = []
            for try await part in group { all += part }
            return all
        }
        #expect(acked.count == users * writersPerUser * perWriter)

        for u in 0..<users {
            let page = try await server.call("GET", "/v1/users/u\(u)/journal?limit=1000", key: auditor)
            let events = try #require(page.json["events"] as? [[String: Any]])
            // Revisions are consecutive from 0 and positions increase: nothing lost or reordered in the stream.
            #expect(events.compactMap { $0["revision"] as? Int } == Array(0..<events.count))
            let positions = events.compactMap { $0["position"] as? Int }
            #expect(positions == positions.sorted() && Set(positions).count == positions.count)
            let observations = events.filter { $0["type"] as? String == "observation" }.compactMap { $0["event_id"] as? String }
            let sent = acked.filter { $0.0 == u }
            #expect(observations.count == sent.count, "user \(u): \(observations.count) observations for \(sent.count) acknowledged")
            #expect(Set(observations) == Set(sent.map(\.3)), "exactly the acknowledged ids, each once")
            for w in 0..<writersPerUser {
                let order = observations.filter { id in sent.contains { $0.1 == w && $0.3 == id } }
                #expect(order == sent.filter { $0.1 == w }.sorted { $0.2 < $1.2 }.map(\.3), "writer \(w) of user \(u) in send order")
            }
            // Event times never go back within a stream.
            let times = events.compactMap { $0["time"] as? String }
            #expect(times == times.sorted())
        }
        #expect(try cli.run(["verify", "--store", store], env: env).status == 0)
    }
}
