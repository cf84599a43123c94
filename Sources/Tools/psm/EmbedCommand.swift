import ArgumentParser
import Foundation
import Inference

/// `--model FILE`, else $PSM_MODEL.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Model file (default: $PSM_MODEL).", valueName: "FILE"))
    var model: String?

    func open() throws -> ModelFile {
        guard let path = model ?? ProcessInfo.processInfo.environment["PSM_MODEL"], !path.isEmpty else {
            throw CLIError.usage("no model: pass --model FILE or set PSM_MODEL (make one with `psm model import DIR --out FILE`)")
        }
        return try ModelFile(path: path)
    }
}

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embed texts read from standard input, one per line; print one embedding per line.",
        discussion: """
            Each output line is a JSON array of floats (the L2-normalised sentence embedding), in input \
            order, so the vectors can be compared with another implementation's. Texts longer than the \
            model's maximum sequence length are truncated; with --json each line is instead an object with \
            the embedding, the token count and how many tokens were dropped. Invalid UTF-8 in the input is \
            an error naming the line. Results do not depend on --batch or --threads.

            Example:
              printf 'I moved to Lisbon.\\nWhere do I live?\\n' | psm embed --model minilm.psm
            """)
    @OptionGroup var model: ModelOptions
    @Option(help: "Texts per forward pass (1...1024).") var batch: Int = 32
    @Option(help: "Encoder threads (1...64; default: $PSM_THREADS, else the processor count up to 8).") var threads: Int?
    @Flag(help: "Print one JSON object per line: {\"embedding\": [...], \"tokens\": N, \"truncated_tokens\": N}.") var json = false

    func validate() throws {
        guard (1...1024).contains(batch) else { throw ValidationError("--batch must be 1...1024, got \(batch)") }
        if let threads, !(1...64).contains(threads) { throw ValidationError("--threads must be 1...64, got \(threads)") }
    }

    struct Line: Encodable { var embedding: [Float]; var tokens: Int; var truncated_tokens: Int }

    func run() throws {
        try guarded {
            let encoder = try Encoder(model: try model.open())
            if let threads { Encoder.setThreads(threads) }
            let data = FileHandle.standardInput.readDataToEndOfFile()
            var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
            if lines.last?.isEmpty == true { lines.removeLast() }
            var texts: [String] = []
            for (i, l) in lines.enumerated() {
                let bytes = l.last == 0x0D ? l.dropLast() : l
                guard let s = String(validating: bytes, as: UTF8.self) else {
                    throw CLIError.data("standard input line \(i + 1) is not valid UTF-8")
                }
                texts.append(s)
            }
            var out = ""
            for start in stride(from: 0, to: texts.count, by: batch) {
                let chunk = Array(texts[start..<min(texts.count, start + batch)])
                let encodings = chunk.map { encoder.tokenizer.encode($0, maxLength: encoder.config.maxSequenceLength) }
                let vectors = encoder.embed(tokens: encodings.map(\.ids))
                for (e, v) in zip(encodings, vectors) {
                    if json {
                        let enc = JSONEncoder()
                        out += String(decoding: try enc.encode(Line(embedding: v, tokens: e.ids.count, truncated_tokens: e.truncatedTokens)), as: UTF8.self) + "\n"
                    } else {
                        out += "[" + v.map { "\($0)" }.joined(separator: ",") + "]\n"
                    }
                }
                FileHandle.standardOutput.write(Data(out.utf8))
                out = ""
            }
        }
    }
}
