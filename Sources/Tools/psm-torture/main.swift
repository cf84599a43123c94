// psm-torture: the child process of the crash tests (Tests/JournalTests/CrashTests.swift, issue 3).
//
//   psm-torture append DIR SEED
//
// Opens the journal in DIR and appends forever: seeded mixes of single events and batches over a
// handful of streams, with exact expected revisions. After each append returns (the commit is
// durable) it prints one line per event, "ack <event-id> <position>", and flushes standard output.
// The parent SIGKILLs it at a random moment and then checks that the journal verifies and holds every
// acknowledged event exactly once. Event ids derive from (SEED, counter) so a restarted child with a
// new seed never reuses them.
import Foundation
import Journal
import Workloads

let args = CommandLine.arguments
guard args.count == 4, args[1] == "append", let seed = UInt64(args[3]) else {
    FileHandle.standardError.write(Data("usage: psm-torture append DIR SEED\n".utf8))
    exit(64)
}
do {
    let journal = try Journal(directory: args[2])
    var rng = SplitMix64(seed: seed)
    var text = SampleConversation(seed: seed)
    let streams = try (0..<4).map { try StreamName(tenant: "torture", name: "user-\($0)") }
    var counter: UInt64 = 0
    var time: Int64 = 1_767_225_600_000_000 + Int64(seed % 1_000_000) * 1_000_000
    while true {
        let stream = streams[Int(rng.next() % 4)]
        let info = try journal.streamInfo(stream.id)
        let expected: ExpectedRevision = info.map { .exact($0.nextRevision - 1) } ?? .noStream
        let count = rng.next() % 4 == 0 ? Int(1 + rng.next() % 50) : 1
        var events: [EventData] = []
        for _ in 0..<count {
            counter += 1
            time += Int64(rng.next() % 5_000_000)
            var w = PayloadWriter()
            w.uint(1, counter)
            w.string(3, text.observation(targetBytes: Int(40 + rng.next() % 600)))
            events.append(EventData(id: ID128.derived(domain: "psm.torture", bigEndianBytes(seed) + bigEndianBytes(counter)), type: 0xFF02, time: time, payload: w.bytes))
        }
        let result = try journal.appendBlocking([AppendRequest(stream: stream, expected: expected, events: events)])
        var out = ""
        for (e, p) in zip(events, result[0].positions) { out += "ack \(e.id) \(p)\n" }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
} catch {
    FileHandle.standardError.write(Data("psm-torture: \(error)\n".utf8))
    exit(1)
}
