import Foundation
import Testing

/// The short fuzzing run of CI: every target of psm-fuzz over the committed seed corpus (Fuzz/corpus)
/// plus seeded mutations of it. The long mode is libFuzzer with -sanitize=fuzzer,address
/// (docs/RELIABILITY.md). A crash, an assertion or a hang fails the run.
@Suite struct FuzzReplayTests {
    static let targets = ["record", "payload", "events", "portable", "model", "safetensors", "tokenizer", "zstd", "http"]

    @Test(arguments: targets)
    func corpusAndMutationsRunClean(_ target: String) throws {
        let tool = URL(fileURLWithPath: CLITests.psm).deletingLastPathComponent().appendingPathComponent("psm-fuzz").path
        try #require(FileManager.default.isExecutableFile(atPath: tool), "psm-fuzz not built at \(tool)")
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus/" + target).path
        let mutations = ProcessInfo.processInfo.environment["PSM_FUZZ_MUTATIONS"] ?? "2000"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = [target, corpus, "--mutations", mutations, "--seed", "20261125"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let deadline = Date().addingTimeInterval(240)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationReason == .exit && p.terminationStatus == 0, "\(target): \(text)")
        #expect(text.contains("no crash") && !text.contains(" 0 corpus inputs"), "\(target): \(text)")
    }
}
