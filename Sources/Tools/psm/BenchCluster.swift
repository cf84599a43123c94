import ArgumentParser
import Cluster
import Foundation
import Journal
import JournalPostgres
import Projections
import Workloads

/// `psm bench cluster`: the PostgreSQL journal of record and nodes over it, against the LMDB journal
/// in the same run (SPEC.md §15).
struct ClusterBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Appends through the PostgreSQL journal (1 and 8 clients), racing writers, node takeover and projection lag.",
        discussion: """
            Needs a PostgreSQL server: --journal postgres://USER@HOST:PORT/DB (or $PSM_JOURNAL) names a \
            database this benchmark may create and fill (use a scratch one; `source scripts/postgres.sh` \
            starts a throwaway server on loopback and exports PSM_TEST_POSTGRES). Measures, in one run:
            - durable appends/s of seeded memory events through PostgresJournal with 1 and 8 clients, and \
            the same through the LMDB journal in a temporary directory (the single-machine peer);
            - a projecting node following its partitions' feeds during the 8-client load: the most \
            acknowledged events not yet folded at any poll (lag);
            - --rounds rounds of 8 writers racing for the same expected revision (double winners: rounds \
            without exactly one winner);
            - every acknowledged event read back: lost and duplicated ones;
            - takeover: three `psm serve --journal … --node` processes (this executable) split the \
            partitions; --takeover-users users get three observations each over HTTP; the node serving \
            the most of them is killed with SIGKILL; seconds until every one of its users answers on a \
            survivor with the state hash it had before (takeover.changed_state counts those that \
            answered with another: must be 0).
            - with --kill-primary CMD: 4 writers for --failover-load seconds, CMD run after 3 s; the longest \
            pause in acknowledgements (failover_s), appends retried with the same ids. Without it \
            failover_s is null.

            --long starts the long-mode cluster itself: Scripts/cluster-long.sh --up (three etcd members, \
            three PostgreSQL servers under Patroni with two synchronous standbys, HAProxy; needs root and \
            installs what is missing), then runs everything above through HAProxy with its kill command, \
            and stops the cluster at the end.

            Example:
              source scripts/postgres.sh && psm bench cluster --journal "${PSM_TEST_POSTGRES%/*}/psm_bench" --json
              sudo .build/release/psm bench cluster --long --json
            """)

    @OptionGroup var backend: JournalBackendOptions
    @Option(help: "Events per append measurement (split over the clients).") var events: Int = 2000
    @Option(help: "Rounds of racing writers.") var rounds: Int = 1000
    @Option(help: "Partitions of a new journal.") var partitions: Int = 16
    @Option(help: ArgumentHelp("Kill the PostgreSQL primary with this command under a write load and measure the failover (Scripts/cluster-long.sh gives one).", valueName: "COMMAND"))
    var killPrimary: String?
    @Option(help: "Seconds of write load around the kill.") var failoverLoad: Double = 30
    @Option(help: "Users written before a node is killed (takeover).") var takeoverUsers: Int = 24
    @Flag(help: "Start the long-mode cluster (Scripts/cluster-long.sh --up, as root) and kill its primary under load.") var long = false
    @Option(help: ArgumentHelp("The long-mode script (with --long).", valueName: "PATH")) var clusterScript = "Scripts/cluster-long.sh"
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (80...1_000_000).contains(events) else { throw ValidationError("--events must be 80...1000000, got \(events)") }
        guard (1...100_000).contains(rounds) else { throw ValidationError("--rounds must be 1...100000, got \(rounds)") }
        guard (3...10_000).contains(takeoverUsers) else { throw ValidationError("--takeover-users must be 3...10000, got \(takeoverUsers)") }
        if long && (backend.journal != nil || killPrimary != nil) { throw ValidationError("--long starts its own cluster: drop --journal and --kill-primary") }
    }

    struct Report: Encodable {
        var events: Int
        var appends_per_s_1: Double
        var appends_per_s_8: Double
        var lmdb_appends_per_s_1: Double
        var lmdb_appends_per_s_8: Double
        var projection_lag_events_max: Int
        var projection_polls: Int
        var rounds: Int
        var double_winners: Int
        var acked: Int
        var acked_lost: Int
        var duplicates: Int
        var takeover_s: Double
        /// The node takeover: 3 node processes, users written over HTTP, the busiest node SIGKILLed.
        var takeover: NodeTakeover.Result
        /// Always present: null until measured.
        var failover_s: Nullable<Double>
        var failover: String
        var partitions: Int
    }

    /// Seeded memory events, `clients` independent generators (one tenant each).
    /// Each generator starts at its own time (event ids are time-ordered), offset by the seed so that
    /// runs against one database do not reuse ids.
    static func workload(_ n: Int, clients: Int, seed: UInt64) -> [[AppendRequest]] {
        (0..<clients).map { c in
            let start = 1_767_225_600_000_000 + Int64(seed % 100_000) * 100_000_000_000 + Int64(c) * 10_000_000_000
            var gen = MemoryEventGenerator(seed: seed &+ UInt64(c), users: 6, tenant: "bench\(c)-\(seed)", erasureRate: 0, startTime: start)
            return (0..<(n / clients)).map { _ in
                let s = gen.next()
                let data = EventData(id: s.id, type: s.event.type.rawValue, time: s.time, causation: s.causation, payload: s.event.payload())
                return AppendRequest(stream: s.user.stream, events: [data], encrypted: true)
            }
        }
    }

    /// Appends each client's requests in order, clients in parallel; returns appends/s and the ids.
    static func run(_ journal: any JournalBackend, _ work: [[AppendRequest]], acked: Counter? = nil) async throws -> (Double, [EventID]) {
        let start = DispatchTime.now().uptimeNanoseconds
        let ids = try await withThrowingTaskGroup(of: [EventID].self) { group in
            for requests in work {
                group.addTask {
                    var done: [EventID] = []
                    for r in requests {
                        _ = try await journal.append([r])
                        done.append(r.events[0].id)
                        acked?.add(1)
                    }
                    return done
                }
            }
            var all: [EventID] = []
            for try await d in group { all += d }
            return all
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return (Double(ids.count) / seconds, ids)
    }

    /// Appends of seeded events by 4 writers for `seconds`, each retried with the same ids after any
    /// backend error, among them the journal's own append deadline (an unknown outcome, SPEC.md §15.2);
    /// runs `kill` after 3 s.
    /// Returns the longest pause between acknowledgements that spans the kill, the acknowledged ids and
    /// the number of retries.
    static func failover(
        _ journal: PostgresJournal, kill: String, seconds: Double, seed: UInt64, log: @escaping @Sendable (String) -> Void
    ) async throws -> (seconds: Double, acked: [EventID], retries: Int) {
        let work = workload(100_000, clients: 4, seed: seed)
        let start = DispatchTime.now().uptimeNanoseconds
        let end = start + UInt64(seconds * 1e9)
        let killer = Task { () -> UInt64 in
            try await Task.sleep(nanoseconds: 3_000_000_000)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", kill]
            p.standardOutput = FileHandle.standardError  // standard output is the report's
            let at = DispatchTime.now().uptimeNanoseconds
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw CLIError.io("--kill-primary \(kill) exited \(p.terminationStatus)") }
            return at
        }
        let results = try await withThrowingTaskGroup(of: ([(UInt64, EventID)], Int).self) { group in
            for requests in work {
                group.addTask {
                    var acked: [(UInt64, EventID)] = []
                    var retries = 0
                    for r in requests {
                        if DispatchTime.now().uptimeNanoseconds > end { break }
                        while true {
                            do {
                                _ = try await journal.append([r])
                                acked.append((DispatchTime.now().uptimeNanoseconds, r.events[0].id))
                                break
                            } catch let e as JournalError {
                                guard case .backend = e else { throw e }
                                if retries % 20 == 0 { log("retrying after: \(e)") }
                            }
                            retries += 1
                            if DispatchTime.now().uptimeNanoseconds > end + 120_000_000_000 { throw CLIError.io("writes did not resume within 120 s after the load ended") }
                            try await Task.sleep(nanoseconds: 50_000_000)
                        }
                    }
                    return (acked, retries)
                }
            }
            var all: [([(UInt64, EventID)], Int)] = []
            for try await r in group { all.append(r) }
            return all
        }
        let killedAt = try await killer.value
        // The failover is the longest pause between acknowledgements from the kill on (the kill
        // command itself takes a moment, during which the old primary may still acknowledge).
        let times = results.flatMap { $0.0.map(\.0) }.sorted()
        var previous = times.last { $0 <= killedAt } ?? killedAt
        var longest: UInt64 = 0
        for t in times where t > killedAt {
            longest = max(longest, t - previous)
            previous = t
        }
        return (Double(longest) / 1e9, results.flatMap { $0.0.map(\.1) }, results.map(\.1).reduce(0, +))
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func add(_ k: Int) { lock.withLock { n += k } }
        var value: Int { lock.withLock { n } }
    }

    func run() async throws {
        do {
            guard long else { return try await measure(url: try backend.required(), killPrimary: killPrimary) }
            let cluster = try LongCluster.start(script: clusterScript, log: { s in FileHandle.standardError.write(Data("\(s)\n".utf8)) })
            defer { cluster.stop() }
            try await measure(url: cluster.url, killPrimary: cluster.killCommand)
        } catch { throw reportedExit(error) }
    }

    func measure(url: String, killPrimary: String?) async throws {
        do {
            try await PostgresJournal.createDatabaseIfMissing(url)
            let journal = try await backend.open(url, partitions: partitions)
            defer { journal.close() }
            let tmp = NSTemporaryDirectory() + "psm-bench-cluster-\(getpid())"
            try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: tmp) }
            let seed = UInt64(DispatchTime.now().uptimeNanoseconds)  // fresh ids for a reused database
            let quiet = json
            let progress: @Sendable (String) -> Void = { s in if !quiet { FileHandle.standardError.write(Data("bench cluster: \(s)\n".utf8)) } }

            progress("LMDB peer, 1 and 8 clients")
            let lmdb = try Journal(directory: tmp + "/lmdb")
            let (l1, _) = try await Self.run(lmdb, Self.workload(events, clients: 1, seed: seed ^ 0xA))
            let (l8, _) = try await Self.run(lmdb, Self.workload(events, clients: 8, seed: seed ^ 0xB))
            lmdb.close()

            progress("PostgreSQL, 1 client")
            let (p1, ids1) = try await Self.run(journal, Self.workload(events, clients: 1, seed: seed ^ 0xC))

            // Node a follows every partition while 8 clients append.
            let a = try await PartitionOwnership(journal: journal, url: url, node: "bench-a-\(seed)", address: "")
            let projA = NodeProjector(journal: journal, store: try ProjectionStore(directory: tmp + "/node-a"), node: a.node)
            _ = try await a.rebalance()
            for p in a.owned.sorted() { try await projA.adopt(p) }
            progress("PostgreSQL, 8 clients, with a node following the feeds")
            let acked = Counter()
            let work8 = Self.workload(events, clients: 8, seed: seed ^ 0xD)
            let loading = Task { try await Self.run(journal, work8, acked: acked) }
            var folded = 0, lagMax = 0, polls = 0
            while true {
                let finished = acked.value == work8.map(\.count).reduce(0, +)
                folded += try await projA.poll()
                polls += 1
                lagMax = max(lagMax, acked.value - folded)
                if finished && folded >= acked.value { break }
                if finished && polls > 100_000 { break }
            }
            let (p8, ids8) = try await loading.value

            progress("\(rounds) rounds of 8 racing writers")
            var doubleWinners = 0
            let raced = try StreamName(tenant: "bench-race", name: "stream-\(seed)")
            var racedIDs: [EventID] = []
            for round in 0..<rounds {
                let expected: ExpectedRevision = round == 0 ? .noStream : .exact(UInt64(round - 1))
                let winners = await withTaskGroup(of: EventID?.self) { group in
                    for w in 0..<8 {
                        group.addTask {
                            var p = PayloadWriter()
                            p.uint(1, UInt64(round))
                            let id = EventID(high: seed, low: UInt64(round * 8 + w + 1))
                            let e = EventData(id: id, type: 0xFF02, time: Int64(round), payload: p.bytes)
                            do {
                                _ = try await journal.append([AppendRequest(stream: raced, expected: expected, events: [e])])
                                return id
                            } catch { return nil }
                        }
                    }
                    var won: [EventID] = []
                    for await w in group { if let w { won.append(w) } }
                    return won
                }
                if winners.count != 1 { doubleWinners += 1 }
                racedIDs += winners
            }

            progress("reading every acknowledged event back")
            var lost = 0, duplicates = 0
            for id in ids1 + ids8 + racedIDs where try await journal.event(withID: id) == nil { lost += 1 }
            duplicates = try await journal.repeatedEventIDs()

            await a.leave()
            progress("takeover: 3 node processes, the busiest killed with SIGKILL")
            let takeover = try await NodeTakeover(url: url, root: tmp + "/takeover", env: [:], log: progress)
                .measure(users: takeoverUsers, partitions: journal.partitions, seed: seed)

            var failover: (seconds: Double, acked: [EventID], retries: Int)?
            if let killPrimary {
                progress("failover: 4 writers for \(failoverLoad) s, the primary killed after 3 s")
                journal.appendTimeout = 10
                failover = try await Self.failover(journal, kill: killPrimary, seconds: failoverLoad, seed: seed ^ 0xF, log: progress)
                for id in failover!.acked where try await journal.event(withID: id) == nil { lost += 1 }
                duplicates = try await journal.repeatedEventIDs()
            }


            let report = Report(
                events: events, appends_per_s_1: p1, appends_per_s_8: p8, lmdb_appends_per_s_1: l1, lmdb_appends_per_s_8: l8,
                projection_lag_events_max: lagMax, projection_polls: polls, rounds: rounds, double_winners: doubleWinners,
                acked: ids1.count + ids8.count + racedIDs.count + (failover?.acked.count ?? 0), acked_lost: lost, duplicates: duplicates,
                takeover_s: takeover.seconds, takeover: takeover, failover_s: Nullable(failover?.seconds),
                failover: failover.map { "primary killed under 4 writers: \($0.acked.count) acknowledged, \($0.retries) appends retried with the same ids" }
                    ?? "not measured: pass --kill-primary (Scripts/cluster-long.sh runs Patroni, etcd and HAProxy and passes one)",
                partitions: journal.partitions)
            if json {
                try printJSON(report)
            } else {
                print(String(format: "appends/s  postgres: %.0f (1 client) %.0f (8)   lmdb: %.0f (1) %.0f (8)", p1, p8, l1, l8))
                print("projection lag: at most \(lagMax) acknowledged events not yet folded (\(polls) polls)")
                print("racing writers: \(rounds) rounds, \(doubleWinners) without exactly one winner")
                print("acknowledged \(report.acked): \(lost) lost, \(duplicates) duplicated")
                print(String(format: "takeover: %.2f s until the %d users of the killed node (of %d, 3 nodes) answered on the survivors; %d with a changed state", takeover.seconds, takeover.moved_users, takeover.users, takeover.changed_state))
                print("failover: \(report.failover)")
            }
        } catch { throw reportedExit(error) }
    }
}

/// A value whose key is written as `null` when absent (JSONEncoder leaves a nil optional's key out).
struct Nullable<T: Encodable>: Encodable {
    var value: T?
    init(_ value: T?) { self.value = value }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let value { try c.encode(value) } else { try c.encodeNil() }
    }
}
