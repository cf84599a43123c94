import ArgumentParser
import Foundation
import Inference
import Workloads

struct EncoderBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encoder",
        abstract: "Encoder throughput: a grid of lengths, batches and threads, or exactly the texts of a file.",
        discussion: """
            Without --input: sentences/s for batch 1 and 32 at about 16, 64 and 128 tokens, with 1 and 2 \
            threads (generated conversational text cut to those lengths), plus model load time and peak RSS. \
            With --input FILE: embeds exactly the texts in FILE (one per line, after loading, tokenization \
            included) with --batch and --threads and prints sentences_per_s and tokens_per_s, so another \
            implementation can be timed on the same texts (Scripts/bench_onnx.py does that for onnxruntime).

            Examples:
              psm bench encoder --model minilm.psm --json
              psm bench encoder --model minilm.psm --input turns.txt --batch 32 --threads 1 --json
            """)
    @OptionGroup var model: ModelOptions
    @Option(help: ArgumentHelp("Time exactly these texts (one per line).", valueName: "FILE")) var input: String?
    @Option(help: "Batch size with --input (1...1024).") var batch: Int = 32
    @Option(help: "Threads with --input (1...64).") var threads: Int = 1
    @Option(help: "Minimum seconds per measurement.") var seconds: Double = 1.0
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (1...1024).contains(batch) else { throw ValidationError("--batch must be 1...1024, got \(batch)") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1...64, got \(threads)") }
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600], got \(seconds)") }
    }

    struct Cell: Encodable { var tokens: Int; var batch: Int; var threads: Int; var sentences_per_s: Double; var ms_per_batch: Double }
    struct GridReport: Encodable {
        var model_id: String
        var load_seconds: Double
        var peak_rss_bytes: Int
        var cells: [Cell]
        var blas_core: String
    }
    struct InputReport: Encodable {
        var model_id: String
        var texts: Int
        var tokens: Int
        var batch: Int
        var threads: Int
        var seconds: Double
        var sentences_per_s: Double
        var tokens_per_s: Double
        var peak_rss_bytes: Int
    }

    func run() throws {
        try guarded {
            let t0 = now()
            let file = try model.open()
            let encoder = try Encoder(model: file)
            let loadSeconds = now() - t0
            if let input {
                guard let text = try? String(contentsOfFile: input, encoding: .utf8) else { throw CLIError.usage("cannot read --input \(input) as UTF-8") }
                let texts = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
                guard !texts.isEmpty else { throw CLIError.usage("--input \(input) has no texts") }
                Encoder.setThreads(threads)
                _ = encoder.embed(Array(texts.prefix(batch)))  // warm up
                var tokens = 0
                let start = now()
                for s in stride(from: 0, to: texts.count, by: batch) {
                    let chunk = Array(texts[s..<min(texts.count, s + batch)])
                    let ids = chunk.map { encoder.tokenizer.encode($0, maxLength: encoder.config.maxSequenceLength).ids }
                    tokens += ids.reduce(0) { $0 + $1.count }
                    _ = encoder.embed(tokens: ids)
                }
                let elapsed = now() - start
                let r = InputReport(
                    model_id: file.id, texts: texts.count, tokens: tokens, batch: batch, threads: threads, seconds: round3(elapsed),
                    sentences_per_s: (Double(texts.count) / elapsed).rounded(), tokens_per_s: (Double(tokens) / elapsed).rounded(), peak_rss_bytes: peakRSS())
                if json { try printJSON(r); return }
                print("\(texts.count) texts, \(tokens) tokens, batch \(batch), \(threads) thread(s): \(r.sentences_per_s) sentences/s, \(r.tokens_per_s) tokens/s")
                return
            }
            var gen = SampleConversation(seed: 5)
            var cells: [Cell] = []
            for length in [16, 64, 128] {
                let sequences: [[Int32]] = (0..<64).map { _ in
                    var ids = encoder.tokenizer.encode(gen.observation(targetBytes: length * 8)).ids
                    if ids.count > length { ids = Array(ids.prefix(length - 1)) + [encoder.tokenizer.sepID] }
                    return ids
                }
                for threads in [1, 2] {
                    Encoder.setThreads(threads)
                    for b in [1, 32] {
                        _ = encoder.embed(tokens: Array(sequences.prefix(b)))
                        var done = 0, batches = 0
                        let start = now()
                        while now() - start < seconds || batches < 3 {
                            let s = (batches * b) % sequences.count
                            let chunk = Array((sequences + sequences)[s..<(s + b)])
                            _ = encoder.embed(tokens: chunk)
                            done += b
                            batches += 1
                        }
                        let elapsed = now() - start
                        cells.append(Cell(tokens: length, batch: b, threads: threads, sentences_per_s: (Double(done) / elapsed).rounded(),
                            ms_per_batch: round3(elapsed / Double(batches) * 1000)))
                    }
                }
            }
            let r = GridReport(model_id: file.id, load_seconds: round3(loadSeconds), peak_rss_bytes: peakRSS(), cells: cells, blas_core: BLAS.coreName)
            if json { try printJSON(r); return }
            print("model \(file.id.prefix(16))…, loaded in \(r.load_seconds) s, peak RSS \(r.peak_rss_bytes / 1_048_576) MiB, OpenBLAS \(r.blas_core)")
            print("tokens  batch  threads  sentences/s  ms/batch")
            for c in cells {
                print(String(format: "%6d %6d %8d %12.0f %9.2f", c.tokens, c.batch, c.threads, c.sentences_per_s, c.ms_per_batch))
            }
        }
    }
}

func peakRSS() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
}
