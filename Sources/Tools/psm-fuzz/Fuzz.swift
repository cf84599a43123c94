// psm-fuzz: fuzz targets for the parsers that read untrusted bytes (issue 8). Each must reject bad
// input with an error — never crash, hang or allocate without bound.
//
//   PSM_FUZZ_TARGET=record|payload|events|portable|model|safetensors|tokenizer|zstd|http
//
// libFuzzer build (long mode, see docs/RELIABILITY.md):
//   swift build --product psm-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address \
//     -Xswiftc -parse-as-library -Xswiftc -DFUZZING
//   PSM_FUZZ_TARGET=record .build-fuzz/debug/psm-fuzz Fuzz/corpus/record -max_total_time=3600
// Without -DFUZZING the same targets run over corpus files (`psm-fuzz TARGET FILE…`), which CI does.
import API
import Foundation
import Inference
import Journal
import Projections

enum FuzzTargets {
    static let names = ["record", "payload", "events", "portable", "model", "safetensors", "tokenizer", "zstd", "http"]
    static let scratch = NSTemporaryDirectory() + "psm-fuzz-\(getpid())"
    nonisolated(unsafe) static var tokenizer: WordPieceTokenizer? = nil

    static func run(_ target: String, _ bytes: [UInt8]) {
        switch target {
        case "record":
            if let h = try? RecordCodec.decode(bytes) { precondition(h.headerSize + Int(h.storedLength) + 4 == bytes.count) }
        case "payload":
            _ = try? PayloadReader.validate(bytes)
        case "events":
            guard bytes.count >= 2 else { return }
            let type = UInt16(0x0100) | UInt16(bytes[0] % 7) | (bytes[1] & 1 == 0 ? 0 : 0x0300)
            let t = bytes[1] & 1 == 0 ? type : UInt16(0x0200) | UInt16(1 + bytes[0] % 10)
            if let e = try? MemoryEvent.decode(type: t, payload: Array(bytes.dropFirst(2))) {
                precondition((try? MemoryEvent.decode(type: t, payload: e.payload())) == e, "a decoded event re-encodes to itself")
            }
        case "portable":
            let path = file(bytes)
            _ = try? PortableJournal.check(path: path)
        case "model":
            _ = try? ModelFile(path: file(bytes))
        case "safetensors":
            _ = try? SafeTensors(path: file(bytes))
        case "tokenizer":
            if tokenizer == nil {
                tokenizer = try? WordPieceTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "##s", "a", "café", "##é", "un", "##believ", "##able", "!", "中"])
            }
            let text = String(decoding: bytes, as: UTF8.self)
            let enc = tokenizer!.encode(text, maxLength: 64)
            precondition(enc.ids.count <= 64)
        case "zstd":
            guard let d = try? Zstd.Decompressor() else { return }
            let size = bytes.isEmpty ? 0 : Int(bytes[0]) * 97
            _ = bytes.dropFirst().withUnsafeBytes { try? d.decompress($0, size: size) }
        case "http":
            let service: Void = ()
            _ = service
            let d = JSONDecoder()
            let data = Data(bytes)
            _ = try? d.decode(Requests.Observation.self, from: data)
            _ = try? d.decode(Requests.Batch.self, from: data)
            if let r = try? d.decode(Requests.Recall.self, from: data) { _ = try? MemoryService.asOf(r.as_of) }
            _ = try? d.decode(Requests.Feedback.self, from: data)
            _ = try? d.decode(TreeHead.self, from: data)
            _ = try? Scope.parse(String(decoding: bytes, as: UTF8.self))
        default:
            fatalError("unknown PSM_FUZZ_TARGET \(target) (one of \(names.joined(separator: ", ")))")
        }
    }

    /// The bytes as a file (the model and safetensors loaders and the portable reader take paths).
    static func file(_ bytes: [UInt8]) -> String {
        try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let path = scratch + "/input"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let target = ProcessInfo.processInfo.environment["PSM_FUZZ_TARGET"] ?? "record"
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FuzzTargets.run(target, bytes)
    return 0
}

