import ArgumentParser
import Foundation
import Inference

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Import, inspect and locate PSM model files.",
        subcommands: [Import.self, Info.self, ModelDefault.self]
    )

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Quantize a BERT-family sentence-transformers folder into a PSM model file.",
            discussion: """
                Reads config.json, vocab.txt and model.safetensors (plus sentence_bert_config.json, \
                tokenizer_config.json, 1_Pooling/config.json and modules.json when present), quantizes every \
                linear layer and the word embeddings to int8 with one fp32 scale per output channel, keeps \
                norms, biases and position embeddings in fp32, and writes one file. Prints each quantized \
                tensor's relative RMS and maximum absolute error, then the model id (SHA-256 of the file).

                Example:
                  psm model import ./all-MiniLM-L6-v2 --out minilm.psm
                """)
        @Argument(help: "The model folder.") var directory: String
        @Option(help: "Output model file.") var out: String
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try guarded {
                let importer = ModelImporter(directory: directory)
                let report = try importer.run(out: out) { t in
                    guard !json, let e = t.error else { return }
                    print("\(t.name.padding(toLength: 52, withPad: " ", startingAt: 0)) \(t.dtype) \(t.shape)  rel RMS \(String(format: "%.5f", e.relativeRMS))  max \(String(format: "%.5f", e.maxAbs))")
                }
                if json { try printJSON(report); return }
                print("wrote \(out): \(report.bytes) bytes, \(report.tensors.count) weight tensors")
                print("model id \(report.id)")
            }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a model file and print its config, id and sizes.",
            discussion: "Example:\n  psm model info minilm.psm --json")
        @Argument(help: "The model file.") var file: String
        @Flag(help: "Print JSON.") var json = false

        struct Output: Encodable {
            var id: String
            var bytes: Int
            var config: ModelConfig
            var tensors: Int
            var int8_parameters: Int
            var fp32_parameters: Int
        }

        func run() throws {
            try guarded {
                let m = try ModelFile(path: file)
                let i8 = m.tensors.values.filter { $0.dtype == .i8 }.reduce(0) { $0 + $1.elementCount }
                let f32 = m.tensors.values.filter { $0.dtype == .f32 }.reduce(0) { $0 + $1.elementCount }
                let out = Output(id: m.id, bytes: m.fileSize, config: m.config, tensors: m.tensors.count, int8_parameters: i8, fp32_parameters: f32)
                if json { try printJSON(out); return }
                let c = m.config
                print("model id      \(m.id)")
                print("file          \(file), \(m.fileSize) bytes, \(m.tensors.count) tensors (\(i8) int8 + \(f32) fp32 parameters)")
                print("source        \(c.source)")
                print("architecture  BERT encoder: \(c.layers) layers, hidden \(c.hidden), \(c.heads) heads, FFN \(c.intermediate), vocabulary \(c.vocabSize)")
                print("sequence      max \(c.maxSequenceLength) tokens (positions \(c.maxPositions)), pooling \(c.pooling), normalize \(c.normalize)")
                print("tokenizer     WordPiece, lower case \(c.lowerCase), strip accents \(c.stripAccents), CJK split \(c.tokenizeChineseChars)")
            }
        }
    }
}
