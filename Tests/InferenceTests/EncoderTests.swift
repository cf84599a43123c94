import Crypto
import Foundation
import Inference
import Testing

func digest(_ vectors: [[Float]]) -> String {
    var h = SHA256()
    for v in vectors { v.withUnsafeBytes { h.update(bufferPointer: $0) } }
    return h.finalize().map { String(format: "%02x", $0) }.joined()
}

@Suite struct TinyEncoderTests {
    @Test func batchInvariantAndRepeatable() throws {
        let path = tempPath("tiny.psm"); defer { unlink(path) }
        let e = try Encoder(model: try TinyModel.write(to: path))
        let texts = ["the cat sat on the mat", "a", "", "abc abc abc the cat", "mat", String(repeating: "cat ", count: 40)]
        let together = e.embed(texts)
        let alone = texts.map { e.embed([$0])[0] }
        #expect(digest(together) == digest(alone), "an embedding must not depend on the rest of the batch")
        #expect(digest(e.embed(texts)) == digest(together))
        for v in together { #expect(abs(v.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5) }
        Encoder.setThreads(2)
        #expect(digest(e.embed(texts)) == digest(together))
        Encoder.setThreads(1)
        // The other product kernel (sgemm on exact integers, or the VNNI integer kernel) gives the same bytes.
        let saved = Encoder.integerKernel
        Encoder.integerKernel = !saved
        defer { Encoder.integerKernel = saved }
        let other = try Encoder(model: try ModelFile(path: path))
        #expect(other.usesIntegerKernel != e.usesIntegerKernel)
        #expect(digest(other.embed(texts)) == digest(together), "sgemm and integer kernel")
        // Truncation: a text past the maximum length embeds like its first maxSequenceLength - 2 tokens.
        let enc = e.tokenizer.encode(texts[5], maxLength: TinyModel.config.maxSequenceLength)
        #expect(enc.truncatedTokens == 40 - 14 && enc.ids.count == 16)
    }

    @Test func differentSeedDifferentModelID() throws {
        let a = tempPath("a.psm"), b = tempPath("b.psm"); defer { unlink(a); unlink(b) }
        let ma = try TinyModel.write(to: a, seed: 1), mb = try TinyModel.write(to: b, seed: 2)
        #expect(ma.id != mb.id && ma.id.count == 64)
        let again = try TinyModel.write(to: b, seed: 1)
        #expect(again.id == ma.id, "the same tensors must give the same file and id")
    }
}

/// A model file with damage must be refused with a message that names what was expected and found.
@Suite struct ModelFileTests {
    func damaged(_ edit: (inout [UInt8]) -> Void) throws -> String {
        var bytes = try TinyModel.writer().bytes()
        edit(&bytes)
        let path = tempPath("bad.psm")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func expectRefused(_ edit: (inout [UInt8]) -> Void, _ words: String) throws {
        let path = try damaged(edit); defer { unlink(path) }
        do {
            _ = try Encoder(model: try ModelFile(path: path))
            Issue.record("a damaged model was accepted (\(words))")
        } catch {
            #expect("\(error)".contains(words), "\(error)")
        }
    }

    func offset(of name: String, in bytes: [UInt8]) -> Int {
        let needle = Array(name.utf8)
        for i in 0..<(bytes.count - needle.count) where Array(bytes[i..<(i + needle.count)]) == needle { return i }
        return -1
    }

    @Test func refusesDamage() throws {
        try expectRefused({ $0[0] = 0x58 }, "not a PSM model file")
        try expectRefused({ $0[4] = 2 }, "format version 2")
        try expectRefused({ $0.removeLast(100) }, "truncated")
        try expectRefused({ $0 += [0, 0] }, "the file has")
        try expectRefused({ $0[45] = 1 }, "reserved header byte 45")
        try expectRefused({ b in b[64] = 0xFF; b[65] = 0xFF }, "vocabulary has 40 tokens, config says 65535")
        try expectRefused({ b in b[64 + 4] = 25 }, "not a multiple of")  // hidden 25 with 3 heads
        // A NaN in an fp32 tensor (the first bias's bytes).
        try expectRefused({ b in
            let dataOffset = Int(b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 32, as: UInt64.self) })
            // The first tensor in name order is embeddings.LayerNorm.bias (fp32).
            b.replaceSubrange(dataOffset..<(dataOffset + 4), with: [0x00, 0x00, 0xC0, 0x7F])
        }, "expected a finite number")
        // A nonzero padding byte breaks the canonical layout.
        try expectRefused({ b in b[b.count - 1] = 1 }, "padding byte")
        let missing = tempPath("none.psm")
        #expect { try ModelFile(path: missing) } throws: { "\($0)".contains("cannot open model file") }
    }

