import Foundation
import Journal
import Testing

/// I/O faults below LMDB: an LD_PRELOAD shim (Scripts/faultshim.c) fails the N-th write or sync of the
/// journal's data.mdb with EIO or ENOSPC while psm-torture appends. Every fault must surface as a clear
/// error (the child stops with the OS error named), and after reopening without faults the journal
/// verifies and holds every acknowledged event exactly once. PSM_FAULT_POINTS widens the sweep.
@Suite(.serialized) struct FaultTests {
    static func buildShim(_ dir: String) throws -> String {
        let src = URL(fileURLWithPath: fixture("..")).standardized.appendingPathComponent("Scripts/faultshim.c").path
        let out = dir + "/faultshim.so"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["cc", "-shared", "-fPIC", "-O1", "-o", out, src, "-ldl"]
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "cannot build the fault shim with cc (apt-get install gcc)")
        return out
    }

    @Test func failedWritesAndSyncsSurfaceAndLoseNothing() throws {
        let tool = productPath("psm-torture")
        try #require(FileManager.default.isExecutableFile(atPath: tool))
        let dir = TempDir("psm-fault"); defer { dir.remove() }
        let shim = try Self.buildShim(dir.path)
        let journalPath = dir.path + "/journal"
        let wide = Int(ProcessInfo.processInfo.environment["PSM_FAULT_POINTS"] ?? "") ?? 0
        var points: [(String, String, Int)] = []
        for n in [1, 2, 3, 4, 6, 9, 14, 21, 33, 50] + (wide > 0 ? Array(51...(50 + wide)) : []) {
            points.append(("write", n % 3 == 0 ? "ENOSPC" : "EIO", n))
        }
        for n in [1, 2, 3, 5, 8, 13] { points.append(("sync", n % 2 == 0 ? "ENOSPC" : "EIO", n)) }
        var acknowledged: [(EventID, Position)] = []
        var failures = 0
        for (round, (ops, errno, n)) in points.enumerated() {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: tool)
            p.arguments = ["append", journalPath, String(5000 + round)]
            var env = ProcessInfo.processInfo.environment
            env["LD_PRELOAD"] = shim
            env["PSM_FAULT_MATCH"] = "/journal/data.mdb"
            env["PSM_FAULT_AT"] = String(n)
            env["PSM_FAULT_ERRNO"] = errno
            env["PSM_FAULT_OPS"] = ops
            p.environment = env
            let collector = LineCollector(), errors = LineCollector()
            let out = try collector.handle(), err = try errors.handle()
            p.standardOutput = out
            p.standardError = err
            try p.run()
            try out.close()
            try err.close()
            let deadline = Date().addingTimeInterval(20)
            while p.isRunning && Date() < deadline { usleep(10_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            collector.collect()
            errors.collect()
            let message = errors.text
            let what = "\(ops) #\(n) \(errno)"
            #expect(p.terminationReason == .exit && p.terminationStatus == 1, "\(what): the child must stop with an error, got \(p.terminationStatus) \(message)")
            let named = errno == "EIO" ? "Input/output error" : "No space left on device"
            #expect(message.contains("faultshim: failing") && message.contains("psm-torture:") && message.contains(named), "\(what): \(message)")
            if message.contains(named) { failures += 1 }
            for line in collector.lines {
                let parts = line.split(separator: " ")
                guard parts.count == 3, let id = ID128(hex: String(parts[1])), let pos = UInt64(parts[2]) else { continue }
                acknowledged.append((id, pos))
            }
            // Reopened without faults: everything acknowledged is there, once, and the journal verifies.
            let j = try Journal(directory: journalPath)
            let report = try j.verify()
            #expect(report.ok, "\(what): \(report.problem.map { "\($0)" } ?? "")")
            for (id, pos) in acknowledged {
                #expect(try j.event(id: id)?.position == pos, "\(what): acknowledged \(id) at \(pos) missing")
            }
            j.close()
        }
        #expect(failures == points.count)
        #expect(acknowledged.count > 20, "appends must succeed between faults")
        print("fault test: \(points.count) injected faults, \(failures) surfaced as errors, \(acknowledged.count) acknowledged events all present")
    }
}
