import Foundation
import Journal

/// A fresh directory under the system temporary directory, removed by `remove()`.
struct TempDir {
    let path: String
    init(_ label: String = "psm-test") {
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
        let candidate = url.appendingPathComponent("Fixtures/\(name)")
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return candidate.path }
    }
    return "Fixtures/\(name)"
}

func payload(text: String, n: UInt64 = 0) -> [UInt8] {
    var w = PayloadWriter()
    w.uint(1, n)
    w.string(3, text)
    return w.bytes
}

func event(_ i: UInt64, text: String = "hello", type: UInt16 = 0xFF02, time: Int64 = 1_767_225_600_000_000) -> EventData {
    EventData(id: EventID(high: 0xABCD, low: i), type: type, time: time + Int64(i), payload: payload(text: text, n: i))
}

func stream(_ name: String, tenant: String = "t1") -> StreamName { try! StreamName(tenant: tenant, name: name) }