    @Test func configDisagreeingWithTensors() throws {
        var w = TinyModel.writer()
        // Claim a larger FFN than the tensors have.
        w.config.intermediate = 48
        let path = tempPath("mismatch.psm"); defer { unlink(path) }
        _ = try w.write(to: path)
        #expect { _ = try Encoder(model: try ModelFile(path: path)) } throws: { "\($0)".contains("expected i8 [24, 48]") || "\($0)".contains("[24, 48]") }
    }
}

/// The real all-MiniLM-L6-v2 against sentence-transformers' fp32 embeddings.
@Suite(.serialized) struct RealEncoderTests {
    static let shared: (Encoder, String)? = {
        guard !RealModel.skip, let dir = RealModel.directory else { return nil }
        let out = tempPath("minilm.psm")
        guard (try? ModelImporter(directory: dir).run(out: out)) != nil, let m = try? ModelFile(path: out), let e = try? Encoder(model: m) else { return nil }
        return (e, out)
    }()

    func encoder() throws -> Encoder? {
        if RealModel.skip { return nil }
        let s = try #require(Self.shared, "all-MiniLM-L6-v2 not found or not importable; run scripts/setup.sh or set PSM_MINILM_DIR")
        return s.0
    }

    @Test func accuracyAgainstSentenceTransformers() throws {
        guard let e = try encoder() else { return }
        let sentences = try String(contentsOfFile: repoFixture("inference/reference-sentences.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        let ref = try Data(contentsOf: URL(fileURLWithPath: repoFixture("inference/minilm-reference.f32")))
        let dim = e.config.hidden
        #expect(sentences.count >= 500 && ref.count == sentences.count * dim * 4)
        let ours = e.embed(sentences)
        var cosines: [Double] = []
        ref.withUnsafeBytes { r in
            for (i, v) in ours.enumerated() {
                var dot = 0.0, nr = 0.0, no = 0.0
                for c in 0..<dim {
                    let x = Double(Float(bitPattern: r.loadUnaligned(fromByteOffset: (i * dim + c) * 4, as: UInt32.self)))
                    dot += x * Double(v[c]); nr += x * x; no += Double(v[c]) * Double(v[c])
                }
                cosines.append(dot / (nr * no).squareRoot())
            }
        }
        let mean = cosines.reduce(0, +) / Double(cosines.count)
        print("accuracy: \(cosines.count) sentences, mean cosine \(mean), min \(cosines.min()!)")
        #expect(mean >= 0.998)
        #expect(cosines.min()! >= 0.99)
    }

    @Test func bitIdenticalAcrossBatchThreadsProcessesAndBLASKernels() throws {
        guard let e = try encoder(), let model = Self.shared?.1 else { return }
        let sentences = Array(try String(contentsOfFile: repoFixture("inference/reference-sentences.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init).prefix(48))
        Encoder.setThreads(1)
        let base = digest(e.embed(sentences))
        #expect(digest(sentences.map { e.embed([$0])[0] }) == base, "batch 1 vs 48")
        Encoder.setThreads(2)
        #expect(digest(e.embed(sentences)) == base, "2 threads")
        Encoder.setThreads(1)
        // Separate processes, batch sizes, thread counts and OpenBLAS kernels, through `psm embed`.
        let input = tempPath("in.txt"); defer { unlink(input) }
        try sentences.joined(separator: "\n").write(toFile: input, atomically: true, encoding: .utf8)
        var outputs: [String: String] = [:]
        for (label, args, env) in [
            ("batch 32, 1 thread", ["--batch", "32", "--threads", "1"], [String: String]()),
            ("batch 1, 2 threads", ["--batch", "1", "--threads", "2"], [:]),
            ("Haswell kernel", ["--batch", "7", "--threads", "2"], ["OPENBLAS_CORETYPE": "Haswell"]),
            ("Sandybridge kernel", ["--batch", "48", "--threads", "1"], ["OPENBLAS_CORETYPE": "Sandybridge"]),
            // sgemm instead of the VNNI integer kernel (where the CPU has VNNI; otherwise sgemm both times).
            ("sgemm products", ["--batch", "32", "--threads", "2"], ["PSM_ENCODER_KERNEL": "sgemm"]),
            // The integer kernel's AVX2 path (vpmaddwd) instead of AVX-512 VNNI.
            ("AVX2 integer products", ["--batch", "5", "--threads", "2"], ["PSM_IGEMM_PATH": "avx2"]),
        ] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: psmBinary())
            p.arguments = ["embed", "--model", model] + args
            var environment = ProcessInfo.processInfo.environment
            for (k, v) in env { environment[k] = v }
            p.environment = environment
            p.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: input))
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            let vectors = String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
                line.dropFirst().dropLast().split(separator: ",").map { Float(String($0))! }
            }
            outputs[label] = digest(vectors)
        }
        #expect(Set(outputs.values).count == 1, "\(outputs)")
        // The CLI prints floats with shortest round-trip text, so its digest equals the library's.
        #expect(outputs.values.first == base)
    }
}

func psmBinary() -> String {
    let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    return argv0.deletingLastPathComponent().appendingPathComponent("psm").path
}