#if FUZZING
// SwiftPM links an executable's entry point as `<module>_main`; with libFuzzer it must start
// libFuzzer's driver (LLVMFuzzerRunDriver, part of the -sanitize=fuzzer runtime).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("psm_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v, fuzzOne)
}
#else
/// Without libFuzzer: `psm-fuzz TARGET FILE_OR_DIR… [--mutations N] [--seed S]` runs every corpus file
/// through the target, then N seeded mutations of them (bit flips, truncations, duplications, random
/// bytes) — the short run CI does. `psm-fuzz --make-corpus DIR` writes the seed corpus.
@main
struct FuzzReplay {
    static func main() throws {
        var args = Array(CommandLine.arguments.dropFirst())
        if args.first == "--make-corpus", args.count == 2 {
            try Corpus.write(to: args[1])
            return
        }
        var mutations = 0
        var seed: UInt64 = 1
        if let i = args.firstIndex(of: "--mutations"), i + 1 < args.count { mutations = Int(args[i + 1]) ?? 0; args.removeSubrange(i...(i + 1)) }
        if let i = args.firstIndex(of: "--seed"), i + 1 < args.count { seed = UInt64(args[i + 1]) ?? 1; args.removeSubrange(i...(i + 1)) }
        guard let target = args.first, FuzzTargets.names.contains(target) else {
            FileHandle.standardError.write(Data("usage: psm-fuzz TARGET FILE_OR_DIR… [--mutations N] [--seed S] | psm-fuzz --make-corpus DIR (targets: \(FuzzTargets.names.joined(separator: ", ")))\n".utf8))
            exit(64)
        }
        var inputs: [[UInt8]] = []
        for arg in args.dropFirst() {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: arg, isDirectory: &isDir) else { continue }
            let files = isDir.boolValue ? ((try? FileManager.default.contentsOfDirectory(atPath: arg)) ?? []).sorted().map { arg + "/" + $0 } : [arg]
            for f in files { if let d = FileManager.default.contents(atPath: f) { inputs.append([UInt8](d)) } }
        }
        for b in inputs { FuzzTargets.run(target, b) }
        var rng = seed
        func next() -> UInt64 {
            rng &+= 0x9E37_79B9_7F4A_7C15
            var z = rng
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        if !inputs.isEmpty {
            for _ in 0..<mutations {
                var b = inputs[Int(next() % UInt64(inputs.count))]
                for _ in 0..<(1 + Int(next() % 4)) {
                    switch next() % 5 {
                    case 0 where !b.isEmpty: b[Int(next() % UInt64(b.count))] ^= UInt8(1 << (next() % 8))
                    case 1 where !b.isEmpty: b.removeLast(Int(next() % UInt64(b.count)))
                    case 2 where !b.isEmpty: b[Int(next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: next())
                    case 3 where !b.isEmpty:
                        let i = Int(next() % UInt64(b.count)), n = Int(next() % UInt64(min(64, b.count - i)))
                        b.insert(contentsOf: b[i..<(i + n)], at: i)
                    default: b.append(UInt8(truncatingIfNeeded: next()))
                    }
                }
                FuzzTargets.run(target, b)
            }
        }
        print("psm-fuzz \(target): \(inputs.count) corpus inputs and \(mutations) mutations, no crash")
    }
}

/// The committed seed corpus (Fuzz/corpus), generated from the project's own encoders.
enum Corpus {
    static func write(to dir: String) throws {
        func put(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
            try FileManager.default.createDirectory(atPath: dir + "/" + target, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + target + "/" + name))
        }
        // Payloads and memory events.
        var w = PayloadWriter()
        w.uint(1, 42)
        w.string(3, "I moved to Porto in March")
        try put("payload", "simple", w.bytes)
        let obs = MemoryEvent.observation(.init(text: "I keep my passport in the blue folder", session: "s1", speaker: "Ana", role: "user", sourceID: "t1"))
        try put("payload", "observation", obs.payload())
        try put("events", "observation", [0, 0] + obs.payload())
        try put("events", "recall", [1, 0] + MemoryEvent.recallRequest(.init(query: "where is the passport?", k: 5)).payload())
        let m = ID128(high: 7, low: 9)
        try put("events", "reinforced", [2, 1] + MemoryEvent.reinforced(.init(decision: .baseline, memory: m, boost: Fixed(0.2), stability: 86_400)).payload())
        // Records: plain, with causation, compressed.
        let stream = try StreamName(tenant: "acme", name: "user/ana")
        func record(_ payload: [UInt8], causation: ID128 = .zero, compressed: Bool = false) throws -> [UInt8] {
            var stored = payload, flags: UInt8 = 0
            if compressed {
                stored = try payload.withUnsafeBytes { try Zstd.Compressor().compress($0) }
                flags = RecordFormat.flagZstd
            }
            let h = RecordHeader(
                flags: flags, eventType: 0x0101, storedLength: UInt32(stored.count), uncompressedLength: UInt32(payload.count), keyID: 0,
                dictionaryID: 0, eventTime: 1_767_225_600_000_000, revision: 3, streamID: stream.id, eventID: ID128(high: 1, low: 2), causationID: causation)
            return RecordCodec.encode(h, storedPayload: stored)
        }
        let long = MemoryEvent.observation(.init(text: String(repeating: "we talked about the garden and the boat, ", count: 8), session: "", speaker: "", role: "", sourceID: "")).payload()
        try put("record", "plain", try record(obs.payload()))
        try put("record", "causation", try record(obs.payload(), causation: ID128(high: 3, low: 4)))
        try put("record", "zstd", try record(long, compressed: true))
        try put("zstd", "frame", [UInt8(long.count / 97)] + (try long.prefix(long.count / 97 * 97).withUnsafeBytes { try Zstd.Compressor().compress($0) }))
        // A portable journal of a few events.
        let tmp = NSTemporaryDirectory() + "psm-fuzz-corpus-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let j = try Journal(directory: tmp + "/journal")
        for i in 0..<3 {
            _ = try j.appendBlocking([AppendRequest(stream: stream, events: [EventData(id: ID128(high: 5, low: UInt64(i + 1)), type: 0x0101, time: Int64(i), payload: obs.payload())], encrypted: i == 2)])
        }
        var portable: [UInt8] = []
        _ = try PortableJournal.export(j) { portable += $0 }
        j.close()
        try put("portable", "three-events", portable)
        // A tiny model file and a tiny safetensors file.
        let config = ModelConfig(vocabSize: 6, hidden: 4, layers: 1, heads: 1, intermediate: 8, maxPositions: 8, typeVocabSize: 1, maxSequenceLength: 8, layerNormEps: 1e-12)
        var mw = ModelFileWriter(config: config, vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
        mw.add("embeddings.word_embeddings.weight", f32: [Float](repeating: 0.5, count: 24), shape: [6, 4])
        try put("model", "tiny", try mw.bytes())
        let header = #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"format":"pt"}}"#
        var st = [UInt8]()
        st.appendLE(UInt64(header.utf8.count))
        st += Array(header.utf8) + [UInt8](repeating: 0, count: 16)
        try put("safetensors", "tiny", st)
        // Tokenizer text and HTTP bodies.
        for (i, t) in ["Hello, world!", "Café unbelievable!!", "中文 and emoji 🙂", "   ", "a" + String(repeating: "s", count: 300)].enumerated() {
            try put("tokenizer", "text\(i)", Array(t.utf8))
        }
        for (i, t) in [
            #"{"text":"I moved to Porto","speaker":"Ana","at":"2026-03-01T10:00:00Z","id":"0123456789abcdef0123456789abcdef"}"#,
            #"{"observations":[{"text":"one"},{"text":"two"}]}"#, #"{"query":"where?","k":3,"as_of":"12"}"#,
            #"{"recall":"0123456789abcdef0123456789abcdef","memory":"0123456789abcdef0123456789abcdef","kind":"helped"}"#, "memory:read,admin",
        ].enumerated() {
            try put("http", "body\(i)", Array(t.utf8))
        }
        print("wrote the seed corpus to \(dir)")
    }
}
#endif
