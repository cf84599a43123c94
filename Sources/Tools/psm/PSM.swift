import ArgumentParser
import Foundation
import Inference
import Engine
import Journal
import Projections
import API
import CSignals

@main
struct PSM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "psm",
        abstract: "PSM, a memory engine for LLM agents: journal, projections and the Personal Small Model.",
        discussion: """
            Every command works on a store directory: --store DIR, else $PSM_STORE, else ./psm-store. \
            Commands that print data take --json for machine-readable output.

            Exit codes: 0 success; 1 a check failed (verify found a problem); 64 bad usage; \
            65 bad data (a corrupt record or index); 74 an I/O or storage error.
            """,
        subcommands: [
            DemoCommand.self, TiersCommand.self, MemoryCommand.self, HistoryCommand.self, ProvenanceCommand.self, RebuildCommand.self,
            StateHashCommand.self, ReplayCommand.self, EvalCommand.self, TrainCommand.self, ObserveCommand.self, IngestCommand.self,
            RecallCommand.self, FeedbackCommand.self, SleepCommand.self, ReconsolidateCommand.self, AdoptCommand.self, JournalCommand.self, VerifyCommand.self, ModelCommand.self, EmbedCommand.self, BenchCommand.self,
            ServeCommand.self, ClusterCommand.self, KeysCommand.self, MCPCommand.self, ExportCommand.self, BackupCommand.self, ReportCommand.self, EraseCommand.self, TreeHeadCommand.self,
        ]
    )
}

extension PSM {
    /// Installs the fatal-signal report (unless PSM_BACKTRACE=1 asks for the runtime's backtrace), then
    /// runs the command as swift-argument-parser would.
    static func main() async {
        if ProcessInfo.processInfo.environment["PSM_BACKTRACE"] != "1" {
            psm_install_fatal_signal_report(
                """
                psm: error: a memory fault while reading the store: a store file is probably damaged (LMDB has no page \
                checksums; a flipped bit in a page of data.mdb can make a read fault). Restore it from a backup \
                (psm backup) or a portable export (psm journal import); the projections can always be rebuilt \
                (psm rebuild). If the files are intact this is a bug: run again with PSM_BACKTRACE=1 and report it.

                """)
        }
        do {
            do { Encoder.setThreads(try encoderThreads(ProcessInfo.processInfo.environment)) } catch { throw reportedExit(error) }
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// The encoder's thread count for every command that encodes (`--threads` of `embed`, `replay` and
/// `bench encoder` overrides it): $PSM_THREADS (1...64), else the processor count up to 8. Results never
/// depend on it (SPEC.md §10); a cold recall encodes the token states of up to 100 memories, and on two
/// cores that takes half the time.
func encoderThreads(_ env: [String: String]) throws -> Int {
    if let v = env["PSM_THREADS"], !v.isEmpty {
        guard let n = Int(v), (1...64).contains(n) else { throw CLIError.usage("PSM_THREADS must be 1...64, got \(v)") }
        return n
    }
    return max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))
}

/// Options every store command takes.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Store directory (default: $PSM_STORE, else ./psm-store).", valueName: "DIR"))
    var store: String?

    var storePath: String {
        if let store { return store }
        if let env = ProcessInfo.processInfo.environment["PSM_STORE"], !env.isEmpty { return env }
        return FileManager.default.currentDirectoryPath + "/psm-store"
    }

    var journalPath: String { storePath + "/journal" }

    /// Finds the encoder: `explicit` (--model), $PSM_MODEL, the store's imported copy, or an import of
    /// $PSM_MINILM_DIR into the store (printed). Nil when none is available.
    func encoderModel(_ explicit: String?, quiet: Bool = false) throws -> ModelFile? {
        if let path = explicit ?? ProcessInfo.processInfo.environment["PSM_MODEL"], !path.isEmpty { return try ModelFile(path: path) }
        let cached = storePath + "/models/encoder.psm"
        if FileManager.default.fileExists(atPath: cached) { return try ModelFile(path: cached) }
        guard let dir = ProcessInfo.processInfo.environment["PSM_MINILM_DIR"], FileManager.default.fileExists(atPath: dir + "/model.safetensors") else {
            return nil
        }
        try FileManager.default.createDirectory(atPath: storePath + "/models", withIntermediateDirectories: true)
        let report = try ModelImporter(directory: dir).run(out: cached)
        if !quiet { FileHandle.standardError.write(Data("imported the encoder from \(dir): \(report.bytes) bytes, model id \(report.id.prefix(16))…\n".utf8)) }
        return try ModelFile(path: cached)
    }

    /// Opens an existing store's journal; a missing store is an error, not a silent new store.
    func openJournal() throws -> Journal {
        guard FileManager.default.fileExists(atPath: journalPath + "/data.mdb") else {
            throw CLIError.usage("no store at \(storePath) (no journal/data.mdb); pass --store DIR or set PSM_STORE")
        }
        do {
            return try Journal(directory: journalPath)
        } catch {
            throw CLIError.from(error)
        }
    }
}

/// Errors the CLI reports, each with its exit code.
enum CLIError: Error, CustomStringConvertible {
    case usage(String)
    case data(String)
    case io(String)
    case checkFailed(String)

    var description: String {
        switch self {
        case .usage(let m), .data(let m), .io(let m), .checkFailed(let m): return m
        }
    }

    var exitCode: Int32 {
        switch self {
        case .checkFailed: return 1
        case .usage: return 64
        case .data: return 65
        case .io: return 74
        }
    }

    static func from(_ error: any Error) -> CLIError {
        if let e = error as? CLIError { return e }
        if let e = error as? APIError {
            switch e.status {
            case 400, 404, 409, 410, 413: return .usage(e.message)
            case 500: return .data(e.message)
            default: return .io(e.message)
            }
        }
        if let e = error as? InferenceError { return .data(e.description) }
        if let e = error as? EngineError {
            switch e {
            case .invalidArgument, .notFound: return .usage(e.description)
            case .conflict: return .io(e.description)
            }
        }
        if let e = error as? ProjectionError {
            switch e {
            case .invalidArgument, .notFound, .erased: return .usage(e.description)
            case .malformed, .corrupt: return .data(e.description)
            case .storage, .gap: return .io(e.description)
            }
        }
        if let e = error as? JournalError {
            switch e {
            case .corruptRecord, .corruptIndex, .payload: return .data(e.description)
            case .invalidArgument, .wrongExpectedRevision, .eventIDConflict, .partialDuplicate: return .usage(e.description)
            default: return .io(e.description)
            }
        }
        return .io("\(error)")
    }
}

extension ParsableCommand {
    /// Runs `body`, turning errors into a message on standard error and the documented exit code.
    func guarded(_ body: () throws -> Void) throws {
        do { try body() } catch { throw reportedExit(error) }
    }
}

/// Prints an error as "psm: error: …" on standard error and returns its documented exit code
/// (an ExitCode passes through unreported).
func reportedExit(_ error: any Error) -> ExitCode {
    if let e = error as? ExitCode { return e }
    let cli = CLIError.from(error)
    FileHandle.standardError.write(Data("psm: error: \(cli.description)\n".utf8))
    return ExitCode(cli.exitCode)
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Formats event time (microseconds since the epoch) as ISO 8601 UTC with microseconds.
func isoTime(_ micros: Int64) -> String { WireTime.format(micros) }
