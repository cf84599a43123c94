import Foundation
import Journal
import Testing

/// SIGKILL during the engine's work — ingest (observe), sleep-time reorganisation, rebuild and erasure —
/// at seeded random moments. After each kill: `psm verify --projections` passes, the projections rebuild
/// to the incrementally maintained state hash, a re-run of the ingest is exactly-once, and an erasure
/// whose event is durable has its key destroyed. PSM_CRASH_KILLS sets the rounds (30 by default).
@Suite struct CrashCLITests {
    let cli = CLITests()

    func spawn(_ args: [String], env: [String: String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.psm)
        p.arguments = args
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        p.environment = environment
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// "YYYY-MM-DDTHH" of hour `hour` after 2026-01-01T00 UTC: strictly increasing in `hour` for any
    /// number of rounds (an earlier month/day formula wrapped at hour 672 and sent time backwards).
    static func hourStamp(_ hour: Int) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let d = calendar.dateComponents([.year, .month, .day, .hour], from: Date(timeIntervalSince1970: 1_767_225_600 + Double(hour) * 3600))
        return String(format: "%04d-%02d-%02dT%02d", d.year!, d.month!, d.day!, d.hour!)
    }

    @Test func hourStampsOnlyGrow() {
        #expect(CrashCLITests.hourStamp(0) == "2026-01-01T00")
        #expect(CrashCLITests.hourStamp(25) == "2026-01-02T01")
        #expect(CrashCLITests.hourStamp(24 * 59) == "2026-03-01T00")
        let stamps = (0..<20_000).map(CrashCLITests.hourStamp)
        #expect(zip(stamps, stamps.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test func sigkillDuringIngestSleepRebuildAndErasure() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["PSM_CRASH_KILLS"] ?? "") ?? 30
        let store = NSTemporaryDirectory() + "psm-crash-cli-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: store) }
        let env = ["PSM_STORE": store, "PSM_TENANT": "acme", "PSM_HOME": store + "/home", "PSM_MODEL": "", "PSM_MINILM_DIR": ""]
        var rng = SplitMix64(seed: 0xBADC0DE)
        var killedMidWork = 0
        var hour = 0
        for round in 0..<rounds {
            let op = round % 4
            var args: [String]
            var ingestFile: String? = nil
            var lines = 0
            switch op {
            case 0, 3:
                // An ingest of 300 turns with ids (op 3 ingests a user that round+1 erases).
                let user = op == 0 ? "u\(round % 3)" : "victim\(round)"
                ingestFile = store + "/r\(round).jsonl"
                lines = 300
                hour += 1
                let base = CrashCLITests.hourStamp(hour)
                try (0..<lines).map { n in
                    #"{"text":"round \#(round) turn \#(n): we talked about the garden, the boat and plan \#(n % 9)","id":"\#(String(format: "%08x%08x%016x", 0xFEED, round, n))","at":"\#(base):\#(String(format: "%02d:%02d", n / 60, n % 60))Z"}"#
                }.joined(separator: "\n").write(toFile: ingestFile!, atomically: true, encoding: .utf8)
                args = ["ingest", ingestFile!, "--user", user]
            case 1:
                hour += 1
                args = ["sleep", "--at", CrashCLITests.hourStamp(hour) + ":59:59Z"]
            default:
                args = ["rebuild"]
            }
            let p = try spawn(args, env: env)
            usleep(UInt32(30_000 + rng.next() % 400_000))
            if p.isRunning { killedMidWork += 1 }
            // Only a running child: a finished one is reaped at once and its pid may already belong to
            // another test's process (a server killed this way made a parallel HTTP test fail).
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()

            let verify = try cli.run(["verify", "--projections", "--json"], env: env)
            #expect(verify.status == 0, "round \(round) (\(args[0])): \(verify.out) \(verify.err)")
            let rebuild = try cli.run(["rebuild", "--json"], env: env)
            let equal = (try? cli.json(rebuild.out))?["equal"] as? Bool
            #expect(rebuild.status == 0 && equal == true, "round \(round) (\(args[0])): \(rebuild.out) \(rebuild.err)")
            if let f = ingestFile {
                // Exactly-once: the re-run records exactly what the killed run did not.
                let again = try cli.run(args + ["--json"], env: env)
                #expect(again.status == 0, "round \(round): \(again.err)")
                let s = try cli.json(again.out)
                #expect((s["recorded"] as? Int ?? -1) + (s["duplicates"] as? Int ?? -1) == lines, "round \(round): \(again.out)")
                try? FileManager.default.removeItem(atPath: f)
            }
            if op == 3 {
                // Erase that user, killed at a random moment; any later open finishes the erasure.
                let user = "victim\(round)"
                let e = try spawn(["erase", "--user", user, "--yes"], env: env)
                usleep(UInt32(rng.next() % 150_000))
                if e.isRunning { kill(e.processIdentifier, SIGKILL) }
                e.waitUntilExit()
                let tiers = try cli.run(["tiers", "--user", user], env: env)
                let keyFiles = (try? FileManager.default.contentsOfDirectory(atPath: store + "/datakeys")) ?? []
                let stream = try StreamName(tenant: "acme", name: "user/" + user).id.description
                if tiers.err.contains("erased") {
                    #expect(!keyFiles.contains { $0.hasPrefix(stream) }, "round \(round): erased user's key survived")
                } else {
                    #expect(tiers.status == 0, "round \(round): \(tiers.err)")
                    #expect(try cli.run(["erase", "--user", user, "--yes"], env: env).status == 0)
                }
                #expect(try cli.run(["verify", "--projections"], env: env).status == 0, "round \(round) after erasure")
            }
        }
        let replay = try cli.run(["replay", "--verify", "--json"], env: env)
        let divergent = (try? cli.json(replay.out))?["divergent"] as? Int
        #expect(replay.status == 0 && divergent == 0, "\(replay.out) \(replay.err)")
        print("engine crash test: \(rounds) rounds, \(killedMidWork) killed while still working")
    }
}

struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
