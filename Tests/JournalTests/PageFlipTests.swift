import Foundation
import Journal
import Testing
import Workloads

/// Bit flips anywhere in the journal's data.mdb (below LMDB: no API involved). `psm verify` must
/// report each flip inside a record, and never crash or hang whatever it hits: LMDB has no page
/// checksums, so a damaged page pointer can fault, which psm turns into a report and exit 65.
@Suite struct PageFlipTests {
    @Test func flippedBitsAreReportedNeverSilentAndNeverACrash() throws {
        let psm = productPath("psm")
        try #require(FileManager.default.isExecutableFile(atPath: psm))
        let base = TempDir("psm-flip")
        defer { base.remove() }
        let j = try Journal(directory: base.path + "/store/journal")
        var rng = SplitMix64(seed: 0xF11B)
        for i in 0..<240 {
            let size = i % 40 == 0 ? 9000 : 40 + Int(rng.next() % 400)
            let text = String(repeating: "lake house and half marathon \(i) ", count: size / 30 + 1)
            _ = try j.appendBlocking([AppendRequest(stream: stream("s\(i % 5)"), events: [event(UInt64(i + 1), text: String(text.prefix(size)))])])
        }
        let records = try j.read(from: 1, limit: 1000).map(\.record)
        j.close()
        let file = try Data(contentsOf: URL(fileURLWithPath: base.path + "/store/journal/data.mdb"))
        // Where each record's bytes sit in the file. LMDB copies pages on write, so freed pages may hold
        // stale copies of a record; only a record found exactly once is certainly the live copy.
        var ranges: [Range<Int>] = []
        var found = 0
        for r in records {
            let needle = Data(r)
            var all: [Range<Int>] = []
            var from = file.startIndex
            while let hit = file.range(of: needle, in: from..<file.endIndex) {
                all.append(hit.lowerBound..<hit.upperBound)
                from = hit.lowerBound + 1
            }
            if !all.isEmpty { found += 1 }
            if all.count == 1 { ranges.append(all[0]) }
        }
        #expect(found == records.count, "every record is stored contiguously")
        #expect(ranges.count > records.count / 2)
        let trials = Int(ProcessInfo.processInfo.environment["PSM_FLIP_TRIALS"] ?? "") ?? 30
        var counts: [Int32: Int] = [:]
        var inRecords = 0
        for t in 0..<trials {
            let dir = TempDir("psm-flip-\(t)")
            defer { dir.remove() }
            try FileManager.default.createDirectory(atPath: dir.path + "/journal", withIntermediateDirectories: true)
            var bytes = file
            // Half the flips aim at record bytes, half anywhere in the file.
            let offset: Int
            if t % 2 == 0 {
                let r = ranges[Int(rng.next() % UInt64(ranges.count))]
                offset = r.lowerBound + Int(rng.next() % UInt64(r.count))
            } else {
                offset = Int(rng.next() % UInt64(bytes.count))
            }
            bytes[offset] ^= UInt8(1 << (rng.next() % 8))
            try bytes.write(to: URL(fileURLWithPath: dir.path + "/journal/data.mdb"))
            let p = Process()
            p.executableURL = URL(fileURLWithPath: psm)
            p.arguments = ["verify", "--store", dir.path, "--json"]
            p.standardOutput = FileHandle.nullDevice
            let err = Pipe()
            p.standardError = err
            try p.run()
            let deadline = Date().addingTimeInterval(60)
            while p.isRunning && Date() < deadline { usleep(10_000) }
            let hung = p.isRunning
            if hung { p.terminate() }
            p.waitUntilExit()
            let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(!hung, "trial \(t): verify hung (flip at byte \(offset))")
            #expect(p.terminationReason == .exit && [0, 1, 65, 74].contains(p.terminationStatus), "trial \(t): flip at \(offset): \(p.terminationReason) \(p.terminationStatus) \(message)")
            let inRecord = ranges.contains { $0.contains(offset) }
            if inRecord {
                inRecords += 1
                #expect(p.terminationStatus != 0, "trial \(t): a flip inside a record (byte \(offset)) went unreported")
            }
            counts[p.terminationStatus, default: 0] += 1
        }
        print("page flips: \(trials) trials, \(inRecords) inside records (all reported), exit statuses \(counts.sorted { $0.key < $1.key }.map { "\($0.key) × \($0.value)" }.joined(separator: ", "))")
    }
}
