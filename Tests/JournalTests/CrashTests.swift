import Foundation
import Journal
import Testing
import Workloads

/// A built product of this package (psm, psm-torture), next to the test bundle.
func productPath(_ name: String) -> String {
    var candidates: [String] = []
    let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    candidates.append(argv0.deletingLastPathComponent().appendingPathComponent(name).path)
    candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent(name).path)
    candidates.append(URL(fileURLWithPath: fixture("..")).standardized.appendingPathComponent(".build/debug/\(name)").path)
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
}

/// Collects a child's standard output lines as they arrive.
/// A child's standard output, captured in a file rather than a pipe: a pipe must be drained while the
/// child runs, and draining it with `readabilityHandler` in a loop of children crashed the test process
/// in libdispatch (`_dispatch_event_loop_drain`, swift-corelibs-foundation#3276).
final class LineCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = Data()
    let path = NSTemporaryDirectory() + "psm-child-out-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    func append(_ d: Data) { lock.lock(); buffer.append(d); lock.unlock() }

    /// A handle for the child's standard output (the file, created empty).
    func handle() throws -> FileHandle {
        FileManager.default.createFile(atPath: path, contents: nil)
        return try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    }

    /// Reads what the child wrote and removes the file.
    func collect() {
        append(FileManager.default.contents(atPath: path) ?? Data())
        try? FileManager.default.removeItem(atPath: path)
    }
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: buffer, as: UTF8.self) }

    var lines: [Substring] {
        lock.lock(); defer { lock.unlock() }
        // Only complete lines: the last one may have been cut by the kill (it was never acknowledged).
        let s = String(decoding: buffer, as: UTF8.self)
        var parts = s.split(separator: "\n", omittingEmptySubsequences: false)
        parts.removeLast()
        return parts
    }
}

/// SIGKILL a child that appends in a loop at seeded random moments; after each kill the journal must
/// verify and hold every event whose append had returned, exactly once. PSM_CRASH_KILLS sets the
/// number of kills (30 by default; the long mode in README uses 1000).
@Suite struct CrashTests {
    @Test func sigkillDuringAppends() throws {
        let kills = Int(ProcessInfo.processInfo.environment["PSM_CRASH_KILLS"] ?? "") ?? 30
        let tool = productPath("psm-torture")
        try #require(FileManager.default.isExecutableFile(atPath: tool), "psm-torture not built at \(tool)")
        let dir = TempDir("psm-crash"); defer { dir.remove() }
        let journalPath = dir.path + "/journal"
        var rng = SplitMix64(seed: 0xC0FFEE)
        var acknowledged: [(EventID, Position)] = []
        var killedMidAppend = 0
        for round in 0..<kills {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: tool)
            p.arguments = ["append", journalPath, String(1000 + round)]
            let collector = LineCollector()
            let out = try collector.handle()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            try out.close()
            // Random moment: between 20 and 250 ms after start (opening, appending, committing).
            usleep(UInt32(20_000 + rng.next() % 230_000))
            // Only a running child: a finished one is reaped at once and its pid may already belong to
            // another test's process (a server killed this way made a parallel HTTP test fail).
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            collector.collect()
            #expect(p.terminationReason == .uncaughtSignal, "round \(round): the child exited by itself (status \(p.terminationStatus))")
            let lines = collector.lines
            for line in lines {
                let parts = line.split(separator: " ")
                guard parts.count == 3, parts[0] == "ack", let id = ID128(hex: String(parts[1])), let pos = UInt64(parts[2]) else {
                    Issue.record("round \(round): bad line \(line)")
                    continue
                }
                acknowledged.append((id, pos))
            }
            let j = try Journal(directory: journalPath)
            let report = try j.verify()
            #expect(report.ok, "round \(round): \(report.problem.map { "\($0)" } ?? "")")
            // This round's acknowledgements and a seeded sample of earlier ones each round (all of them
            // at the end), so long runs stay linear.
            let earlier = acknowledged.count - lines.count
            var check = Array(acknowledged[max(0, earlier)...])
            if earlier > 0 { for _ in 0..<min(200, earlier) { check.append(acknowledged[Int(rng.next() % UInt64(earlier))]) } }
            for (id, pos) in check {
                let e = try j.event(id: id)
                #expect(e?.position == pos, "round \(round): acknowledged event \(id) at \(pos) found at \(e.map { "\($0.position)" } ?? "nowhere")")
            }
            if report.lastPosition > (acknowledged.last?.1 ?? 0) { killedMidAppend += 1 }
            j.close()
        }
        let j = try Journal(directory: journalPath)
        for (id, pos) in acknowledged {
            #expect(try j.event(id: id)?.position == pos, "acknowledged event \(id) at \(pos) missing at the end")
        }
        #expect(try j.verify().events >= acknowledged.count)
        j.close()
        #expect(acknowledged.count > kills, "the child must make progress between kills")
        print("crash test: \(kills) kills, \(acknowledged.count) acknowledged events, \(killedMidAppend) kills after a durable commit whose acknowledgement was not yet printed")
    }
}
