import Foundation
import Journal
import Projections

/// A fresh directory under the system temporary directory, removed by `remove()`.
struct TempDir {
    let path: String
    init(_ label: String = "psm-proj-test") {
        path = NSTemporaryDirectory() + "\(label)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// The repository's Fixtures folder, found from this file's path.
func fixture(_ name: String) -> String {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            return url.appendingPathComponent("Fixtures/\(name)").path
        }
    }
    return "Fixtures/\(name)"
}

/// A journal and its projection store in a temporary directory.
final class Harness {
    let dir = TempDir()
    let journal: Journal
    let projections: ProjectionStore

    init() throws {
        journal = try Journal(directory: dir.path + "/journal")
        projections = try ProjectionStore(directory: dir.path + "/projections")
    }

    func close() {
        journal.close()
        projections.close()
        dir.remove()
    }

    @discardableResult
    func append(_ user: UserRef, _ event: MemoryEvent, id: EventID, time: Int64, causation: EventID = .zero) throws -> Position {
        let data = EventData(id: id, type: event.type.rawValue, time: time, causation: causation, payload: event.payload())
        return try journal.appendBlocking([AppendRequest(stream: user.stream, events: [data])])[0].positions[0]
    }
}

func named(_ name: String) -> ID128 { ID128.derived(domain: "psm.fixture", Array(name.utf8)) }

let day: Int64 = 86_400_000_000
let t0: Int64 = 1_767_225_600_000_000  // 2026-01-01T00:00:00Z
